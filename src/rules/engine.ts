/**
 * The rules engine: the main-thread half of automation. It never evaluates rule code itself.
 *
 * Each home is an actor of the node's runtime (HomeActor): its events and cron instants are
 * handled one after another in arrival order, with a bounded backlog; homes run concurrently, and
 * idle homes beyond `maxHomes` are forgotten. For an event the home finds the candidate rules
 * (TriggerIndex), reads the device state they reference within the home (HomeScope), hands both to
 * the worker pool, and runs the actions that come back (ActionRun) under each rule's cooldown, loop
 * guard and restart (RunGuard). A dry run (dry-run.ts) evaluates without running or counting.
 *
 * All of this is per node; in a cluster, a hub's events are evaluated on the node holding it.
 * Runs parked in a delay are saved in `pendingRuns` when given, and `resumePending` picks them up
 * at the next start (resume.ts). With `marks`, each home notes how far its events are evaluated, and
 * `replayUnevaluated` evaluates at start what an unclean stop left behind (replay.ts), reports
 * whose events it lost included (replay-reports.ts), and `replayOrphans` what nodes that died left
 * (a history shared by a cluster).
 */
import { performance } from 'node:perf_hooks';
import type { HubEvent } from '../../proto/app.js';
import type { AttrValue, Attrs } from '../../proto/frames.js';
import { ActorDirectory, type ActorSystem } from '../actors/actor.js';
import type { Span } from '../trace/tracing.js';
import { TierError } from '../errors.js';
import { failureLog, type SampledLog } from '../log/sampler.js';
import type { PendingRun } from '../ports/pending-runs/pending-runs.js';
import type { UnevaluatedHome } from '../ports/history/history.js';
import { HubWait } from './hub-wait.js';
import { sceneCommandsPerHub } from './hub-lanes.js';
import type { ActionDeps } from './action-run.js';
import { runSceneCommands, type SceneRunResult } from './actions.js';
import { dryRun, type DryRunReport } from './dry-run.js';
import { DryRunLimits } from './dry-run-limits.js';
import { HomeActor, type FireResult, type HomeDeps } from './home-actor.js';
import { HomeScope } from './home-scope.js';
import { ActionBudget } from './action-budget.js';
import { monotonicMs } from '../actors/clock.js';
import { RuleStats, noRuleMetrics, type RuleMetricsSink } from './metrics.js';
import { DEFAULT_CATCH_UP_MS, type DeviceRef, type RuleEvent } from './model.js';
import { resumePending, type ResumeReport } from './resume.js';
import { replayHomes, type ReplayReport, type ReplayTell } from './replay.js';
import { withLostReports, type LostReportsDeps } from './replay-reports.js';
import { RunGuard } from './run-guard.js';
import type { RulesEngineDeps, RuleStatus } from './engine-deps.js';

export type { DryRunReport } from './dry-run.js';
export type { FireResult } from './home-actor.js';
export type { SceneRunResult } from './actions.js';
export type { ResumeReport } from './resume.js';
export type { ReplayReport } from './replay.js';
export type { RulesEngineDeps, RuleStatus } from './engine-deps.js';

export class RulesEngine {
  /** this node's counters; what every node counted is read with `statusOf` */
  readonly stats: RuleStats;
  readonly #homes: ActorDirectory<HomeActor>;
  readonly #guard: RunGuard;
  readonly #dryRuns: DryRunLimits;
  readonly #scope: HomeScope;
  readonly #actions: ActionDeps;
  readonly #hubWait: HubWait;
  readonly #metrics: RuleMetricsSink;
  readonly #now: () => number;
  /** evaluations and stretches of action runs in progress: what idle and close wait for */
  readonly #inflight = new Set<Promise<unknown>>();
  readonly #unwatch: () => void;
  /** the homes' lines of a backend away (rule store, device state, pool), sampled node-wide per kind */
  readonly #outage: SampledLog;
  #closed = false;
  /** the node drains (`draining`): an action failing from now on may fail for that */
  #draining = false;
  /** the close leaves stored events not evaluated (dropped from a backlog, their evaluation cut, after it): the marks owe a replay */
  #owed = false;
  #resumed = false;
  readonly #forgetIdleMs: number;
  readonly #forgetTimer: NodeJS.Timeout | null;

