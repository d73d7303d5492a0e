/**
 * The rules engine: the main-thread half of automation. For each hub event it finds the rules
 * whose triggers may match (an index lookup), gathers the device state those rules reference,
 * hands event + state to the worker pool, and runs the actions that come back through the
 * injected command, desired-state and push functions. It never evaluates rule code itself.
 *
 * Ordering: events of one home are evaluated one after another in arrival order (a chain per
 * home); homes run concurrently. A rule's actions run in list order, detached from the chain.
 *
 * Semantics a user sees:
 * - cooldown: after a run, matches within the rule's `cooldownMs` are skipped (counted).
 * - loop guard: a run that would be the (maxRuns+1)-th within `limit.windowMs` suspends the rule
 *   for `suspendMs` instead; this is logged, counted, shown in the rule's status and pushed to
 *   the home. Editing or re-enabling the rule (a new version) lifts it.
 * - restart: a run of a rule cancels that rule's earlier run still waiting in a delay, so "on,
 *   wait 5 min, off" keeps the light on until 5 min after the last trigger. Disabling or deleting
 *   the rule cancels its waiting run. Delays live in this node's memory: a restart forgets them.
 * - All of the above is per node; in a cluster, a hub's events are evaluated on the node holding it.
 */
import { performance } from 'node:perf_hooks';
import type { HubEvent } from '../../proto/app.js';
import type { AttrValue, Attrs } from '../../proto/frames.js';
import type { CommandSpec } from '../actors/commands.js';
import type { TimerHandle, TimerTarget, TimerWheel } from '../actors/timer-wheel.js';
import { TierError } from '../errors.js';
import type { PushNotification } from '../ports/push-queue/push-queue.js';
import type { Logger } from '../log/logger.js';
import { RuleStats, noRuleMetrics, type DropReason, type RuleMetricsSink, type RuleStatsSnapshot } from './metrics.js';
import { deviceKey, type ConditionReport, type DeviceRef, type EvalTask, type PlannedAction, type Rule, type RuleEvent, type Scene, type SceneCommand } from './model.js';
import { RulePoolError, type RuleRunner } from './pool.js';
import type { RuleStore } from '../ports/rule-store/rule-store.js';

export interface RulesEngineDeps {
  store: RuleStore;
  runner: RuleRunner;
  /** reported attributes of these devices, by `deviceKey(hub, device)`; unknown devices left out */
  stateOf(refs: readonly DeviceRef[]): Promise<Record<string, Attrs>>;
  runCommand(hubId: string, deviceId: string, spec: CommandSpec, timeoutMs: number): Promise<unknown>;
  setDesired(hubId: string, deviceId: string, patch: Attrs): Promise<unknown>;
  push(notification: PushNotification): Promise<unknown>;
  /**
   * The home a hub is provisioned in (registry). When given, every hub a rule or scene reaches at
   * run time must still be in the rule's home: state of other hubs is not read, commands to them
   * fail. (The API checks this when a rule is written; this covers hubs moved since.)
   */
  homeOfHub?(hubId: string): Promise<string | null>;
  timers: TimerWheel;
  log: Logger;
  metrics?: RuleMetricsSink;
  now?: () => number;
  /** @default 5_000 (ms) */
  commandTimeoutMs?: number;
  /** how long the loop guard suspends a rule; @default 600_000 (ms) */
  suspendMs?: number;
  /** a home's cached rules are re-checked against the store's version after this; @default 10_000 (ms) */
  cacheTtlMs?: number;
  /** events of one home waiting for evaluation; more are dropped and counted; @default 256 */
  maxBacklogPerHome?: number;
  /** homes kept in memory (rules index, last values); idle ones beyond are forgotten; @default 50_000 */
  maxHomes?: number;
}

interface Snapshot {
  version: number;
  checkedAt: number;
  stale: boolean;
  timeZone: string;
  rules: Map<string, Rule>;
  /** trigger key → enabled rules with such a trigger */
  index: Map<string, Rule[]>;
}

