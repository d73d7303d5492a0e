/**
 * Request bodies of the automation API: rules, scenes, home settings, dry runs. Unknown keys are
 * refused (a stored typo would silently do nothing); the server-owned keys a client sends back
 * from a GET are ignored. What keywords cannot say (cron patterns, CEL conditions and templates,
 * hub and device given together, thresholds, time zones) src/rules/validate.ts checks after them.
 */
import { Type, type TProperties } from '@sinclair/typebox';
import { EXPR_MAX_LENGTH } from '../rules/expr.js';
import { command } from './command.js';
import { AttrName, AttrValue, Attrs, Id, ServerOwned } from './common.js';
import { RULE_LIMITS } from '../rules/rule-limits.js';

export { RULE_LIMITS } from '../rules/rule-limits.js';

const strict = { additionalProperties: false } as const;

const hub = Id('the hub', ['hub-7']);
const device = Id('the device', ['lamp-1']);
const anyDevice = {
  hub: Type.Optional(Id('the hub of the device; give hub and device together, or neither for any device of the home')),
  device: Type.Optional(Id('the device; give hub and device together, or neither for any device of the home')),
};

export const StateTrigger = Type.Object(
  {
    type: Type.Literal('state', { description: 'fires when an attribute changes' }),
    ...anyDevice,
    attr: AttrName('the attribute'),
    to: Type.Optional(AttrValue('fires only on a change to this value')),
    from: Type.Optional(AttrValue('fires only on a change from this value')),
    above: Type.Optional(Type.Number({ description: 'fires when the value rises above this (not with to/from)' })),
    below: Type.Optional(Type.Number({ description: 'fires when the value falls below this (greater than above)' })),
  },
  { ...strict, title: 'StateTrigger', description: 'An attribute changed (a repeated value never fires)' },
);

export const EventTrigger = Type.Object(
  {
    type: Type.Literal('event', { description: 'fires on a device event' }),
    ...anyDevice,
    event: Id('the event (`double_press`, `leak`)'),
    params: Type.Optional(Attrs('parameters the event must carry (a subset match)')),
  },
  { ...strict, title: 'EventTrigger', description: 'A device event' },
);

export const CronTrigger = Type.Object(
  {
    type: Type.Literal('cron', { description: 'fires on a schedule' }),
    cron: Type.String({ minLength: 1, maxLength: RULE_LIMITS.cronLength, description: 'cron pattern, 5 fields (minute hour day month weekday) or 6 (seconds first), in the home’s time zone' }),
    catchUpMs: Type.Optional(Type.Integer({ minimum: 0, maximum: RULE_LIMITS.maxCatchUpMs, description: 'a firing missed by more than this is skipped, ms (default 60000)' })),
  },
  { ...strict, title: 'CronTrigger', description: 'Each instant of a cron pattern, once across the cluster' },
);

export const Trigger = Type.Union([StateTrigger, EventTrigger, CronTrigger], { select: { by: 'type' }, title: 'Trigger', description: 'What fires a rule' });

/** @param max the node's largest command timeout (ms) */
export const CommandAction = (max: number) =>
  command({ type: Type.Literal('command', { description: 'a device command' }), hub, device }, max, { strict: true, title: 'CommandAction', description: 'Run a device command' });

export const DesiredAction = Type.Object(
  {
    type: Type.Literal('desired', { description: 'writes desired state' }),
    hub,
    device,
    desired: Attrs('attributes to write; null removes one', 'must name at least one attribute'),
  },
  { ...strict, title: 'DesiredAction', description: 'Write desired state: applied now if the hub is online, else when it connects' },
);

export const SceneAction = Type.Object(
  { type: Type.Literal('scene', { description: 'runs a scene' }), scene: Id('a scene of the same home') },
  { ...strict, title: 'SceneAction', description: 'Run a scene of the home' },
);

export const NotifyAction = Type.Object(
  {
    type: Type.Literal('notify', { description: 'sends a push notification' }),
    title: Type.String({ minLength: 1, maxLength: RULE_LIMITS.titleLength, description: 'title; `{{ expr }}` is evaluated (CEL)' }),
    body: Type.String({ minLength: 1, maxLength: RULE_LIMITS.bodyLength, description: 'text; `{{ expr }}` is evaluated (CEL)' }),
  },
  { ...strict, title: 'NotifyAction', description: 'A push notification to everyone in the home' },
);

