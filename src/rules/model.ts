/**
 * The automation model: rules and scenes of a home, and the messages between the engine (main
 * thread) and the rule workers. Everything here is plain JSON (structured-clone safe), because it
 * crosses the worker boundary and is stored by the RuleStore as is.
 */
import type { HubEvent } from '../../proto/app.js';
import type { AttrValue, Attrs } from '../../proto/frames.js';

/** A sub-device of a hub. Every hub a rule or scene names must belong to the rule's home. */
export interface DeviceRef {
  hub: string;
  device: string;
}

/**
 * Fires when an attribute of a device changes. `hub`/`device` omitted: any device of the home.
 * With `to`/`from` it fires on that transition only; with `above`/`below` when the value crosses
 * into the range (the previous value was outside it or unknown). The previous value is the
 * device's shadow's before the report (the state event's `prev`); unknown only for the device's
 * first report of the attribute: then `from` does not match and a threshold fires when the value
 * is in range. A report repeating the value never fires.
 */
export interface StateTrigger {
  type: 'state';
  hub?: string;
  device?: string;
  attr: string;
  to?: AttrValue;
  from?: AttrValue;
  above?: number;
  below?: number;
}

/** Fires on a device event (`double_press`, `leak`); `params` must match as a subset. */
export interface EventTrigger {
  type: 'event';
  hub?: string;
  device?: string;
  event: string;
  params?: Attrs;
}

/**
 * Fires at each instant of a cron pattern (5 fields, or 6 with seconds) in the home's time zone,
 * once per instant across the cluster. A firing missed by more than `catchUpMs` is skipped.
 */
export interface CronTrigger {
  type: 'cron';
  cron: string;
  /** @default 60_000 (ms) */
  catchUpMs?: number;
}

export type Trigger = StateTrigger | EventTrigger | CronTrigger;

/** A device command as an action: the same fields as a scene's command. */
export interface CommandAction extends SceneCommand {
  type: 'command';
}

/** Writes desired state (applied now if the hub is online, else at its next connection). */
export interface DesiredAction {
  type: 'desired';
  hub: string;
  device: string;
  desired: Attrs;
}

export interface SceneAction {
  type: 'scene';
  scene: string;
}

/** A push notification to everyone in the home. `{{ expr }}` in title and body is evaluated. */
export interface NotifyAction {
  type: 'notify';
  title: string;
  body: string;
}

/** Waits, then goes on with the next action of the list. */
export interface DelayAction {
  type: 'delay';
  ms: number;
}

export type Action = CommandAction | DesiredAction | SceneAction | NotifyAction | DelayAction;

/** The loop guard: more than `maxRuns` runs within `windowMs` suspends the rule. */
export interface RunLimit {
  maxRuns: number;
  windowMs: number;
}

/** A rule as a client writes it (after validation and defaults). */
export interface RuleSpec {
  name: string;
  description?: string;
  enabled: boolean;
  /** any one of them fires the rule */
  triggers: Trigger[];
  /**
   * aliases of the devices whose state the conditions read: `dev.<alias>.<attr>`. Own keys only;
   * names of Object.prototype members are fine, `__proto__` is refused (assigning it sets the prototype)
   */
  devices: Record<string, DeviceRef>;
  /** CEL expressions that must all be true */
  conditions: string[];
  /** run in order; a failed action is counted and the next one still runs */
  actions: Action[];
  /** after a run, matches within this window are skipped; @default 0 (ms) */
  cooldownMs: number;
  limit: RunLimit;
}

/** A stored rule: the spec plus identity and version. */
export interface Rule extends RuleSpec {
  id: string;
  homeId: string;
  /** 1 at creation, +1 at every change (update, enable, disable) */
  version: number;
  createdAt: number;
  updatedAt: number;
}

/** A device command: `set` attributes, or a `method` with `params`. */
export interface SceneCommand {
  hub: string;
  device: string;
  set?: Attrs;
  method?: string;
  params?: Record<string, unknown>;
  /** @default the node's command timeout (ms) */
  timeoutMs?: number;
}