interface Home {
  id: string;
  snap: Snapshot | null;
  chain: Promise<void>;
  pending: number;
  /** the highest home version the store told of (watch): a snapshot older than it is stale */
  wanted: number;
  /** when a dropped event of this home was last logged (one line per 10 s at most) */
  lastDropLog: number;
  /** last value seen of each attribute a state trigger watches: `hub/device/attr` */
  lastValues: Map<string, AttrValue>;
}

interface RuleRuntime {
  /** start times of recent runs, oldest first (loop guard window) */
  runs: number[];
  lastRunAt: number | null;
  suspendedUntil: number;
  /** the rule version the suspension applies to */
  suspendedVersion: number;
  active: ActionRun | null;
}

export interface RuleStatus {
  suspendedUntil: number | null;
  lastRunAt: number | null;
  /** a run is waiting in a delay */
  waiting: boolean;
  stats: RuleStatsSnapshot;
}

export type FireResult = 'ran' | 'not_matched' | 'suppressed' | 'error' | 'gone';

export interface DryRunReport {
  ruleId: string;
  version: number;
  enabled: boolean;
  triggered: boolean;
  trigger: number | null;
  passed: boolean;
  conditions: ConditionReport[];
  error: string | null;
  /** what it would do, scenes expanded to their commands */
  actions: Array<PlannedAction | { type: 'scene'; scene: string; commands: SceneCommand[] | null; problem?: string }>;
  /** why it would not run now although it matched: disabled, suspended, cooldown */
  blockedBy: string[];
  wouldRun: boolean;
  /** the device state the conditions saw */
  state: Record<string, Attrs>;
}

export interface SceneRunResult {
  sceneId: string;
  results: Array<{ hub: string; device: string; ok: boolean; result?: unknown; code?: string; message?: string }>;
}

const HUB_HOME_TTL_MS = 30_000;

function stateKey(hub: string, device: string, attr: string): string {
  return `s|${hub}|${device}|${attr}`;
}
function stateAnyKey(attr: string): string {
  return `s|*|${attr}`;
}
function eventKey(hub: string, device: string, event: string): string {
  return `e|${hub}|${device}|${event}`;
}
function eventAnyKey(event: string): string {
  return `e|*|${event}`;
}

export class RulesEngine {
  private readonly homes = new Map<string, Home>();
  private readonly runtimes = new Map<string, RuleRuntime>();
  readonly stats = new RuleStats();
  private readonly metrics: RuleMetricsSink;
  private readonly now: () => number;
  private readonly commandTimeoutMs: number;
  private readonly suspendMs: number;
  private readonly cacheTtlMs: number;
  private readonly maxBacklog: number;
  private readonly maxHomes: number;
  private readonly inflight = new Set<Promise<unknown>>();
  /** hub → home, cached for HUB_HOME_TTL_MS */
  private readonly hubHomes = new Map<string, { home: string | null; at: number }>();
  private readonly unwatch: () => void;
  private closed = false;

  constructor(private readonly deps: RulesEngineDeps) {
    this.metrics = deps.metrics ?? noRuleMetrics;
    this.now = deps.now ?? Date.now;
    this.commandTimeoutMs = deps.commandTimeoutMs ?? 5_000;
    this.suspendMs = deps.suspendMs ?? 600_000;
    this.cacheTtlMs = deps.cacheTtlMs ?? 10_000;
    this.maxBacklog = deps.maxBacklogPerHome ?? 256;
    this.maxHomes = deps.maxHomes ?? 50_000;
    this.unwatch = deps.store.watch((change) => {
      const home = this.homes.get(change.homeId);
      if (!home) return;
      home.wanted = Math.max(home.wanted, change.version);
      if (!home.snap || home.snap.version >= change.version) return;
      home.snap.stale = true;
      // reload now rather than at the next event, so a disabled or deleted rule's waiting run stops
      this.enqueue(home, () => this.load(home));
    });
  }

