/**
 * Response bodies of the automation API (src/api/rules-routes.ts): stored rules and scenes with
 * what this node knows of their runs, dry runs, scene runs, settings.
 */
import { Type, type TSchema } from '@sinclair/typebox';
import { Attrs, Id } from './common.js';
import { HALL_LIGHT, MOVIE, RunLimit, Settings, ruleFields, sceneFields } from './rules.js';

const ok = Type.Literal(true, { description: 'the request succeeded' });
const nullable = <T extends TSchema>(schema: T, description: string) => Type.Union([schema, Type.Null()], { description });
const uint = (description: string) => Type.Integer({ minimum: 0, description });

export const RuleStats = Type.Object(
  {
    evaluated: uint('sent to a worker as a candidate for an event or a schedule'),
    triggered: uint('a trigger matched'),
    matched: uint('a trigger matched and every condition held'),
    suppressed: uint('matched but not run: cooldown, or suspended by the loop guard'),
    actionsRun: uint('actions that completed'),
    errors: uint('evaluation failures and failed actions'),
    loopStops: uint('times the loop guard suspended the rule'),
    lastEvaluatedAt: nullable(Type.Integer(), 'ms since the epoch, null if never'),
    lastRunAt: nullable(Type.Integer(), 'ms since the epoch, null if never'),
    lastError: nullable(
      Type.Object({ at: Type.Integer({ description: 'ms since the epoch' }), message: Type.String({ description: 'what failed' }) }, { description: 'the last failure' }),
      'the last failure, null if none',
    ),
    evalUs: Type.Object(
      {
        count: uint('evaluations sampled'),
        p50: Type.Number({ description: 'median, µs' }),
        p95: Type.Number({ description: '95th percentile, µs' }),
        p99: Type.Number({ description: '99th percentile, µs' }),
        max: Type.Number({ description: 'slowest, µs' }),
      },
      { description: 'worker time per evaluation over the last 128, µs' },
    ),
  },
  { title: 'RuleStats', description: 'Counters of this node (other nodes count their own)' },
);

export const RuleStatus = Type.Object(
  {
    suspendedUntil: nullable(Type.Integer(), 'the loop guard suspended the rule until then (ms since the epoch); null if not'),
    lastRunAt: nullable(Type.Integer(), 'ms since the epoch, null if never'),
    waiting: Type.Boolean({ description: 'a run is waiting in a delay' }),
    stats: RuleStats,
  },
  { title: 'RuleStatus', description: 'What this node knows of the rule’s runs' },
);

const STATUS_EXAMPLE = {
  suspendedUntil: null,
  lastRunAt: 1_738_310_400_000,
  waiting: false,
  stats: {
    evaluated: 14,
    triggered: 6,
    matched: 2,
    suppressed: 0,
    actionsRun: 6,
    errors: 0,
    loopStops: 0,
    lastEvaluatedAt: 1_738_310_400_000,
    lastRunAt: 1_738_310_400_000,
    lastError: null,
    evalUs: { count: 14, p50: 41, p95: 88, p99: 120, max: 120 },
  },
};

const stored = (id: string) => ({ id, homeId: 'home-42', version: 1, createdAt: 1_738_300_000_000, updatedAt: 1_738_300_000_000 });
const identity = (what: string) => ({
  id: Id(`the ${what}`),
  homeId: Id('its home'),
  version: Type.Integer({ minimum: 1, description: '1 at creation, + 1 at every change (update, enable, disable)' }),
  createdAt: uint('created, ms since the epoch'),
  updatedAt: uint('changed last, ms since the epoch'),
});

export const RULE_EXAMPLE = { ...stored('r1a2b3'), ...HALL_LIGHT, enabled: true, conditions: HALL_LIGHT.conditions, limit: { maxRuns: 20, windowMs: 60_000 }, status: STATUS_EXAMPLE };

/** A stored rule: every default filled in, with its status. @param max the node's largest command timeout (ms) */
export const Rule = (max: number) => {
  const fields = ruleFields(max);
  return Type.Object(
    {
      ...identity('rule'),
      ...Type.Required(Type.Object(fields)).properties,
      description: fields.description,
      limit: Type.Required(RunLimit, { title: 'StoredRunLimit' }),
      status: RuleStatus,
    },
    { title: 'Rule', description: 'A stored rule with this node’s status of it', examples: [RULE_EXAMPLE] },
  );
};

export const RuleReply = (max: number) => Type.Object({ ok, rule: Rule(max) }, { title: 'RuleReply', description: 'One rule', examples: [{ ok: true, rule: RULE_EXAMPLE }] });

const RuleWarnings = Type.Array(
  Type.Object({
    field: Type.String({ description: 'the path of the value warned about: `triggers[0].attr`' }),
    message: Type.String({ description: 'what the reported state says' }),
  }),
  { description: 'state triggers that the reported state says cannot fire (a device or attribute not reported yet, a value of another type); saved anyway' },
);

export const RuleSaved = (max: number) =>
  Type.Object(
    { ok, rule: Rule(max), warnings: RuleWarnings },
    {
      title: 'RuleSaved',
      description: 'The rule as saved, with warnings',
      examples: [{ ok: true, rule: RULE_EXAMPLE, warnings: [{ field: 'triggers[0].attr', message: 'device hall-motion has reported no attribute "motoin" (it has: motion, battery)' }] }],
    },
  );

export const RuleList = (max: number) =>
  Type.Object({ ok, homeId: Id('the home'), rules: Type.Array(Rule(max), { description: 'every rule of the home' }) }, { title: 'RuleList', description: 'The home’s rules', examples: [{ ok: true, homeId: 'home-42', rules: [RULE_EXAMPLE] }] });