export const DelayAction = Type.Object(
  { type: Type.Literal('delay', { description: 'waits' }), ms: Type.Integer({ minimum: 1, maximum: RULE_LIMITS.maxDelayMs, description: 'how long, ms' }) },
  { ...strict, title: 'DelayAction', description: 'Wait, then go on with the next action (never the last action)' },
);

export const Action = (max: number) =>
  Type.Union([CommandAction(max), DesiredAction, SceneAction, NotifyAction, DelayAction], { select: { by: 'type' }, title: 'Action', description: 'What a rule does, in order' });

export const DeviceRef = Type.Object({ hub, device }, { ...strict, title: 'DeviceRef', description: 'A device of a hub of the home' });

const ALIAS_REGEX = '^(?!__proto__$)[A-Za-z_][A-Za-z0-9_]{0,31}$';

export const RunLimit = Type.Object(
  {
    maxRuns: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000, description: 'runs allowed within windowMs (default 20)' })),
    windowMs: Type.Optional(Type.Integer({ minimum: 1_000, maximum: 3_600_000, description: 'the window, ms (default 60000)' })),
  },
  { ...strict, title: 'RunLimit', description: 'The loop guard: more runs within the window suspend the rule' },
);

/** The fields of a rule as clients write it; `RuleRequest` and the stored `Rule` share them. */
export const ruleFields = (max: number) => ({
  name: Type.String({ minLength: 1, maxLength: RULE_LIMITS.nameLength, description: 'shown in apps' }),
  description: Type.Optional(Type.String({ maxLength: RULE_LIMITS.descriptionLength, description: 'free text' })),
  enabled: Type.Optional(Type.Boolean({ description: 'a disabled rule never runs (default true)' })),
  triggers: Type.Array(Trigger, { minItems: 1, maxItems: RULE_LIMITS.triggers, description: 'any one of them fires the rule' }),
  devices: Type.Optional(
    Type.Record(Type.String({ pattern: ALIAS_REGEX }), DeviceRef, {
      additionalProperties: false,
      maxProperties: RULE_LIMITS.devices,
      description: 'aliases of the devices whose state conditions read as `dev.<alias>.<attr>`',
      errorMessage: {
        maxProperties: `at most ${RULE_LIMITS.devices} aliases`,
        propertyNames: 'alias must be an identifier of 1..32 characters [A-Za-z0-9_], not starting with a digit, not __proto__',
      },
    }),
  ),
  conditions: Type.Optional(
    Type.Array(Type.String({ maxLength: EXPR_MAX_LENGTH, errorMessage: `must be a CEL expression (a string of at most ${EXPR_MAX_LENGTH} characters)` }), {
      maxItems: RULE_LIMITS.conditions,
      description: 'CEL expressions over `dev`, `time` and `event` that must all be true',
    }),
  ),
  actions: Type.Array(Action(max), { minItems: 1, maxItems: RULE_LIMITS.actions, description: 'run in order; a failed action is counted and the next one still runs' }),
  cooldownMs: Type.Optional(Type.Integer({ minimum: 0, maximum: RULE_LIMITS.maxCooldownMs, description: 'after a run, matches within this window are skipped, ms (default 0)' })),
  limit: Type.Optional(RunLimit),
});

export const STORED = {
  id: ServerOwned('the rule’s id'),
  homeId: ServerOwned('its home'),
  version: ServerOwned('its version'),
  createdAt: ServerOwned('created, ms since the epoch'),
  updatedAt: ServerOwned('changed, ms since the epoch'),
} satisfies TProperties;

export const HALL_LIGHT = {
  name: 'Hall light at night',
  triggers: [{ type: 'state', hub: 'hub-7', device: 'hall-motion', attr: 'motion', to: true }],
  devices: { lux: { hub: 'hub-7', device: 'hall-lux' } },
  conditions: ['between(time.hhmm, "22:00", "06:00")', 'dev.lux.lux < 30'],
  actions: [
    { type: 'command', hub: 'hub-7', device: 'hall-light', set: { on: true } },
    { type: 'delay', ms: 300_000 },
    { type: 'command', hub: 'hub-7', device: 'hall-light', set: { on: false } },
  ],
  cooldownMs: 0,
};