  /**
   * Takes a hub event (state and device events; others are ignored). Returns at once and never
   * throws: evaluation happens on the pool, failures are counted and logged.
   */
  onEvent(event: HubEvent): void {
    if (this.closed || (event.kind !== 'state' && event.kind !== 'event')) return;
    const received = performance.now();
    const home = this.home(event.home);
    const snap = home.snap;
    // fast path: a home whose rules are loaded and fresh, nothing queued, and no trigger listening
    if (snap && !snap.stale && home.pending === 0 && this.now() - snap.checkedAt < this.cacheTtlMs && !listens(snap, event)) return;
    const ruleEvent: RuleEvent =
      event.kind === 'state'
        ? { kind: 'state', hub: event.hub, device: event.device, attrs: event.attrs, ts: event.ts }
        : { kind: 'event', hub: event.hub, device: event.device, event: event.event, params: event.params ?? {}, ts: event.ts };
    const dedup = event.kind === 'state' ? `${event.hub}:${event.device}:v${event.version}` : `${event.hub}:${event.device}:${event.event}:${event.ts}`;
    this.enqueue(home, () => this.processEvent(home, ruleEvent, dedup, received));
  }

  /** A cron instant of a rule (from the scheduler): evaluates its conditions and runs it. */
  fireScheduled(homeId: string, ruleId: string, scheduledAt: number): Promise<FireResult> {
    const home = this.home(homeId);
    return new Promise<FireResult>((resolve) => {
      const queued = this.enqueue(home, async () => {
        const snap = await this.load(home);
        const rule = snap.rules.get(ruleId);
        if (!rule || !rule.enabled || !rule.triggers.some((t) => t.type === 'cron')) return resolve('gone');
        const results = await this.evaluateAndRun(home, snap, [rule], { kind: 'schedule', scheduledAt, ts: this.now() }, {}, `${scheduledAt}`, performance.now());
        resolve(results.get(ruleId) ?? 'error');
      }, () => resolve('error'));
      if (!queued) resolve('error');
    });
  }

  /**
   * Evaluates a rule against current state (or a given event) on the pool and reports what it
   * would do. Runs nothing and counts nothing.
   */
  async dryRun(homeId: string, ruleId: string, event?: RuleEvent, prev: Record<string, AttrValue> = {}): Promise<DryRunReport> {
    const rule = await this.deps.store.getRule(homeId, ruleId);
    if (!rule) throw new TierError('not_found', `no rule ${ruleId} in home ${homeId}`);
    const [settings, homeVersion] = await Promise.all([this.deps.store.getSettings(homeId), this.deps.store.homeVersion(homeId)]);
    const state = await this.gather(homeId, [rule]);
    const task: EvalTask = {
      homeId,
      homeVersion,
      timeZone: settings.timeZone,
      now: this.now(),
      rules: [rule],
      event: event ?? { kind: 'manual', ts: this.now() },
      prev,
      state,
      explain: true,
    };
    const result = await this.deps.runner.evaluate(task);
    const o = result.outcomes[0];
    if (!o) throw new TierError('internal', 'the worker returned no outcome');
    const actions: DryRunReport['actions'] = [];
    for (const a of o.actions) {
      if (a.type !== 'scene') {
        actions.push(a);
        continue;
      }
      const scene = await this.deps.store.getScene(homeId, a.scene);
      if (!scene) actions.push({ type: 'scene', scene: a.scene, commands: null, problem: 'no such scene' });
      else if (!scene.enabled) actions.push({ type: 'scene', scene: a.scene, commands: scene.commands, problem: 'scene is disabled' });
      else actions.push({ type: 'scene', scene: a.scene, commands: scene.commands });
    }
    const blockedBy: string[] = [];
    const rt = this.runtimes.get(rule.id);
    const now = this.now();
    if (!rule.enabled) blockedBy.push('disabled');
    if (rt && rt.suspendedUntil > now && rt.suspendedVersion === rule.version) blockedBy.push('suspended');
    if (rt?.lastRunAt != null && rule.cooldownMs > 0 && now - rt.lastRunAt < rule.cooldownMs) blockedBy.push('cooldown');
    const matched = o.triggered && o.passed;
    return {
      ruleId: rule.id,
      version: rule.version,
      enabled: rule.enabled,
      triggered: o.triggered,
      trigger: o.trigger ?? null,
      passed: o.passed,
      conditions: o.conditions ?? [],
      error: o.error ?? null,
      actions: matched ? actions : [],
      blockedBy: matched ? blockedBy : [],
      wouldRun: matched && blockedBy.length === 0,
      state,
    };
  }