  constructor(private readonly deps: RulesEngineDeps) {
    const metrics = (this.#metrics = deps.metrics ?? noRuleMetrics);
    const now = (this.#now = deps.now ?? Date.now);
    const { log, timers, store } = deps;
    const stats = (this.stats = new RuleStats(store, (err, first) => {
      if (first) log.warn({ err }, 'rules: run statistics could not be added to the store; kept for the next try');
    }));
    const track = (p: Promise<unknown>) => this.#track(p);
    const scope = (this.#scope = new HomeScope(deps.stateOf.bind(deps), deps.homeOfHub?.bind(deps)));
    const push = deps.push.bind(deps);
    // runs measured on a monotonic clock, unless the caller gave its own (tests drive both with one)
    // the home's notifications a minute: its rules' and the loop guard's reports alike (review "rulesdos2")
    const notifyBudget = new ActionBudget(deps.homeNotificationsPerMinute ?? 60, deps.now ?? monotonicMs, { windowMs: 60_000, what: 'notifications', setting: 'TIER_RULE_HOME_NOTIFY_PER_MIN' });
    const guard = (this.#guard = new RunGuard({ stats, metrics, log, push, track, notifyBudget, suspendMs: deps.suspendMs ?? 600_000, ...(deps.now === undefined ? {} : { clock: deps.now }) }));
    const outage = (this.#outage = failureLog(log, 'rules: lines not logged, backend away', 'warn'));
    this.#hubWait = new HubWait(deps.runCommand.bind(deps), deps.hubWaitMs ?? 0);
    this.#actions = {
      scope,
      getScene: store.getScene.bind(store),
      getRule: store.getRule.bind(store),
      ...(deps.pendingRuns === undefined ? {} : { pendingRuns: deps.pendingRuns }),
      ...(deps.audit === undefined ? {} : { audit: deps.audit }),
      runCommand: this.#hubWait.sender,
      setDesired: deps.setDesired.bind(deps),
      push,
      // on the guard's clock: monotonic unless the caller gave its own
      budget: new ActionBudget(deps.homeActionsPerSecond ?? 500, deps.now ?? monotonicMs),
      notifyBudget,
      timers,
      commandTimeoutMs: deps.commandTimeoutMs ?? 5_000,
      sceneCommandsPerHub: sceneCommandsPerHub(deps.hubMaxCommands ?? 32),
      stats,
      metrics,
      log,
      outage,
      now,
      track,
      closing: () => this.#draining || this.#closed,
    };
    // the homes' own system: their mailbox bound is the backlog (less the one in evaluation)
    const system: ActorSystem = { ...deps.supervision, timers, log, now, mailboxSize: Math.max(0, (deps.maxBacklogPerHome ?? 256) - 1) };
    const catchUpMs = deps.delayCatchUpMs ?? DEFAULT_CATCH_UP_MS;
    const homeDeps: HomeDeps = {
      store,
      runner: deps.runner,
      scope,
      guard,
      actions: this.#actions,
      stats,
      metrics,
      log,
      outage,
      now,
      cacheTtlMs: deps.cacheTtlMs ?? 10_000,
      track,
      catchUpMs,
      homeCpuMsPerSecond: deps.homeCpuMsPerSecond ?? 250,
      closing: () => this.#closed,
      owe: () => void (this.#owed = true),
      ...(deps.marks ? { marks: deps.marks } : {}),
    };
    this.#homes = new ActorDirectory((homeId) => new HomeActor(homeId, system, homeDeps), deps.maxHomes ?? 50_000, (home) => home.settled);
    this.#forgetIdleMs = deps.forgetIdleMs ?? 3 * homeDeps.cacheTtlMs;
    this.#forgetTimer = this.#forgetIdleMs > 0 ? setInterval(() => this.forgetIdleHomes(), this.#forgetIdleMs).unref() : null;
    this.#dryRuns = new DryRunLimits(homeDeps.homeCpuMsPerSecond);
    this.#unwatch = store.watch((change) => {
      const home = this.#homes.get(change.homeId);
      // stale at once: the events queued behind the notice are not evaluated on the rules it replaces
      home?.noteChanged(change.version);
      home?.tell({ type: 'changed', version: change.version });
    });
  }

  /**
   * Takes a hub event (state and device events; others are ignored). Returns at once and never
   * throws: evaluation happens on the pool, failures are counted and logged. `offset`: its offset in
   * the home's history, where stored: the home's mark moves to it once it is evaluated.
   */
  onEvent(event: HubEvent, parent?: Span, offset?: number): void {
    if (event.kind !== 'state' && event.kind !== 'event') return;
    if (this.#closed) {
      // stored, and the rules stop before it (a hub's last report during the drain)
      if (offset !== undefined) this.#owed = true;
      return;
    }
    const home = this.#homes.obtain(event.home);
    // `parent` (tracing on): the hub session's step, which the evaluation joins; else no such field
    home.tell(parent === undefined ? { type: 'event', event, received: performance.now(), offset } : { type: 'event', event, received: performance.now(), parent, offset });
  }

  /**
   * After an unclean stop: gives each home the events stored past its mark (replay.ts), then those
   * made from the shadow for reports whose events were lost, after the values to remember
   * (replay-reports.ts). Resolves
   * once every home has them queued, before any newer event (call it before hubs can connect);
   * `report` once they are evaluated. Only the first call finds any.
   */
  async replayUnevaluated(): Promise<{ homes: number; report: Promise<ReplayReport> }> {
    const { marks, reports, store, homeOfHub } = this.deps;
    let homes = this.#closed || !marks ? [] : await marks.unevaluated();
    if (marks && reports && !this.#closed) {
      const deps: LostReportsDeps = { ...reports, listRules: (homeId) => store.listRules(homeId), now: this.#now, catchUpMs: this.deps.delayCatchUpMs ?? DEFAULT_CATCH_UP_MS, log: this.deps.log, ...(homeOfHub ? { homeOf: homeOfHub.bind(this.deps) } : {}) };
      const lost = await withLostReports(homes, marks, deps);
      homes = lost.homes;
      // queued before the replay: the home takes them first
      for (const [homeId, values] of lost.remember) this.#homes.obtain(homeId).tell({ type: 'remember', values });
    }
    return this.#replay(homes, 'rules: events not evaluated before the last stop replayed');
  }

  /**
   * A history shared by a cluster: takes over the marks of nodes that died (`claimOrphans`) and
   * replays their events past them as `replayUnevaluated` does; nothing otherwise.
   */
  async replayOrphans(): Promise<{ homes: number; report: Promise<ReplayReport> }> {
    const found = this.#closed ? undefined : this.deps.marks?.claimOrphans?.();
    // waited for by the close: a claim answered after it would have its events dropped, and owed too late (review "diff21" F5)
    if (found) this.#track(found);
    return this.#replay(found ? await found : [], 'rules: events a dead node had not evaluated replayed');
  }

  #replay(homes: UnevaluatedHome[], what: string): { homes: number; report: Promise<ReplayReport> } {
    // a home that refuses it (stopped) has replied already
    const tell: ReplayTell = (homeId, events, through, taken) => new Promise((reply) => void this.#homes.obtain(homeId).tell(taken === undefined ? { type: 'replay', events, through, reply } : { type: 'replay', events, through, reply, taken }));
    const report = replayHomes(homes, tell, this.deps.log, what);
    this.#track(report);
    return { homes: homes.length, report };
  }

  /**
   * Whether the rules of the event's home may trigger on it; true while they are not loaded yet.
   * Asked only while tracing is on: the hub session traces a step that publishes such an event.
   */
  listens(event: HubEvent): boolean {
    if (event.kind !== 'state' && event.kind !== 'event') return false;
    return this.#homes.get(event.home)?.listens(event) ?? true;
  }

  /**
   * The rule store lost its data (cluster mode: Redis restarted empty, redis-data-watch.ts): every
   * home reads its rules again now, so a rule gone with the data stops (and its waiting run with
   * it) instead of running from the cache until its ttl; answers how many homes were told.
   */
  rulesLost(): number {
    let homes = 0;
    this.#homes.each((home) => {
      if (home.isStopped) return;
      homes++;
      home.rulesLost();
    });
    return homes;
  }

  /** Homes this node holds an actor for (at most about `maxHomes`, more while runs of theirs are running). */
  get homesHeld(): number {
    return this.#homes.size;
  }

  /** Forgets the idle homes without rules (`forgetIdleMs`); answers how many. Runs every `forgetIdleMs`. */
  forgetIdleHomes(): number {
    const now = this.#now();
    return this.#homes.forget((home) => home.forgettable(now, this.#forgetIdleMs));
  }

  /** A cron instant of a rule (from the scheduler): evaluates its conditions and runs it. */
  fireScheduled(homeId: string, ruleId: string, scheduledAt: number): Promise<FireResult> {
    if (this.#closed) {
      this.#metrics.dropped('closed');
      return Promise.resolve('error');
    }
    return new Promise<FireResult>((reply) => {
      // refused (backlog full): the home has answered 'error' already
      this.#homes.obtain(homeId).tell({ type: 'schedule', ruleId, scheduledAt, reply });
    });
  }

  /**
   * Evaluates a rule against current state (or a given event) on the pool and reports what it
   * would do. Runs nothing and counts nothing.
   */
  dryRun(homeId: string, ruleId: string, event?: RuleEvent, prev: Record<string, AttrValue> = {}, at?: number): Promise<DryRunReport> {
    const { store, runner } = this.deps;
    return dryRun({ store, runner, scope: this.#scope, guard: this.#guard, now: this.#now, limits: this.#dryRuns }, homeId, ruleId, event, prev, at);
  }

  /** Reported attributes of devices the caller checked are in the home (unknown ones left out): save-time warnings. */
  reportedState(refs: readonly DeviceRef[]): Promise<Record<string, Attrs>> {
    return refs.length === 0 ? Promise.resolve({}) : this.deps.stateOf(refs);
  }

  /** Runs a scene now: its commands in parallel, a few at a time per hub (`runSceneCommands`); one result per command. `parent`: the caller's span (tracing on). */
  async runScene(homeId: string, sceneId: string, parent?: Span): Promise<SceneRunResult> {
    const scene = await this.deps.store.getScene(homeId, sceneId);
    if (!scene) throw new TierError('not_found', `no scene ${sceneId} in home ${homeId}`);
    if (!scene.enabled) throw new TierError('invalid_field', `enabled: scene ${sceneId} is disabled`, { field: 'enabled' });
    // a scene run by an app is answered now, its offline hubs `hub_offline`: the app can retry
    return runSceneCommands({ ...this.#actions, runCommand: this.deps.runCommand.bind(this.deps) }, scene, parent);
  }

  /** What this node knows of a rule's runs: its own counts since it started (see `statusOf`). */
  status(ruleId: string, version: number): RuleStatus {
    return { ...this.#guard.status(ruleId, version), stats: this.stats.snapshot(ruleId) };
  }

  /**
   * The status of rules of one home with the statistics of every node (the store's totals, after
   * this node's own counts are sent); guard state and evaluation latency are this node's.
   */
  async statusOf(homeId: string, rules: ReadonlyArray<{ id: string; version: number }>): Promise<Map<string, RuleStatus>> {
    await this.stats.flush();
    const totals = await this.deps.store.getRunStats(homeId, rules.map((r) => r.id));
    const out = new Map<string, RuleStatus>();
    for (const r of rules) {
      const local = this.status(r.id, r.version);
      out.set(r.id, { ...local, stats: { ...local.stats, ...totals.get(r.id) } });
    }
    return out;
  }

  /**
   * Picks up the runs parked in a delay when the node last stopped (see resume.ts): each waits for
   * the rest of its delay, goes on at once within `delayCatchUpMs` past due, or is reported missed.
   * Only the first call does anything: a later one would take this engine's own saved runs for
   * superseded ones. Without `pendingRuns` there is nothing to resume.
   */
  resumePending(): Promise<ResumeReport> {
    const pendingRuns = this.deps.pendingRuns;
    if (!pendingRuns || this.#closed || this.#resumed) return Promise.resolve(noResume());
    this.#resumed = true;
    return this.#resume(pendingRuns.load(), 'runs pending at the last stop (delays, actions a stop cut off)');
  }

  /**
   * Takes over the runs of nodes that died (a store shared by a cluster: `claimOrphans`) and
   * resumes them as `resumePending` does; nothing for a store of one node.
   */
  takeOverOrphans(): Promise<ResumeReport> {
    const pendingRuns = this.deps.pendingRuns;
    if (!pendingRuns?.claimOrphans || this.#closed) return Promise.resolve(noResume());
    return this.#resume(pendingRuns.claimOrphans(), 'delays of a node gone');
  }

  /**
   * The node begins its drain (its hubs are told to go, before the rules close): events are still
   * evaluated, but a run whose command fails from now on for the stop (`session_closed` as its hub
   * left; `hub_offline` once the close ends its wait) keeps the actions from it for the next start.
   */
  draining(): void {
    this.#draining = true;
  }

  /** Resolves when no evaluation or action is in progress (runs parked in a delay do not count). */
  async idle(): Promise<void> {
    while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight]);
  }

  /**
   * Stops taking events, drops what the homes had queued (`closed`), stops runs waiting in a delay
   * (their saved remainders stay for the next start), waits for what is in progress up to
   * `closeWaitMs`: a home's backlog of costly rules must not hold a node's shutdown for minutes.
   */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#forgetTimer) clearInterval(this.#forgetTimer);
    this.#hubWait.close();
    this.#unwatch();
    void this.#guard.detachAll();
    const waitMs = this.deps.closeWaitMs ?? 5_000;
    let timer: NodeJS.Timeout | undefined;
    const waited = await Promise.race([this.idle().then(() => true), new Promise<false>((r) => (timer = setTimeout(r, waitMs, false)))]);
    clearTimeout(timer);
    if (!waited) this.deps.log.warn({ inProgress: this.#inflight.size, waitMs }, 'rules: evaluations and actions still in progress at close; not waited for (the pool closes under them)');
    // evaluations that were in progress may have started runs that are now parked in a delay, or
    // within an action: those kept within a second (a store that hangs does not hold the drain)
    let keptTimer: NodeJS.Timeout | undefined;
    const kept = await Promise.race([this.#guard.detachAll().then(() => true), new Promise<false>((r) => (keptTimer = setTimeout(r, 1_000, false)))]);
    clearTimeout(keptTimer);
    // a turn: the homes drop what they had queued (owed) a few promises after their last work
    await new Promise((r) => setImmediate(r));
    // a run not kept in time has not moved its event's mark: the event is replayed (review "diff22" L1)
    if ((this.#owed || !waited || !kept) && this.deps.marks?.owe) {
      this.deps.log.info({ unevaluated: this.#owed, inProgress: waited ? 0 : this.#inflight.size }, 'rules: stopped before evaluating every stored event; the next start replays past the marks');
      await this.deps.marks.owe().catch((err: unknown) => this.deps.log.error({ err }, 'rules: the replay owed was not kept; the events past the marks are not evaluated at the next start'));
    }
    // the last counts go to the store before the ports close
    await this.stats.flush();
    this.#outage.close();
  }

  #resume(entries: Promise<PendingRun[]>, what: string): Promise<ResumeReport> {
    const { pendingRuns, store, log } = this.deps;
    const catchUpMs = this.deps.delayCatchUpMs ?? DEFAULT_CATCH_UP_MS;
    const deps = { pendingRuns: pendingRuns!, store, guard: this.#guard, actions: this.#actions, stats: this.stats, metrics: this.#metrics, log, now: this.#now, catchUpMs };
    const done = entries.then((list) => resumePending(deps, list, what));
    this.#track(done);
    return done;
  }

  #track(p: Promise<unknown>): void {
    this.#inflight.add(p);
    // settled either way; a rejection is the actor's to report, not an unhandled one here
    p.then(
      () => this.#inflight.delete(p),
      () => this.#inflight.delete(p),
    );
  }
}

const noResume = (): ResumeReport => ({ armed: 0, late: 0, missed: 0, dropped: 0, failed: 0 });
