/**
 * The bounds of a rule and a scene (how many triggers, actions, characters...): the API's schemas
 * (schemas/rules.ts) check them, the expression cost (expr-cost.ts) reads them. Apart from the
 * schemas so that the rules' worker threads need not load TypeBox to read them.
 */
export const RULE_LIMITS = {
  triggers: 10,
  devices: 20,
  conditions: 10,
  actions: 20,
  sceneCommands: 50,
  nameLength: 100,
  descriptionLength: 500,
  titleLength: 100,
  bodyLength: 1_000,
  cronLength: 100,
  maxDelayMs: 86_400_000,
  maxCooldownMs: 86_400_000,
  maxCatchUpMs: 86_400_000,
} as const;
