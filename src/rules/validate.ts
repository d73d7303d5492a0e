/**
 * Validation of rules, scenes and home settings as clients send them. Every failure is a
 * TierError `invalid_field` whose `field` is the path of the bad value (`triggers[0].attr`,
 * `conditions[1]`, `actions[2].set.level`) and whose message says what is accepted.
 */
import { Cron } from 'croner';
import type { AttrValue } from '../../proto/frames.js';
import { isValidId, isValidKey } from '../../proto/subjects.js';
import { TierError } from '../errors.js';
import { attrs } from '../protocol/codec.js';
import { checkExpression, parseTemplate } from './expr.js';
import {
  DEFAULT_LIMIT,
  type Action,
  type DeviceRef,
  type HomeSettings,
  type RuleSpec,
  type SceneCommand,
  type SceneSpec,
  type RuleEvent,
  type Trigger,
} from './model.js';

export interface ValidateOptions {
  /** cron patterns whose firings come closer than this are refused; @default 60_000 (ms) */
  minCronIntervalMs?: number;
  /** largest command timeout; @default 60_000 (ms) */
  maxCommandTimeoutMs?: number;
}

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
  maxDelayMs: 86_400_000,
  maxCooldownMs: 86_400_000,
  maxCatchUpMs: 86_400_000,
} as const;

/** Keys a client may send back from a GET: ignored, the server owns them. */
const SERVER_KEYS = new Set(['id', 'homeId', 'version', 'createdAt', 'updatedAt', 'status', 'stats']);

const ALIAS = /^[A-Za-z_][A-Za-z0-9_]{0,31}$/;

/**
 * True for a device alias: an identifier (`dev.<alias>` in CEL). Names of Object.prototype members
 * (`toString`, `constructor`) are fine, aliases are own keys everywhere they are read; `__proto__`
 * is not, since assigning it to an object sets the prototype instead of adding a key.
 */
function isAlias(s: string): boolean {
  return ALIAS.test(s) && s !== '__proto__';
}

function invalid(field: string, what: string): never {
  throw new TierError('invalid_field', `${field}: ${what}`, { field });
}

type Obj = Record<string, unknown>;

function object(v: unknown, field: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) invalid(field, 'must be an object');
  return v as Obj;
}

function onlyKeys(o: Obj, field: string, allowed: readonly string[], ignored: ReadonlySet<string> = new Set()): void {
  for (const key of Object.keys(o)) {
    if (!allowed.includes(key) && !ignored.has(key)) invalid(field ? `${field}.${key}` : key, `unknown key (expected one of ${allowed.join(', ')})`);
  }
}

function text(v: unknown, field: string, max: number, min = 1): string {
  if (typeof v !== 'string' || v.length < min || v.length > max) invalid(field, `must be a string of ${min}..${max} characters`);
  return v;
}

function id(v: unknown, field: string): string {
  if (!isValidId(v)) invalid(field, 'must be an id of 1..64 characters [A-Za-z0-9_-]');
  return v;
}

function int(v: unknown, field: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) invalid(field, `must be an integer in ${min}..${max}`);
  return v;
}

function num(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) invalid(field, 'must be a finite number');
  return v;
}

function bool(v: unknown, field: string): boolean {
  if (typeof v !== 'boolean') invalid(field, 'must be true or false');
  return v;
}

function array(v: unknown, field: string, min: number, max: number): unknown[] {
  if (!Array.isArray(v) || v.length < min || v.length > max) invalid(field, `must be an array of ${min}..${max} items`);
  return v;
}

function attrValue(v: unknown, field: string): AttrValue {
  if (v === null || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v)) || (typeof v === 'string' && v.length <= 1024)) return v;
  return invalid(field, 'must be a string, finite number, boolean or null');
}

function plainParams(v: unknown, field: string): Record<string, unknown> {
  const o = object(v, field);
  for (const key of Object.keys(o)) if (!isValidKey(key)) invalid(`${field}.${key}`, 'parameter name of 1..64 characters, not __proto__, constructor or prototype');
  return o;
}