export const Deleted = Type.Object({ ok, deleted: Id('the id of what was deleted') }, { title: 'Deleted', description: 'Deleted', examples: [{ ok: true, deleted: 'r1a2b3' }] });

export const SceneDeleted = Type.Object(
  {
    ok,
    deleted: Id('the id of the scene deleted'),
    rules: Type.Array(Type.Object({ id: Id('a rule'), name: Type.String({ description: 'its name' }) }), {
      description: 'rules of the home whose actions run the scene, left unchanged: their scene action now fails at run time ("no such scene")',
    }),
  },
  { title: 'SceneDeleted', description: 'Deleted, with the rules that ran the scene', examples: [{ ok: true, deleted: 's9c8d7', rules: [{ id: 'r1a2b3', name: 'Movie night' }] }] },
);

export const SCENE_EXAMPLE = { ...stored('s9c8d7'), ...MOVIE, enabled: true };

export const Scene = (max: number) => {
  const fields = sceneFields(max);
  return Type.Object(
    { ...identity('scene'), ...Type.Required(Type.Object(fields)).properties, description: fields.description },
    { title: 'Scene', description: 'A stored scene', examples: [SCENE_EXAMPLE] },
  );
};

export const SceneReply = (max: number) => Type.Object({ ok, scene: Scene(max) }, { title: 'SceneReply', description: 'One scene', examples: [{ ok: true, scene: SCENE_EXAMPLE }] });

export const SceneList = (max: number) =>
  Type.Object({ ok, homeId: Id('the home'), scenes: Type.Array(Scene(max), { description: 'every scene of the home' }) }, { title: 'SceneList', description: 'The home’s scenes', examples: [{ ok: true, homeId: 'home-42', scenes: [SCENE_EXAMPLE] }] });

export const SceneRunReply = Type.Object(
  {
    ok,
    sceneId: Id('the scene'),
    results: Type.Array(
      Type.Object(
        {
          hub: Id('the hub'),
          device: Id('the device'),
          ok: Type.Boolean({ description: 'the hub ran the command' }),
          result: Type.Optional(Type.Unknown({ description: 'the hub’s answer, when ok' })),
          code: Type.Optional(Type.String({ description: 'the error code, when not ok (proto/PROTOCOL.md §9)' })),
          message: Type.Optional(Type.String({ description: 'the error, when not ok' })),
        },
        { description: 'the outcome of one command' },
      ),
      { description: 'one per command, in the scene’s order' },
    ),
    allOk: Type.Boolean({ description: 'every command succeeded' }),
  },
  {
    title: 'SceneRunReply',
    description: 'The outcome of each command of the scene',
    examples: [
      {
        ok: true,
        sceneId: 's9c8d7',
        results: [
          { hub: 'hub-7', device: 'tv', ok: true, result: { on: true } },
          { hub: 'hub-7', device: 'blinds', ok: false, code: 'hub_offline', message: 'hub hub-7 is not connected' },
        ],
        allOk: false,
      },
    ],
  },
);

export const DryRun = Type.Object(
  {
    ruleId: Id('the rule'),
    version: Type.Integer({ minimum: 1, description: 'the version tested' }),
    enabled: Type.Boolean({ description: 'whether the rule is enabled' }),
    triggered: Type.Boolean({ description: 'a trigger matched (always, without an event)' }),
    trigger: nullable(Type.Integer({ minimum: 0 }), 'index of the trigger that matched, null if none'),
    passed: Type.Boolean({ description: 'every condition held' }),
    conditions: Type.Array(
      Type.Object(
        {
          expr: Type.String({ description: 'the condition' }),
          value: Type.Optional(Type.Unknown({ description: 'what it evaluated to' })),
          error: Type.Optional(Type.String({ description: 'why it could not be evaluated' })),
        },
        { description: 'a condition and its value' },
      ),
      { description: 'each condition with its value' },
    ),
    error: nullable(Type.String(), 'a compile or evaluation failure, null if none'),
    actions: Type.Array(
      Type.Object({ type: Type.String({ description: 'the action type' }) }, { additionalProperties: true, description: 'an action with its templates filled in; a scene also lists its commands. `problem`: why it would fail at run time (`no such scene`, `scene is disabled`, `hub <id> is not in the home`)' }),
      { description: 'what the rule would do now (empty when it would not match)' },
    ),
    blockedBy: Type.Array(Type.String({ enum: ['disabled', 'suspended', 'cooldown'] }), { description: 'why it would not run now although it matched' }),
    wouldRun: Type.Boolean({ description: 'it matched and nothing blocks it' }),
    state: Type.Record(Type.String(), Attrs('reported state'), { description: 'the device state the conditions saw, by `hub/device`' }),
  },
  { title: 'DryRun', description: 'What the rule would do now, doing nothing' },
);

export const DryRunReply = Type.Object(
  { ok, test: DryRun },
  {
    title: 'DryRunReply',
    description: 'A dry run’s report',
    examples: [
      {
        ok: true,
        test: {
          ruleId: 'r1a2b3',
          version: 1,
          enabled: true,
          triggered: true,
          trigger: 0,
          passed: true,
          conditions: [
            { expr: 'between(time.hhmm, "22:00", "06:00")', value: true },
            { expr: 'dev.lux.lux < 30', value: true },
          ],
          error: null,
          actions: HALL_LIGHT.actions,
          blockedBy: [],
          wouldRun: true,
          state: { 'hub-7/hall-lux': { lux: 12 } },
        },
      },
    ],
  },
);

export const SettingsReply = Type.Object(
  { ok, homeId: Id('the home'), settings: Type.Required(Settings, { title: 'StoredSettings', description: 'the home’s settings' }) },
  { title: 'SettingsReply', description: 'The home’s settings', examples: [{ ok: true, homeId: 'home-42', settings: { timeZone: 'Europe/Berlin' } }] },
);
