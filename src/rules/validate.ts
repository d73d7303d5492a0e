/**
 * Validation of rules, scenes and home settings as clients send them: first the schemas of
 * src/schemas/rules.ts, then what keywords cannot say (cron patterns, CEL conditions and
 * templates, hub and device together, thresholds, time zones), kept here next to them. Every
 * failure is a TierError `invalid_field` whose `field` is the path of the bad value
 * (`triggers[0].attr`, `conditions[1]`, `actions[2].set.level`) and whose message says what is accepted.
 */
import { Cron } from 'croner';
import type { Static } from '@sinclair/typebox';
import type { AttrValue } from '../../proto/frames.js';
import { compile, invalidField, type Validator } from '../schemas/check.js';
import { commandSpec } from '../schemas/command.js';
import { RuleRequest, SceneRequest, Settings, StateTrigger, TestRequest, Trigger as TriggerBody } from '../schemas/rules.js';
import { TierError } from '../errors.js';
import { EVENT_MAX_COST } from './expr-cost.js';
import { checkExpression, parseTemplate, worstCase } from './expr.js';
import { CRON_MIN_INTERVAL_MS, DEFAULT_LIMIT, type Action, type DeviceRef, type HomeSettings, type RuleSpec, type SceneSpec, type RuleEvent, type Trigger } from './model.js';

export interface ValidateOptions {
  /** cron patterns whose firings come closer than this are refused; @default 60_000 (ms) */
  minCronIntervalMs?: number;
  /** largest command timeout: the node's TIER_COMMAND_TIMEOUT_MAX_MS; @default 60_000 (ms) */
  maxCommandTimeoutMs?: number;
  /**
   * false: expressions checked as before the typed checks (bool conditions, typed `time`, `between`
   * literals), and a trigger's `from: null` taken (refused since 2026-12-07), for rules a backup
   * holds that an older node accepted; @default true
   */
  strictExpressions?: boolean;
}

function invalid(field: string, what: string): never {
  throw invalidField(field, what);
}

type Bodies = { rule: Validator<ReturnType<typeof RuleRequest>>; scene: Validator<ReturnType<typeof SceneRequest>> };

/** Compiled once per timeout maximum (one per node in practice). */
const bodies = new Map<number, Bodies>();

function bodiesFor(maxCommandTimeoutMs: number): Bodies {
  let b = bodies.get(maxCommandTimeoutMs);
  if (!b) bodies.set(maxCommandTimeoutMs, (b = { rule: compile(RuleRequest(maxCommandTimeoutMs)), scene: compile(SceneRequest(maxCommandTimeoutMs)) }));
  return b;
}

const settingsBody = compile(Settings);
const testBody = compile(TestRequest);

/** Checks the spacing of a cron pattern's firings (5 fields, or 6 with seconds); returns it. */
export function validateCron(pattern: string, field: string, minIntervalMs: number): string {
  const fields = pattern.trim().split(/\s+/).length;
  if (fields !== 5 && fields !== 6) invalid(field, 'must have 5 fields (minute hour day month weekday) or 6 (seconds first)');
  let cron: Cron;
  try {
    cron = new Cron(pattern, { paused: true, timezone: 'UTC' });
  } catch (err) {
    return invalid(field, (err as Error).message);
  }
  const runs = cron.nextRuns(6, new Date());
  if (runs.length === 0) invalid(field, 'never fires');
  for (let i = 1; i < runs.length; i++) {
    if (runs[i]!.getTime() - runs[i - 1]!.getTime() < minIntervalMs) invalid(field, `fires more often than once per ${minIntervalMs / 1000} s`);
  }
  return pattern;
}

/** How far ahead a rule's cron triggers are checked together, at most (a day holds every time of day). */
const CRON_HORIZON_MS = 86_400_000;
/**
 * At most this many firings are walked: croner takes 10–30 µs a firing on the event loop, and a
 * whole day of a once-a-minute trigger (1,440) took 16–21 ms a save. Triggers interleaved every
 * few seconds show within the first firings; a pair that meets later (a daily 08:00:30 beside a
 * once-a-minute trigger) passes the save, and the scheduler passes its instant over (minIntervalMs).
 */