export const LEAK = {
  name: 'Water leak',
  triggers: [{ type: 'event', event: 'leak' }],
  actions: [
    { type: 'command', hub: 'hub-7', device: 'valve', method: 'close' },
    { type: 'notify', title: 'Water leak', body: 'Leak at {{ event.device }} ({{ time.hhmm }})' },
  ],
};

/** @param max the node's largest command timeout (ms) */
export const RuleRequest = (max: number) =>
  Type.Object({ ...ruleFields(max), ...STORED, status: ServerOwned('its status'), stats: ServerOwned('its counters') }, {
    ...strict,
    title: 'RuleRequest',
    description: 'A rule as a client writes it: when (triggers), if (conditions over the devices), then (actions)',
    examples: [HALL_LIGHT, LEAK],
  });

/** @param max the node's largest command timeout (ms) */
export const SceneCommand = (max: number) => command({ hub, device }, max, { strict: true, title: 'SceneCommand', description: 'A device command of a scene' });

export const MOVIE = {
  name: 'Movie',
  commands: [
    { hub: 'hub-7', device: 'tv', set: { on: true } },
    { hub: 'hub-7', device: 'blinds', method: 'close' },
  ],
};

export const sceneFields = (max: number) => ({
  name: Type.String({ minLength: 1, maxLength: RULE_LIMITS.nameLength, description: 'shown in apps' }),
  description: Type.Optional(Type.String({ maxLength: RULE_LIMITS.descriptionLength, description: 'free text' })),
  enabled: Type.Optional(Type.Boolean({ description: 'a disabled scene does not run (default true)' })),
  commands: Type.Array(SceneCommand(max), { minItems: 1, maxItems: RULE_LIMITS.sceneCommands, description: 'run in parallel, at most 8 at a time to one hub, sent to it in this order' }),
});

/** @param max the node's largest command timeout (ms) */
export const SceneRequest = (max: number) =>
  Type.Object({ ...sceneFields(max), ...STORED }, { ...strict, title: 'SceneRequest', description: 'Device commands run together', examples: [MOVIE] });

export const Settings = Type.Object(
  { timeZone: Type.String({ minLength: 1, maxLength: 64, description: 'IANA time zone of cron triggers and of `time` in conditions (default UTC)' }) },
  { ...strict, title: 'Settings', description: 'Settings of a home', examples: [{ timeZone: 'Europe/Berlin' }] },
);

export const TestEvent = Type.Union(
  [
    Type.Object({ kind: Type.Literal('state', { description: 'attributes changed' }), hub, device, attrs: Attrs('the attributes as reported') }, { ...strict, title: 'StateTestEvent', description: 'a state report' }),
    Type.Object(
      {
        kind: Type.Literal('event', { description: 'a device event' }),
        hub,
        device,
        event: Id('the event'),
        params: Type.Optional(Attrs('its parameters')),
      },
      { ...strict, title: 'EventTestEvent', description: 'a device event' },
    ),
    Type.Object({ kind: Type.Literal('schedule', { description: 'a cron instant, now' }) }, { ...strict, title: 'ScheduleTestEvent', description: 'a schedule firing' }),
  ],
  { select: { by: 'kind' }, title: 'TestEvent', description: 'The event to test against' },
);

export const TestRequest = Type.Object(
  {
    event: Type.Optional(TestEvent),
    prev: Type.Optional(Attrs('for a state event: the values before it (a `from` trigger compares with them)')),
    at: Type.Optional(
      Type.String({
        minLength: 10,
        maxLength: 40,
        description: 'the instant to evaluate at, ISO 8601 with a zone (`2026-07-01T23:10:00+02:00`, `…Z`): `time.*` and the event time; default now',
        examples: ['2026-07-01T23:10:00+02:00'],
      }),
    ),
  },
  {
    ...strict,
    title: 'TestRequest',
    description: 'A dry run: no body (the triggers count as fired), or an event',
    examples: [{ event: { kind: 'state', hub: 'hub-7', device: 'hall-motion', attrs: { motion: true } }, prev: { motion: false } }],
  },
);