/** `hub` and `device` both given (one device) or both omitted (any device of the home). */
function optionalDevice(o: Obj, field: string): { hub?: string; device?: string } {
  if (o.hub === undefined && o.device === undefined) return {};
  if (o.hub === undefined) invalid(`${field}.hub`, 'give both hub and device, or neither (any device of the home)');
  if (o.device === undefined) invalid(`${field}.device`, 'give both hub and device, or neither (any device of the home)');
  return { hub: id(o.hub, `${field}.hub`), device: id(o.device, `${field}.device`) };
}

/** Checks a cron pattern (5 fields, or 6 with seconds) and its spacing; returns the pattern. */
export function validateCron(v: unknown, field: string, minIntervalMs: number): string {
  const pattern = text(v, field, 100);
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

function trigger(v: unknown, field: string, opts: Required<ValidateOptions>): Trigger {
  const o = object(v, field);
  switch (o.type) {
    case 'state': {
      onlyKeys(o, field, ['type', 'hub', 'device', 'attr', 'to', 'from', 'above', 'below']);
      if (typeof o.attr !== 'string' || !isValidKey(o.attr)) invalid(`${field}.attr`, 'must be an attribute name of 1..64 characters');
      const t: Trigger = { type: 'state', ...optionalDevice(o, field), attr: o.attr };
      if (o.to !== undefined) t.to = attrValue(o.to, `${field}.to`);
      if (o.from !== undefined) t.from = attrValue(o.from, `${field}.from`);
      if (o.above !== undefined) t.above = num(o.above, `${field}.above`);
      if (o.below !== undefined) t.below = num(o.below, `${field}.below`);
      const threshold = t.above !== undefined || t.below !== undefined;
      if (threshold && (t.to !== undefined || t.from !== undefined)) invalid(`${field}.above`, 'a threshold (above/below) cannot be combined with to/from');
      if (t.above !== undefined && t.below !== undefined && t.above >= t.below) invalid(`${field}.below`, 'must be greater than above');
      return t;
    }
    case 'event': {
      onlyKeys(o, field, ['type', 'hub', 'device', 'event', 'params']);
      const t: Trigger = { type: 'event', ...optionalDevice(o, field), event: id(o.event, `${field}.event`) };
      if (o.params !== undefined) t.params = attrs(o.params, `${field}.params`);
      return t;
    }
    case 'cron': {
      onlyKeys(o, field, ['type', 'cron', 'catchUpMs']);
      const t: Trigger = { type: 'cron', cron: validateCron(o.cron, `${field}.cron`, opts.minCronIntervalMs) };
      if (o.catchUpMs !== undefined) t.catchUpMs = int(o.catchUpMs, `${field}.catchUpMs`, 0, RULE_LIMITS.maxCatchUpMs);
      return t;
    }
    default:
      return invalid(`${field}.type`, 'must be "state", "event" or "cron"');
  }
}

function command(o: Obj, field: string, opts: Required<ValidateOptions>): Omit<SceneCommand, 'hub' | 'device'> {
  const out: Omit<SceneCommand, 'hub' | 'device'> = {};
  if (o.set !== undefined && o.method !== undefined) invalid(`${field}.method`, 'give "set" or "method", not both');
  if (o.set !== undefined) {
    out.set = attrs(o.set, `${field}.set`);
    if (Object.keys(out.set).length === 0) invalid(`${field}.set`, 'must set at least one attribute');
  } else if (o.method !== undefined) {
    out.method = text(o.method, `${field}.method`, 64);
    out.params = o.params === undefined ? {} : plainParams(o.params, `${field}.params`);
  } else invalid(`${field}.set`, 'give "set" (attributes) or "method" (with optional "params")');
  if (o.set !== undefined && o.params !== undefined) invalid(`${field}.params`, 'params go with "method", not "set"');
  if (o.timeoutMs !== undefined) out.timeoutMs = int(o.timeoutMs, `${field}.timeoutMs`, 1, opts.maxCommandTimeoutMs);
  return out;
}

function template(v: unknown, field: string, max: number, aliases: ReadonlySet<string>): string {
  const s = text(v, field, max);
  for (const part of parseTemplate(s)) {
    if (typeof part === 'string') continue;
    const problem = checkExpression(part.expr, aliases);
    if (problem) invalid(field, `in {{ ${part.expr} }}: ${problem}`);
  }
  return s;
}

function action(v: unknown, field: string, aliases: ReadonlySet<string>, opts: Required<ValidateOptions>): Action {
  const o = object(v, field);
  switch (o.type) {
    case 'command':
      onlyKeys(o, field, ['type', 'hub', 'device', 'set', 'method', 'params', 'timeoutMs']);
      return { type: 'command', hub: id(o.hub, `${field}.hub`), device: id(o.device, `${field}.device`), ...command(o, field, opts) };
    case 'desired': {
      onlyKeys(o, field, ['type', 'hub', 'device', 'desired']);
      const desired = attrs(o.desired, `${field}.desired`);
      if (Object.keys(desired).length === 0) invalid(`${field}.desired`, 'must name at least one attribute');
      return { type: 'desired', hub: id(o.hub, `${field}.hub`), device: id(o.device, `${field}.device`), desired };
    }
    case 'scene':
      onlyKeys(o, field, ['type', 'scene']);
      return { type: 'scene', scene: id(o.scene, `${field}.scene`) };
    case 'notify':
      onlyKeys(o, field, ['type', 'title', 'body']);
      return {
        type: 'notify',
        title: template(o.title, `${field}.title`, RULE_LIMITS.titleLength, aliases),
        body: template(o.body, `${field}.body`, RULE_LIMITS.bodyLength, aliases),
      };
    case 'delay':
      onlyKeys(o, field, ['type', 'ms']);
      return { type: 'delay', ms: int(o.ms, `${field}.ms`, 1, RULE_LIMITS.maxDelayMs) };
    default:
      return invalid(`${field}.type`, 'must be "command", "desired", "scene", "notify" or "delay"');
  }
}

function withDefaults(opts: ValidateOptions): Required<ValidateOptions> {
  return { minCronIntervalMs: opts.minCronIntervalMs ?? 60_000, maxCommandTimeoutMs: opts.maxCommandTimeoutMs ?? 60_000 };
}

/** A rule body from a client → a RuleSpec with defaults filled in. */
export function validateRuleSpec(body: unknown, options: ValidateOptions = {}): RuleSpec {
  const opts = withDefaults(options);
  const o = object(body, 'body');
  onlyKeys(o, '', ['name', 'description', 'enabled', 'triggers', 'devices', 'conditions', 'actions', 'cooldownMs', 'limit'], SERVER_KEYS);
  const spec: RuleSpec = {
    name: text(o.name, 'name', RULE_LIMITS.nameLength),
    enabled: o.enabled === undefined ? true : bool(o.enabled, 'enabled'),
    triggers: array(o.triggers, 'triggers', 1, RULE_LIMITS.triggers).map((t, i) => trigger(t, `triggers[${i}]`, opts)),
    devices: {},
    conditions: [],
    actions: [],
    cooldownMs: o.cooldownMs === undefined ? 0 : int(o.cooldownMs, 'cooldownMs', 0, RULE_LIMITS.maxCooldownMs),
    limit: { ...DEFAULT_LIMIT },
  };
  if (o.description !== undefined) spec.description = text(o.description, 'description', RULE_LIMITS.descriptionLength, 0);
  if (o.devices !== undefined) {
    const devices = object(o.devices, 'devices');
    const names = Object.keys(devices);
    if (names.length > RULE_LIMITS.devices) invalid('devices', `at most ${RULE_LIMITS.devices} aliases`);
    for (const alias of names) {
      const field = `devices.${alias}`;
      if (!isAlias(alias)) invalid(field, 'alias must be an identifier of 1..32 characters [A-Za-z0-9_], not starting with a digit, not __proto__');
      const ref = object(devices[alias], field);
      onlyKeys(ref, field, ['hub', 'device']);
      spec.devices[alias] = { hub: id(ref.hub, `${field}.hub`), device: id(ref.device, `${field}.device`) };
    }
  }
  const aliases = new Set(Object.keys(spec.devices));
  if (o.conditions !== undefined) {
    spec.conditions = array(o.conditions, 'conditions', 0, RULE_LIMITS.conditions).map((c, i) => {
      const field = `conditions[${i}]`;
      if (typeof c !== 'string') invalid(field, 'must be a CEL expression (string)');
      const problem = checkExpression(c, aliases);
      if (problem) invalid(field, problem);
      return c;
    });
  }
  spec.actions = array(o.actions, 'actions', 1, RULE_LIMITS.actions).map((a, i) => action(a, `actions[${i}]`, aliases, opts));
  const last = spec.actions[spec.actions.length - 1]!;
  if (last.type === 'delay') invalid(`actions[${spec.actions.length - 1}]`, 'a delay must be followed by an action');
  if (o.limit !== undefined) {
    const l = object(o.limit, 'limit');
    onlyKeys(l, 'limit', ['maxRuns', 'windowMs']);
    if (l.maxRuns !== undefined) spec.limit.maxRuns = int(l.maxRuns, 'limit.maxRuns', 1, 1_000);
    if (l.windowMs !== undefined) spec.limit.windowMs = int(l.windowMs, 'limit.windowMs', 1_000, 3_600_000);
  }
  return spec;
}

/** A scene body from a client → a SceneSpec. */
export function validateSceneSpec(body: unknown, options: ValidateOptions = {}): SceneSpec {
  const opts = withDefaults(options);
  const o = object(body, 'body');
  onlyKeys(o, '', ['name', 'description', 'enabled', 'commands'], SERVER_KEYS);
  const spec: SceneSpec = {
    name: text(o.name, 'name', RULE_LIMITS.nameLength),
    enabled: o.enabled === undefined ? true : bool(o.enabled, 'enabled'),
    commands: array(o.commands, 'commands', 1, RULE_LIMITS.sceneCommands).map((c, i) => {
      const field = `commands[${i}]`;
      const co = object(c, field);
      onlyKeys(co, field, ['hub', 'device', 'set', 'method', 'params', 'timeoutMs']);
      return { hub: id(co.hub, `${field}.hub`), device: id(co.device, `${field}.device`), ...command(co, field, opts) };
    }),
  };
  if (o.description !== undefined) spec.description = text(o.description, 'description', RULE_LIMITS.descriptionLength, 0);
  return spec;
}

/** True for an IANA time zone name this runtime knows. */
export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

export function validateSettings(body: unknown): HomeSettings {
  const o = object(body, 'body');
  onlyKeys(o, '', ['timeZone']);
  const tz = text(o.timeZone, 'timeZone', 64);
  if (!isTimeZone(tz)) invalid('timeZone', 'must be an IANA time zone such as "Europe/Berlin" or "UTC"');
  return { timeZone: tz };
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

/** The optional body of a dry run: an event to test against (default: triggers count as fired). */
export function validateTestRequest(body: unknown, now: number): { event?: RuleEvent; prev: Record<string, AttrValue> } {
  if (body === undefined) return { prev: {} };
  const o = object(body, 'body');
  onlyKeys(o, '', ['event', 'prev']);
  const prev = o.prev === undefined ? {} : attrs(o.prev, 'prev');
  if (o.event === undefined) return { prev };
  const e = object(o.event, 'event');
  switch (e.kind) {
    case 'state':
      onlyKeys(e, 'event', ['kind', 'hub', 'device', 'attrs']);
      return { event: { kind: 'state', hub: id(e.hub, 'event.hub'), device: id(e.device, 'event.device'), attrs: attrs(e.attrs, 'event.attrs'), ts: now }, prev };
    case 'event':
      onlyKeys(e, 'event', ['kind', 'hub', 'device', 'event', 'params']);
      return {
        event: {
          kind: 'event',
          hub: id(e.hub, 'event.hub'),
          device: id(e.device, 'event.device'),
          event: id(e.event, 'event.event'),
          params: e.params === undefined ? {} : attrs(e.params, 'event.params'),
          ts: now,
        },
        prev,
      };
    case 'schedule':
      onlyKeys(e, 'event', ['kind']);
      return { event: { kind: 'schedule', scheduledAt: now, ts: now }, prev };
    default:
      return invalid('event.kind', 'must be "state", "event" or "schedule"');
  }
}