  /** Runs a scene now: its commands at once, in parallel; one result per command. */
  async runScene(homeId: string, sceneId: string): Promise<SceneRunResult> {
    const scene = await this.deps.store.getScene(homeId, sceneId);
    if (!scene) throw new TierError('not_found', `no scene ${sceneId} in home ${homeId}`);
    if (!scene.enabled) throw new TierError('invalid_field', `enabled: scene ${sceneId} is disabled`, { field: 'enabled' });
    return this.sceneCommands(scene);
  }

  /** What this node knows of a rule's runs (per node: other nodes count their own). */
  status(ruleId: string, version: number): RuleStatus {
    const rt = this.runtimes.get(ruleId);
    const suspended = rt && rt.suspendedVersion === version && rt.suspendedUntil > this.now() ? rt.suspendedUntil : null;
    return { suspendedUntil: suspended, lastRunAt: rt?.lastRunAt ?? null, waiting: rt?.active?.waiting ?? false, stats: this.stats.snapshot(ruleId) };
  }

  /** Resolves when no evaluation or action is in progress (runs parked in a delay do not count). */
  async idle(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
  }

  /** Stops taking events, cancels runs waiting in a delay, waits for what is in progress. */
  async close(): Promise<void> {
    this.closed = true;
    this.unwatch();
    for (const rt of this.runtimes.values()) rt.active?.cancel();
    await this.idle();
  }

  // ---- internals ------------------------------------------------------------------------------

  private home(homeId: string): Home {
    let home = this.homes.get(homeId);
    if (!home) {
      if (this.homes.size >= this.maxHomes) this.evictIdleHomes();
      home = { id: homeId, snap: null, chain: Promise.resolve(), pending: 0, wanted: 0, lastDropLog: 0, lastValues: new Map() };
      this.homes.set(homeId, home);
    }
    return home;
  }

  private evictIdleHomes(): void {
    let n = Math.max(1, Math.floor(this.maxHomes / 10));
    for (const [id, h] of this.homes) {
      if (n === 0) break;
      if (h.pending > 0) continue;
      this.homes.delete(id);
      n--;
    }
  }

  /** Appends work to the home's chain; false (and counted) when the backlog is full. */
  private enqueue(home: Home, work: () => Promise<unknown>, onError?: (err: unknown) => void): boolean {
    if (this.closed) {
      this.metrics.dropped('closed');
      return false;
    }
    if (home.pending >= this.maxBacklog) {
      this.metrics.dropped('backlog');
      const now = this.now();
      if (now - home.lastDropLog >= 10_000) {
        home.lastDropLog = now;
        this.deps.log.warn({ homeId: home.id, backlog: home.pending }, 'rules: home backlog full, events dropped (counted in tier_rule_dropped_total)');
      }
      return false;
    }
    home.pending++;
    const step = home.chain
      .then(work)
      .catch((err: unknown) => {
        this.deps.log.error({ err, homeId: home.id }, 'rules: evaluation step failed');
        onError?.(err);
      })
      .then(() => {
        home.pending--;
      });
    home.chain = step;
    this.track(step);
    return true;
  }

  private track(p: Promise<unknown>): void {
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
  }