const CRON_MAX_FIRINGS = 100;

/**
 * The rule's cron triggers together fire no closer than `minIntervalMs`, as each one's firings
 * (validateCron): ten patterns a few seconds apart (`0 * * * * *`, `6 * * * * *`, …) each pass alone
 * and together fired every 6 s. An instant several triggers name is one firing (the scheduler fires
 * a rule once per instant), so identical or overlapping patterns pass. Read in UTC, as validateCron
 * reads them (croner's `utcOffset: 0` gives its `timezone: 'UTC'` times about 4× faster).
 */
function checkCronSpacing(triggers: readonly Trigger[], minIntervalMs: number, now: number): void {
  if (minIntervalMs <= 0) return;
  const crons: Array<{ field: string; pattern: string; cron: Cron; next: number }> = [];
  triggers.forEach((t, i) => {
    if (t.type !== 'cron') return;
    const cron = new Cron(t.cron, { paused: true, utcOffset: 0 });
    const next = cron.nextRun(new Date(now))?.getTime();
    if (next !== undefined) crons.push({ field: `triggers[${i}]`, pattern: t.cron, cron, next });
  });
  if (crons.length < 2) return;
  const end = now + CRON_HORIZON_MS;
  let last: { at: number; by: (typeof crons)[number] } | null = null;
  for (let n = 0; n < CRON_MAX_FIRINGS && crons.length > 0; n++) {
    const by = crons.reduce((a, b) => (b.next < a.next ? b : a));
    const at = by.next;
    if (at > end) return;
    const next = by.cron.nextRun(new Date(at))?.getTime();
    if (next === undefined) crons.splice(crons.indexOf(by), 1);
    else by.next = next;
    if (last !== null && at === last.at) continue;
    if (last !== null && at - last.at < minIntervalMs) {
      const when = (ms: number) => new Date(ms).toISOString().slice(11, 19);
      const [a, b] = [last.by, by];
      invalid('triggers', `${a.field} (${a.pattern}) and ${b.field} (${b.pattern}) fire ${(at - last.at) / 1000} s apart (${when(last.at)} and ${when(at)} UTC); a rule's cron triggers together may fire at most once per ${minIntervalMs / 1000} s`);
    }
    last = { at, by };
  }
}

/** `hub` and `device` both given (one device) or both omitted (any device of the home). */
function checkAnyDevice(t: { hub?: string; device?: string }, field: string): void {
  if (t.hub === undefined && t.device !== undefined) invalid(`${field}.hub`, 'give both hub and device, or neither (any device of the home)');
  if (t.hub !== undefined && t.device === undefined) invalid(`${field}.device`, 'give both hub and device, or neither (any device of the home)');
}

/** `strict` false: a backup's rule an older node accepted (see `strictExpressions`). */
function checkStateTrigger(t: Static<typeof StateTrigger>, field: string, strict: boolean): void {
  checkAnyDevice(t, field);
  const threshold = t.above !== undefined || t.below !== undefined;
  if (threshold && (t.to !== undefined || t.from !== undefined)) invalid(`${field}.above`, 'a threshold (above/below) cannot be combined with to/from');
  // null in a report removes the attribute: a value before is never null, and such a rule saved and never ran (review automation2)
  if (t.from === null && strict) invalid(`${field}.from`, 'null never matches: a value reported null removes the attribute, so no change starts from null; `to: null` catches a removal');
  if (t.above !== undefined && t.below !== undefined && t.above >= t.below) invalid(`${field}.below`, 'must be greater than above');
}

function trigger(t: Static<typeof TriggerBody>, field: string, opts: Required<ValidateOptions>): Trigger {
  if (t.type === 'state') checkStateTrigger(t, field, opts.strictExpressions);
  else if (t.type === 'event') checkAnyDevice(t, field);
  else validateCron(t.cron, `${field}.cron`, opts.minCronIntervalMs);
  return { ...t };
}