export interface SceneSpec {
  name: string;
  description?: string;
  enabled: boolean;
  commands: SceneCommand[];
}

export interface Scene extends SceneSpec {
  id: string;
  homeId: string;
  version: number;
  createdAt: number;
  updatedAt: number;
}

export interface HomeSettings {
  /** IANA time zone of cron triggers and of `time` in conditions; @default 'UTC' */
  timeZone: string;
}

export const DEFAULT_SETTINGS: HomeSettings = { timeZone: 'UTC' };

export const DEFAULT_LIMIT: RunLimit = { maxRuns: 20, windowMs: 60_000 };

export const DEFAULT_CATCH_UP_MS = 60_000;

/** A rule's cron triggers fire at most once per this (ms): checked at save, held to by the scheduler. */
export const CRON_MIN_INTERVAL_MS = 60_000;

// ---- engine ⇄ worker ----------------------------------------------------------------------------

/** What the worker evaluates a rule against. */
export type RuleEvent =
  | { kind: 'state'; hub: string; device: string; attrs: Attrs; ts: number }
  | { kind: 'event'; hub: string; device: string; event: string; params: Attrs; ts: number }
  /** a cron instant of the rule (matching is done by the scheduler) */
  | { kind: 'schedule'; scheduledAt: number; ts: number }
  /** a dry run without an event: the triggers count as fired */
  | { kind: 'manual'; ts: number };

/** The event as the worker sees it. */
export function ruleEventOf(event: Extract<HubEvent, { kind: 'state' | 'event' }>): RuleEvent {
  return event.kind === 'state'
    ? { kind: 'state', hub: event.hub, device: event.device, attrs: event.attrs, ts: event.ts }
    : { kind: 'event', hub: event.hub, device: event.device, event: event.event, params: event.params ?? {}, ts: event.ts };
}

/** Key of a device in `EvalTask.state`. */
export function deviceKey(hub: string, device: string): string {
  return `${hub}/${device}`;
}

export interface EvalTask {
  homeId: string;
  /** home version of the rule set the rules come from: the worker's compile cache key */
  homeVersion: number;
  timeZone: string;
  /** ms since the Unix epoch: the `time` of conditions */
  now: number;
  /** the candidate rules */
  rules: Rule[];
  event: RuleEvent;
  /** for a state event: the value each attribute had before, where the engine knew it (own keys only) */
  prev: Record<string, AttrValue>;
  /** reported state of the devices the candidate rules reference, by `deviceKey` (own keys only) */
  state: Record<string, Attrs>;
  /** report each condition's value (dry run) */
  explain?: boolean;
}

/** An action as the worker resolved it (templates filled in). */
export type PlannedAction =
  | { type: 'command'; hub: string; device: string; set?: Attrs; method?: string; params?: Record<string, unknown>; timeoutMs?: number }
  | { type: 'desired'; hub: string; device: string; desired: Attrs }
  | { type: 'scene'; scene: string }
  | { type: 'notify'; title: string; body: string }
  | { type: 'delay'; ms: number };

export interface ConditionReport {
  expr: string;
  value?: unknown;
  error?: string;
}

export interface RuleOutcome {
  ruleId: string;
  version: number;
  /** a trigger matched the event (always true for schedule and manual events) */
  triggered: boolean;
  /** index of the trigger that matched */
  trigger?: number;
  /** every condition held: the rule runs `actions` */
  passed: boolean;
  actions: PlannedAction[];
  /** compile or evaluation failure; the rule does not run */
  error?: string;
  /** not evaluated (with `error` saying why): its event's budget was used up (evaluate.ts) */
  dropped?: 'event_budget';
  conditions?: ConditionReport[];
  /** worker time spent on this rule, µs */
  evalUs: number;
}

export interface EvalResult {
  outcomes: RuleOutcome[];
  /** rules compiled (cache misses) for this task */
  compiled: number;
}