  /** The home's rules, reloaded when changed (watch) or when the ttl passed and the version moved. */
  private async load(home: Home): Promise<Snapshot> {
    const now = this.now();
    const snap = home.snap;
    if (snap && !snap.stale) {
      if (now - snap.checkedAt < this.cacheTtlMs) return snap;
      if ((await this.deps.store.homeVersion(home.id)) === snap.version) {
        snap.checkedAt = now;
        return snap;
      }
    }
    const [version, rules, settings] = await Promise.all([this.deps.store.homeVersion(home.id), this.deps.store.listRules(home.id), this.deps.store.getSettings(home.id)]);
    // a change told while this load was reading leaves the new snapshot stale at once
    const next: Snapshot = { version, checkedAt: now, stale: version < home.wanted, timeZone: settings.timeZone, rules: new Map(rules.map((r) => [r.id, r])), index: new Map() };
    for (const rule of rules) {
      if (!rule.enabled) continue;
      for (const t of rule.triggers) {
        let key: string;
        if (t.type === 'state') key = t.hub !== undefined && t.device !== undefined ? stateKey(t.hub, t.device, t.attr) : stateAnyKey(t.attr);
        else if (t.type === 'event') key = t.hub !== undefined && t.device !== undefined ? eventKey(t.hub, t.device, t.event) : eventAnyKey(t.event);
        else continue;
        const list = next.index.get(key);
        if (!list) next.index.set(key, [rule]);
        else if (!list.includes(rule)) list.push(rule);
      }
    }
    if (snap) this.retire(snap, next);
    home.snap = next;
    return next;
  }

  /** Rules deleted, disabled or edited since the old snapshot: cancel their waiting runs. */
  private retire(old: Snapshot, next: Snapshot): void {
    for (const [id, rule] of old.rules) {
      const now = next.rules.get(id);
      if (now && now.enabled && now.version === rule.version) continue;
      const rt = this.runtimes.get(id);
      if (!now || !now.enabled) rt?.active?.cancel();
      if (!now) {
        this.runtimes.delete(id);
        this.stats.delete(id);
      }
    }
  }

  private async processEvent(home: Home, ev: RuleEvent, dedup: string, received: number): Promise<void> {
    const snap = await this.load(home);
    const candidates = new Map<string, Rule>();
    // keyed by attribute names from the hub: no prototype, so every name is a plain own key
    const prev = Object.create(null) as Record<string, AttrValue>;
    if (ev.kind === 'state') {
      for (const attr in ev.attrs) {
        const a = snap.index.get(stateKey(ev.hub, ev.device, attr));
        const b = snap.index.get(stateAnyKey(attr));
        if (!a && !b) continue;
        // a watched attribute: remember the value it had, for "changes", from/to and thresholds
        const key = `${ev.hub}/${ev.device}/${attr}`;
        if (home.lastValues.has(key)) prev[attr] = home.lastValues.get(key)!;
        home.lastValues.set(key, ev.attrs[attr]!);
        for (const r of a ?? []) candidates.set(r.id, r);
        for (const r of b ?? []) candidates.set(r.id, r);
      }
    } else if (ev.kind === 'event') {
      for (const r of snap.index.get(eventKey(ev.hub, ev.device, ev.event)) ?? []) candidates.set(r.id, r);
      for (const r of snap.index.get(eventAnyKey(ev.event)) ?? []) candidates.set(r.id, r);
    }
    if (candidates.size === 0) return;
    const now = this.now();
    const rules: Rule[] = [];
    for (const r of candidates.values()) {
      if (this.suspended(r, now)) {
        this.stats.of(r.id).suppressed++;
        this.metrics.outcome('suppressed');
      } else rules.push(r);
    }
    if (rules.length > 0) await this.evaluateAndRun(home, snap, rules, ev, prev, dedup, received);
  }

  private suspended(rule: Rule, now: number): boolean {
    const rt = this.runtimes.get(rule.id);
    return rt !== undefined && rt.suspendedVersion === rule.version && rt.suspendedUntil > now;
  }

  private async gather(homeId: string, rules: readonly Rule[]): Promise<Record<string, Attrs>> {
    const refs = new Map<string, DeviceRef>();
    for (const r of rules) {
      for (const alias in r.devices) {
        if (!Object.hasOwn(r.devices, alias)) continue;
        const ref = r.devices[alias]!;
        refs.set(deviceKey(ref.hub, ref.device), ref);
      }
    }
    if (refs.size === 0) return {};
    const allowed: DeviceRef[] = [];
    for (const ref of refs.values()) if (await this.hubInHome(ref.hub, homeId)) allowed.push(ref);
    return allowed.length === 0 ? {} : this.deps.stateOf(allowed);
  }