function template(s: string, field: string, aliases: ReadonlySet<string>, loose: boolean): string {
  for (const part of parseTemplate(s)) {
    if (typeof part === 'string') continue;
    const problem = checkExpression(part.expr, aliases, { loose });
    if (problem) invalid(field, `in {{ ${part.expr} }}: ${problem}`);
  }
  return s;
}

type ActionBody = Static<ReturnType<typeof RuleRequest>>['actions'][number];

function action(a: ActionBody, field: string, aliases: ReadonlySet<string>, loose: boolean): Action {
  switch (a.type) {
    case 'command':
      return { type: 'command', hub: a.hub, device: a.device, ...commandSpec(a), ...(a.timeoutMs === undefined ? {} : { timeoutMs: a.timeoutMs }) };
    case 'notify':
      return { type: 'notify', title: template(a.title, `${field}.title`, aliases, loose), body: template(a.body, `${field}.body`, aliases, loose) };
    default:
      return { ...a };
  }
}

function withDefaults(opts: ValidateOptions): Required<ValidateOptions> {
  return { minCronIntervalMs: opts.minCronIntervalMs ?? CRON_MIN_INTERVAL_MS, maxCommandTimeoutMs: opts.maxCommandTimeoutMs ?? 60_000, strictExpressions: opts.strictExpressions ?? true };
}

/** A rule body from a client → a RuleSpec with defaults filled in. */
export function validateRuleSpec(body: unknown, options: ValidateOptions = {}): RuleSpec {
  const opts = withDefaults(options);
  const o = bodiesFor(opts.maxCommandTimeoutMs).rule.parse(body);
  const spec: RuleSpec = {
    name: o.name,
    enabled: o.enabled ?? true,
    triggers: o.triggers.map((t, i) => trigger(t, `triggers[${i}]`, opts)),
    devices: {},
    conditions: [],
    actions: [],
    cooldownMs: o.cooldownMs ?? 0,
    limit: { ...DEFAULT_LIMIT, ...o.limit },
  };
  checkCronSpacing(spec.triggers, opts.minCronIntervalMs, Date.now());
  if (o.description !== undefined) spec.description = o.description;
  // own keys only: an alias named like an Object.prototype member is an ordinary alias
  for (const [alias, ref] of Object.entries(o.devices ?? {})) spec.devices[alias] = { hub: ref.hub, device: ref.device };
  const aliases = new Set(Object.keys(spec.devices));
  spec.conditions = (o.conditions ?? []).map((c, i) => {
    const problem = checkExpression(c, aliases, { condition: true, loose: !opts.strictExpressions });
    if (problem) invalid(`conditions[${i}]`, problem);
    return c;
  });
  spec.actions = o.actions.map((a, i) => action(a, `actions[${i}]`, aliases, !opts.strictExpressions));
  if (spec.actions[spec.actions.length - 1]!.type === 'delay') invalid(`actions[${spec.actions.length - 1}]`, 'a delay must be followed by an action');
  checkRuleCost(spec, aliases.size);
  return spec;
}

/**
 * A rule whose conditions and templates together could cost more than one event's budget
 * (EVENT_MAX_COST) would never be evaluated whole: refused `limit_exceeded` (422) naming `conditions`.
 */
function checkRuleCost(spec: RuleSpec, aliases: number): void {
  let cost = 0;
  for (const c of spec.conditions) cost += worstCase(c, aliases);
  for (const a of spec.actions) {
    if (a.type !== 'notify') continue;
    for (const p of [...parseTemplate(a.title), ...parseTemplate(a.body)]) if (typeof p !== 'string') cost += worstCase(p.expr, aliases);
  }
  if (cost <= EVENT_MAX_COST) return;
  const n = (x: number) => x.toLocaleString('en-US');
  throw new TierError('limit_exceeded', `conditions: with the rule's {{ }} templates their worst case is about ${n(cost)} steps, more than the ${n(EVENT_MAX_COST)} one event may use for all the rules it triggers in a home; make the conditions cheaper or split the rule`, { field: 'conditions' });
}

