import type { Rule } from '../../src/rules/model.js';

/** A stored rule as the engine holds it: a state trigger and one command, `patch` on top. */
export function ruleOf(patch: Partial<Rule> = {}): Rule {
  return {
    id: 'r1',
    homeId: 'home',
    version: 1,
    createdAt: 0,
    updatedAt: 0,
    name: 'r',
    enabled: true,
    triggers: [{ type: 'state', attr: 'on' }],
    devices: {},
    conditions: [],
    actions: [{ type: 'command', hub: 'h', device: 'd', set: { on: true } }],
    cooldownMs: 0,
    limit: { maxRuns: 20, windowMs: 60_000 },
    ...patch,
  };
}