  private async hubInHome(hub: string, homeId: string): Promise<boolean> {
    if (!this.deps.homeOfHub) return true;
    const now = this.now();
    const cached = this.hubHomes.get(hub);
    if (cached && now - cached.at < HUB_HOME_TTL_MS) return cached.home === homeId;
    const home = await this.deps.homeOfHub(hub);
    if (this.hubHomes.size >= 100_000) this.hubHomes.clear();
    this.hubHomes.set(hub, { home, at: now });
    return home === homeId;
  }

  private async requireHubInHome(hub: string, homeId: string): Promise<void> {
    if (!(await this.hubInHome(hub, homeId))) throw new TierError('forbidden', `hub ${hub} is not in home ${homeId}`);
  }

  private async evaluateAndRun(
    home: Home,
    snap: Snapshot,
    rules: Rule[],
    ev: RuleEvent,
    prev: Record<string, AttrValue>,
    dedup: string,
    received: number,
  ): Promise<Map<string, FireResult>> {
    const out = new Map<string, FireResult>();
    const now = this.now();
    let state: Record<string, Attrs>;
    try {
      state = await this.gather(home.id, rules);
    } catch (err) {
      this.failAll(rules, 'state_unavailable', `device state unavailable: ${(err as Error).message}`, err);
      return out;
    }
    const task: EvalTask = { homeId: home.id, homeVersion: snap.version, timeZone: snap.timeZone, now, rules, event: ev, prev, state };
    const started = performance.now();
    let result;
    try {
      result = await this.deps.runner.evaluate(task);
    } catch (err) {
      const reason: DropReason = err instanceof RulePoolError && err.code !== 'worker_failed' ? err.code : 'worker_failed';
      this.failAll(rules, reason, err instanceof Error ? err.message : String(err), err);
      return out;
    }
    this.metrics.evaluation((performance.now() - started) / 1000);
    const at = this.now();
    for (const o of result.outcomes) {
      const rule = rules.find((r) => r.id === o.ruleId);
      if (!rule) continue;
      const c = this.stats.of(rule.id);
      c.evaluated++;
      c.lastEvaluatedAt = at;
      c.sample(o.evalUs);
      if (o.triggered) c.triggered++;
      if (o.error) {
        this.stats.error(rule.id, at, o.error);
        this.metrics.outcome('error');
        out.set(rule.id, 'error');
        continue;
      }
      if (!o.triggered || !o.passed) {
        this.metrics.outcome(o.triggered ? 'not_matched' : 'not_triggered');
        out.set(rule.id, 'not_matched');
        continue;
      }
      c.matched++;
      if (!this.admit(home, rule, at)) {
        c.suppressed++;
        this.metrics.outcome('suppressed');
        out.set(rule.id, 'suppressed');
        continue;
      }
      c.lastRunAt = at;
      this.metrics.outcome('matched');
      out.set(rule.id, 'ran');
      this.startRun(home.id, rule, o.actions, `rule:${rule.id}:${dedup}`, received);
    }
    return out;
  }

  private failAll(rules: readonly Rule[], reason: DropReason, message: string, err: unknown): void {
    this.metrics.dropped(reason);
    const at = this.now();
    for (const r of rules) {
      this.stats.of(r.id).evaluated++;
      this.stats.error(r.id, at, message);
      this.metrics.outcome('error');
    }
    this.deps.log.warn({ err, reason, rules: rules.map((r) => r.id) }, 'rules: evaluation failed');
  }

  /** Cooldown and loop guard; true when the rule may run now (and the run is recorded). */
  private admit(home: Home, rule: Rule, now: number): boolean {
    let rt = this.runtimes.get(rule.id);
    if (!rt) {
      rt = { runs: [], lastRunAt: null, suspendedUntil: 0, suspendedVersion: -1, active: null };
      this.runtimes.set(rule.id, rt);
    }
    if (rt.suspendedVersion === rule.version && rt.suspendedUntil > now) return false;
    if (rule.cooldownMs > 0 && rt.lastRunAt !== null && now - rt.lastRunAt < rule.cooldownMs) return false;
    const windowStart = now - rule.limit.windowMs;
    while (rt.runs.length > 0 && rt.runs[0]! <= windowStart) rt.runs.shift();
    if (rt.runs.length >= rule.limit.maxRuns) {
      this.suspend(home, rule, rt, now);
      return false;
    }
    rt.runs.push(now);
    rt.lastRunAt = now;
    return true;
  }