/** A scene body from a client → a SceneSpec. */
export function validateSceneSpec(body: unknown, options: ValidateOptions = {}): SceneSpec {
  const o = bodiesFor(withDefaults(options).maxCommandTimeoutMs).scene.parse(body);
  const spec: SceneSpec = {
    name: o.name,
    enabled: o.enabled ?? true,
    commands: o.commands.map((c) => ({ hub: c.hub, device: c.device, ...commandSpec(c), ...(c.timeoutMs === undefined ? {} : { timeoutMs: c.timeoutMs }) })),
  };
  if (o.description !== undefined) spec.description = o.description;
  return spec;
}

/**
 * An IANA time zone this runtime knows, named as it names it ("europe/berlin" → "Europe/Berlin"),
 * or null: Intl takes any casing, and each spelling stored would be a formatter of its own on the
 * rule workers.
 */
export function canonicalTimeZone(tz: string): string | null {
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone: tz }).resolvedOptions().timeZone;
  } catch {
    return null;
  }
}

export function validateSettings(body: unknown): HomeSettings {
  const timeZone = canonicalTimeZone(settingsBody.parse(body).timeZone);
  if (timeZone === null) invalid('timeZone', 'must be an IANA time zone such as "Europe/Berlin" or "UTC"');
  return { timeZone };
}

/** Every device a rule names (triggers with a device, aliases, actions), without repeats. */
export function devicesOfRule(spec: RuleSpec): Array<{ ref: DeviceRef; field: string }> {
  const out: Array<{ ref: DeviceRef; field: string }> = [];
  spec.triggers.forEach((t, i) => {
    if (t.type !== 'cron' && t.hub !== undefined && t.device !== undefined) out.push({ ref: { hub: t.hub, device: t.device }, field: `triggers[${i}].hub` });
  });
  for (const [alias, ref] of Object.entries(spec.devices)) out.push({ ref, field: `devices.${alias}.hub` });
  spec.actions.forEach((a, i) => {
    if (a.type === 'command' || a.type === 'desired') out.push({ ref: { hub: a.hub, device: a.device }, field: `actions[${i}].hub` });
  });
  return out;
}

export function devicesOfScene(spec: SceneSpec): Array<{ ref: DeviceRef; field: string }> {
  return spec.commands.map((c, i) => ({ ref: { hub: c.hub, device: c.device }, field: `commands[${i}].hub` }));
}

/** An ISO 8601 instant with a zone ("Z" or "+02:00"): a time without one would be read in the node's zone. */
const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})$/;

/**
 * The optional body of a dry run: an event to test against (default: triggers count as fired), and
 * `at`, the instant it is evaluated at (default `now`).
 */
export function validateTestRequest(body: unknown, now: number): { event?: RuleEvent; prev: Record<string, AttrValue>; at: number } {
  if (body === undefined) return { prev: {}, at: now };
  const o = testBody.parse(body);
  const prev = o.prev ?? {};
  let at = now;
  if (o.at !== undefined) {
    at = INSTANT.test(o.at) ? Date.parse(o.at) : NaN;
    if (Number.isNaN(at)) invalid('at', 'must be an ISO 8601 instant with a zone, such as "2026-07-01T23:10:00+02:00" or "2026-07-01T21:10:00Z"');
  }
  const e = o.event;
  if (e === undefined) return { prev, at };
  switch (e.kind) {
    case 'state':
      return { event: { kind: 'state', hub: e.hub, device: e.device, attrs: e.attrs, ts: at }, prev, at };
    case 'event':
      return { event: { kind: 'event', hub: e.hub, device: e.device, event: e.event, params: e.params ?? {}, ts: at }, prev, at };
    case 'schedule':
      return { event: { kind: 'schedule', scheduledAt: at, ts: at }, prev, at };
  }
}