  private suspend(home: Home, rule: Rule, rt: RuleRuntime, now: number): void {
    rt.suspendedUntil = now + this.suspendMs;
    rt.suspendedVersion = rule.version;
    rt.runs = [];
    rt.active?.cancel();
    const c = this.stats.of(rule.id);
    c.loopStops++;
    const message = `loop guard: more than ${rule.limit.maxRuns} runs within ${rule.limit.windowMs} ms; suspended for ${Math.round(this.suspendMs / 1000)} s`;
    this.stats.error(rule.id, now, message);
    this.metrics.loopStopped();
    this.deps.log.warn({ homeId: home.id, ruleId: rule.id, name: rule.name, maxRuns: rule.limit.maxRuns, windowMs: rule.limit.windowMs, suspendMs: this.suspendMs }, 'rules: rule suspended by the loop guard');
    const report = this.deps
      .push({
        homeId: home.id,
        title: 'Automation paused',
        body: `"${rule.name}" ran more than ${rule.limit.maxRuns} times within ${Math.round(rule.limit.windowMs / 1000)} s and was paused for ${Math.round(this.suspendMs / 60_000)} min. Edit or re-enable it to resume.`,
        dedupKey: `rule:${rule.id}:suspended:${now}`,
        data: { ruleId: rule.id, reason: 'loop_guard' },
      })
      .catch((err: unknown) => this.deps.log.warn({ err, ruleId: rule.id }, 'rules: loop-guard report not queued'));
    this.track(report);
  }

  private startRun(homeId: string, rule: Rule, actions: PlannedAction[], dedupBase: string, received: number): void {
    const rt = this.runtimes.get(rule.id)!;
    rt.active?.cancel();
    const run = new ActionRun(this, homeId, rule, actions, dedupBase, received);
    rt.active = run;
    run.continueFrom(0);
  }

  /** @internal the ActionRun's way back in */
  runFinished(run: ActionRun): void {
    const rt = this.runtimes.get(run.rule.id);
    if (rt?.active === run) rt.active = null;
  }

  /** @internal */
  trackRun(p: Promise<unknown>): void {
    this.track(p);
  }

  /** @internal */
  scheduleDelay(ms: number, target: TimerTarget): TimerHandle {
    return this.deps.timers.schedule(ms, target);
  }

  /** @internal */
  cancelDelay(handle: TimerHandle | null): void {
    this.deps.timers.cancel(handle);
  }

  /** @internal runs one planned action; throws on failure */
  async runAction(homeId: string, rule: Rule, a: PlannedAction, index: number, dedupBase: string): Promise<void> {
    switch (a.type) {
      case 'command':
        await this.requireHubInHome(a.hub, homeId);
        await this.deps.runCommand(a.hub, a.device, commandSpec(a), a.timeoutMs ?? this.commandTimeoutMs);
        return;
      case 'desired':
        await this.requireHubInHome(a.hub, homeId);
        await this.deps.setDesired(a.hub, a.device, a.desired);
        return;
      case 'scene': {
        const scene = await this.deps.store.getScene(homeId, a.scene);
        if (!scene) throw new Error(`scene ${a.scene} does not exist`);
        if (!scene.enabled) throw new Error(`scene ${a.scene} is disabled`);
        const res = await this.sceneCommands(scene);
        const failed = res.results.filter((r) => !r.ok);
        if (failed.length > 0) throw new Error(`scene ${a.scene}: ${failed.length} of ${res.results.length} commands failed (${failed.map((f) => f.code).join(', ')})`);
        return;
      }
      case 'notify':
        await this.deps.push({ homeId, title: a.title, body: a.body, dedupKey: `${dedupBase}:${index}`, data: { ruleId: rule.id } });
        return;
      case 'delay':
        return; // handled by ActionRun
    }
  }

  /** @internal the first action of a run starts now */
  firstAction(received: number): void {
    this.metrics.eventToAction((performance.now() - received) / 1000);
  }

  /** @internal */
  actionDone(rule: Rule, a: PlannedAction, index: number, err: unknown): void {
    this.metrics.action(a.type, err === undefined);
    if (err === undefined) this.stats.of(rule.id).actionsRun++;
    else {
      const msg = `actions[${index}] (${a.type}): ${err instanceof Error ? err.message : String(err)}`;
      this.stats.error(rule.id, this.now(), msg);
      this.deps.log.warn({ ruleId: rule.id, err }, 'rules: action failed');
    }
  }

  private async sceneCommands(scene: Scene): Promise<SceneRunResult> {
    const settled = await Promise.allSettled(
      scene.commands.map(async (c) => {
        await this.requireHubInHome(c.hub, scene.homeId);
        return this.deps.runCommand(c.hub, c.device, commandSpec(c), c.timeoutMs ?? this.commandTimeoutMs);
      }),
    );
    return {
      sceneId: scene.id,
      results: settled.map((s, i) => {
        const c = scene.commands[i]!;
        if (s.status === 'fulfilled') return { hub: c.hub, device: c.device, ok: true, result: s.value };
        const err = s.reason as unknown;
        return { hub: c.hub, device: c.device, ok: false, code: err instanceof TierError ? err.code : 'internal', message: err instanceof Error ? err.message : String(err) };
      }),
    };
  }
}

function commandSpec(c: { set?: Attrs; method?: string; params?: Record<string, unknown> }): CommandSpec {
  return c.set !== undefined ? { set: c.set } : { method: c.method ?? 'set', params: c.params ?? {} };
}

/** True when some enabled trigger of the home may match this event (the cheap pre-check). */
function listens(snap: Snapshot, event: HubEvent): boolean {
  if (snap.index.size === 0) return false;
  if (event.kind === 'state') {
    for (const attr in event.attrs) if (snap.index.has(stateKey(event.hub, event.device, attr)) || snap.index.has(stateAnyKey(attr))) return true;
    return false;
  }
  if (event.kind === 'event') return snap.index.has(eventKey(event.hub, event.device, event.event)) || snap.index.has(eventAnyKey(event.event));
  return false;
}

/**
 * One run of a rule's actions: in order, each awaited; a delay parks the run on the timer wheel.
 * Cancelling stops it before its next action (an action already started finishes).
 */
class ActionRun implements TimerTarget {
  private cancelled = false;
  private timer: TimerHandle | null = null;
  private next = 0;
  private started = false;

  constructor(
    private readonly engine: RulesEngine,
    private readonly homeId: string,
    readonly rule: Rule,
    private readonly actions: PlannedAction[],
    private readonly dedupBase: string,
    private readonly received: number,
  ) {}

  get waiting(): boolean {
    return this.timer !== null && this.timer.active;
  }

  cancel(): void {
    this.cancelled = true;
    this.engine.cancelDelay(this.timer);
    this.timer = null;
    this.engine.runFinished(this);
  }

  onTimer(): void {
    this.timer = null;
    this.continueFrom(this.next);
  }

  continueFrom(index: number): void {
    this.engine.trackRun(this.execute(index));
  }

  private async execute(from: number): Promise<void> {
    for (let i = from; i < this.actions.length; i++) {
      if (this.cancelled) return;
      const a = this.actions[i]!;
      if (a.type === 'delay') {
        this.next = i + 1;
        this.timer = this.engine.scheduleDelay(a.ms, this);
        return;
      }
      if (!this.started) {
        this.started = true;
        this.engine.firstAction(this.received);
      }
      let error: unknown;
      try {
        await this.engine.runAction(this.homeId, this.rule, a, i, this.dedupBase);
      } catch (err) {
        error = err ?? new Error('action failed');
      }
      this.engine.actionDone(this.rule, a, i, error);
    }
    if (!this.cancelled) this.engine.runFinished(this);
  }
}
