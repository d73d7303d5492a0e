/**
 * Over 400 lines: one actor's messages (events, replay, cron instants, changes) share its state and
 * its evaluation; the messages, the rules cache, the mark and the CPU budget are modules of their own.
 *
 * One home of the rules engine as an actor of the node's runtime (src/actors/actor.ts): its rules
 * (a snapshot of the store with their trigger index), the last value of each attribute a trigger
 * watches, and the evaluation of its events and cron instants. The mailbox gives the ordering: a
 * home's messages are handled one after another in arrival order while homes run concurrently. It
 * is bounded: an event beyond it is dropped and counted (`tier_rule_dropped_total{reason="backlog"}`),
 * a cron instant answered `error`. A rule's actions run detached from the mailbox (ActionRun).
 * With the history's marks, each event done moves the home's mark (home-mark.ts), and a `replay`
 * message brings the events an unclean stop left unevaluated (replay.ts).
 * A rule store that cannot be reached is an outage, not a failure of the home: cached rules stay in
 * use past their ttl (home-rules.ts), and what cannot be evaluated without them is counted
 * (`tier_rule_dropped_total{reason="store_unavailable"}`), its lines sampled, the supervisor not told.
 */
import { performance } from 'node:perf_hooks';
import type { AttrValue, Attrs } from '../../proto/frames.js';
import { Actor, type ActorSystem } from '../actors/actor.js';
import { monotonicMs } from '../actors/clock.js';
import { isUnreachable } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { SampledLog } from '../log/sampler.js';
import type { EvaluatedMarks } from '../ports/history/history.js';
import { markDone, type HomeMark } from './home-mark.js';
import type { ReplayResult } from './replay.js';
import type { FireResult, HomeMessage, RuleHubEvent } from './home-messages.js';
import type { RuleStore } from '../ports/rule-store/rule-store.js';
import { ActionRun, type ActionDeps } from './action-run.js';
import type { HomeScope } from './home-scope.js';
import { eventDedupKey } from './dedup-key.js';
import { LastValues } from './last-values.js';
import type { DropReason, RuleMetricsSink, RuleStats } from './metrics.js';
import { ruleEventOf, type EvalTask, type Rule, type RuleEvent } from './model.js';
import { RulePoolError, type RuleRunner } from './pool.js';
import type { RunGuard } from './run-guard.js';
import { HomeRules, type RulesSnapshot } from './home-rules.js';
import { HomeCpuBudget } from './home-cpu.js';
import { inSpan } from '../trace/active-span.js';
import { endSpan, SpanKind, tracing, type Span } from '../trace/tracing.js';

export type { FireResult, HomeMessage, RuleHubEvent } from './home-messages.js';

export interface HomeDeps {
  store: RuleStore;
  runner: RuleRunner;
  scope: HomeScope;
  guard: RunGuard;
  actions: ActionDeps;
  stats: RuleStats;
  metrics: RuleMetricsSink;
  log: Logger;
  /** the node's sampled log of failures that come in floods when a backend is away (`failureLog`), keyed by kind */
  outage: SampledLog;
  now(): number;
  /** a snapshot is re-checked against the store's version after this (ms) */
  cacheTtlMs: number;
  /** each message's work is a promise the engine's idle and close wait for */
  track(p: Promise<unknown>): void;
  /** where the home notes the offset through which its events are evaluated; absent: not noted */
  marks?: EvaluatedMarks;
  /** a replayed event stored longer ago than this is missed, not evaluated (ms) */
  catchUpMs: number;
  /** worker time a home may use per second (HomeCpuBudget); 0: no bound (ms) */
  homeCpuMsPerSecond: number;
  /** the engine is closing: queued events and cron instants are dropped (`closed`), not evaluated */
  closing(): boolean;
  /** the close leaves a stored event not evaluated (dropped from the backlog, its evaluation cut): the next start replays past the marks */
  owe(): void;
}

/** A stored event's message: its evaluation moves the home's mark. */
const stored = (msg: HomeMessage) => msg.type === 'replay' || (msg.type === 'event' && msg.offset !== undefined);

/** The `lastError` of the rules of an event dropped because its home is past its worker time. */
const homeCpuMessage = (ms: number) => `not evaluated: the home's rules used more than their ${ms} ms of worker time per second; events are dropped until they are back within it`;

/** a full backlog is logged at most once per this long per home; every drop is counted */
const DROP_LOG_MS = 10_000;

export class HomeActor extends Actor<HomeMessage> {
  readonly #rules: HomeRules;
  /** null until a full backlog is first logged: -Infinity would be a boxed double in every home */
  #lastDropLog: number | null = null;
  /** each made at first use (a watched value; an event that began a run: offsets noted as they come until then; an evaluation): most homes have no rule */
  #lastValues: LastValues | null = null;
  #mark: HomeMark | null = null;
  #cpuBudget: HomeCpuBudget | null = null;
  /** an evaluation failed as the rules closed: no mark moves from then on (its event is owed a replay) */
  #cutByClose = false;

  constructor(
    readonly homeId: string,
    protected readonly system: ActorSystem,
    private readonly deps: HomeDeps,
  ) {
    super();
    this.#rules = new HomeRules(homeId, deps);
  }

  /** The store told of the home's `version` (also told as a `changed` message): the snapshot is stale from now. */
  noteChanged(version: number): void {
    this.#rules.changed(version);
  }

  /** The rule store lost its data (Redis restarted empty): the cached rules are read again now, not after their ttl. */
  rulesLost(): void {
    if (this.#rules.lost()) this.tell({ type: 'changed', version: 0 });
  }

  /** derived on use (logs and failure counts): a string kept per home would cost 32 B */
  get address(): string {
    return `rules:home:${this.homeId}`;
  }

  get #values(): LastValues {
    return (this.#lastValues ??= new LastValues());
  }
  get #cpu(): HomeCpuBudget {
    return (this.#cpuBudget ??= new HomeCpuBudget(this.deps.homeCpuMsPerSecond, monotonicMs));
  }

  protected receive(msg: HomeMessage): void | Promise<void> {
    // a node stopping does not wait for a home's backlog: what it had queued is counted, not run
    if (this.deps.closing() && msg.type !== 'changed' && msg.type !== 'remember') return this.#drop(msg, 'closed');
    let work: Promise<void>;
    switch (msg.type) {
      case 'event': {
        // most events of most homes: rules loaded and fresh, no trigger listening; no promise, no read
        const snap = this.#rules.fresh;
        if (snap && !snap.index.listens(msg.event)) return this.#evaluated(msg.offset);
        const parent = msg.parent;
        // the step it came from stays active while the home handles it: lines name its trace
        const evaluated = parent === undefined ? this.#event(msg.event, msg.offset, msg.received, undefined) : inSpan(parent, () => this.#event(msg.event, msg.offset, msg.received, parent));
        work = evaluated.then((runs) => this.#evaluated(msg.offset, runs));
        break;
      }
      case 'replay':
        work = this.#replay(msg);
        break;
      case 'remember':
        // what the process before had seen: as if the events before the mark had just been evaluated
        for (const v of msg.values) this.#values.swap(`${v.hub}/${v.device}/${v.attr}`, v.value);
        return;
      case 'schedule':
        work = this.#schedule(msg);
        break;
      case 'changed': {
        // stale by this notice, an earlier one, or the store's loss (`rulesLost`); a load since took it
        this.#rules.changed(msg.version);
        if (!this.#rules.current?.stale) return;
        // reload now rather than at the next event, so a disabled or deleted rule's waiting run stops
        work = this.#rules.load().then(() => undefined);
        break;
      }
    }
    work = work.catch((err: unknown) => this.#unreachable(msg, err));
    this.deps.track(work);
    return work;
  }

  /**
   * Whether the node may forget this home (RulesEngine.forgetIdleHomes): it has no rule, the store
   * said so at its last check, `idleMs` or more ago, and no run of an earlier rule is waited for by
   * its mark. Its next event reads the store again. Values it watched for deleted rules go with it:
   * a rule made later is told each value before by the session (`prev`), as a new home is.
   */
  forgettable(now: number, idleMs: number): boolean {
    return this.#rules.noneSince(now, idleMs) && this.settled;
  }

  /**
   * No run of its rules is running its actions and its mark waits for none: it may be retired to
   * make room (RulesEngine's maxHomes). Retired with one (until 2026-12-06, a race review), its mark
   * passed that run's event (a kill -9 lost the run) and a change of the rule no longer reached the
   * run. A run parked in a delay does not hold it (delays last up to a day: homes past the bound
   * would never go); it reads its rule again when it wakes.
   */
  get settled(): boolean {
    if (this.#mark !== null && !this.#mark.settled) return false;
    const snap = this.#rules.current;
    if (snap !== null) for (const id of snap.rules.keys()) if (this.deps.guard.executing(id)) return false;
    return true;
  }

  /** Whether this home's rules may trigger on `event`: true while they are not loaded or are stale. */
  listens(event: RuleHubEvent): boolean {
    const snap = this.#rules.fresh;
    return snap === null || snap.index.listens(event);
  }

  /**
   * A full mailbox drops an event (counted, logged once per 10 s) and answers a cron instant
   * `error`. A change notice is never dropped, or the home would run stale rules until the ttl:
   * it joins one already queued (the higher version) or is queued beyond the bound.
   */
  protected override overflow(msg: HomeMessage, queued: HomeMessage[]): boolean {
    if (msg.type === 'changed') {
      const waiting = queued.find((m): m is Extract<HomeMessage, { type: 'changed' }> => m.type === 'changed');
      if (waiting) waiting.version = Math.max(waiting.version, msg.version);
      else queued.push(msg);
      return true;
    }
    this.#drop(msg, 'backlog');
    const now = this.deps.now();
    if (this.#lastDropLog === null || now - this.#lastDropLog >= DROP_LOG_MS) {
      this.#lastDropLog = now;
      this.deps.log.warn({ homeId: this.homeId, backlog: queued.length + 1 }, 'rules: home backlog full, events dropped (counted in tier_rule_dropped_total)');
    }
    return false;
  }

  /** Messages queued when the supervisor stopped this home. */
  protected override refused(msg: HomeMessage): void {
    this.#drop(msg, 'home_stopped');
  }

  protected onStop(reason: string): void {
    if (reason === 'retired') return this.#release();
    // the engine's directory starts a fresh actor for the home's next message
    this.deps.log.error({ homeId: this.homeId, reason }, 'rules: home stopped by its supervisor');
  }

  /**
   * Retired (idle, the engine past its `maxHomes`): the node lets go of its rules' counters and run
   * history too, or a node that saw ever new homes (hubs moving between nodes) would keep them all.
   */
  #release(): void {
    const snap = this.#rules.current;
    // a home without rules (forgotten every 30 s by the thousand) has no counters: no flush of the others'
    if (!snap || snap.rules.size === 0) return;
    for (const rule of snap.rules.values()) this.deps.guard.release(rule);
    void this.deps.stats.release([...snap.rules.keys()]);
  }

  /**
   * A message that failed because a backend is away (no cached rules and no store) is not a failure
   * of the home: counted and sampled, it does not reach its supervisor. Anything else is a bug: rethrown.
   */
  #unreachable(msg: HomeMessage, err: unknown): void {
    // the pool or the store closed under it: the next start evaluates it
    if (this.deps.closing() && stored(msg)) this.deps.owe();
    if (!isUnreachable(err)) throw err;
    // a replay counts its own events; a change notice evaluates nothing
    if (msg.type === 'event' || msg.type === 'schedule') this.deps.metrics.dropped('store_unavailable');
    this.deps.outage.write('store_unavailable', { err, homeId: this.homeId, message: msg.type }, 'rules: rule store unreachable and no rules cached; not evaluated (counted in tier_rule_dropped_total)');
  }

  #drop(msg: HomeMessage, reason: DropReason): void {
    if (msg.type === 'changed' || msg.type === 'remember') return;
    if (reason === 'closed' && stored(msg)) this.deps.owe();
    this.deps.metrics.dropped(reason);
    if (msg.type === 'schedule') msg.reply('error');
    if (msg.type === 'replay') msg.reply({ replayed: 0, missed: 0 });
  }

  /** The event at `offset` (when stored) is evaluated; `runs`: the first stretches of the runs it began (HomeMark). */
  #evaluated(offset: number | undefined, runs?: Array<Promise<void>>): void {
    if (offset !== undefined && this.deps.marks && !this.#cutByClose) this.#mark = markDone(this.#mark, this.deps.marks, this.homeId, offset, runs);
  }

  /**
   * Events stored but not evaluated when the node died, in order: those the rules listen to are
   * evaluated as if live (the same dedup keys), unless stored more than `catchUpMs` ago: then each
   * rule they would have reached counts as missed (`tier_rule_dropped_total{reason="missed"}`, the
   * rule's last error), as a delay found too late at start does (resume.ts).
   */
  async #replay(msg: Extract<HomeMessage, { type: 'replay' }>): Promise<void> {
    const result: ReplayResult = { replayed: 0, missed: 0 };
    let at = 0;
    try {
      for (const r of msg.events) {
        at++;
        let snap: RulesSnapshot;
        try {
          snap = this.#rules.fresh ?? (await this.#rules.load());
        } catch (err) {
          // none of the rest can be evaluated; the mark stays before them
          if (isUnreachable(err)) for (let i = at; i <= msg.events.length; i++) this.deps.metrics.dropped('store_unavailable');
          throw err;
        }
        if (!snap.index.listens(r.event)) continue;
        const late = this.deps.now() - r.at;
        if (late <= this.deps.catchUpMs) {
          result.replayed++;
          this.#evaluated(r.offset, await this.#event(r.event, r.offset, performance.now(), undefined, r.at));
          continue;
        }
        result.missed++;
        for (const rule of snap.index.candidates(ruleEventOf(r.event), []).values()) {
          this.deps.metrics.dropped('missed');
          this.deps.stats.error(rule, this.deps.now(), `event missed after the last stop: stored ${Math.round(late / 1000)} s before the start (catch-up ${Math.round(this.deps.catchUpMs / 1000)} s)`);
        }
      }
      this.#evaluated(msg.through);
      // a dead node's events taken over are let go once their runs' marks are (review "kill9b" F3)
      const { marks } = this.deps;
      const taken = msg.taken;
      if (marks?.replayed && taken !== undefined && !this.#cutByClose) void (this.#mark?.noted() ?? Promise.resolve()).then(() => !this.#cutByClose && marks.replayed!(this.homeId, taken));
    } finally {
      if (result.missed > 0) this.deps.log.warn({ homeId: this.homeId, missed: result.missed, catchUpMs: this.deps.catchUpMs }, 'rules: events stored before the last stop, older than the catch-up window, not evaluated');
      msg.reply(result);
    }
  }

  /**
   * Evaluates an event; answers the first stretches of the runs it began, undefined when no rule was
   * evaluated on it. `storedAt`: an event left by an unclean stop, stored then.
   */
  async #event(event: RuleHubEvent, offset: number | undefined, received: number, parent: Span | undefined, storedAt?: number): Promise<Array<Promise<void>> | undefined> {
    // a fresh snapshot without a promise: most events of a home with rules
    const snap = this.#rules.fresh ?? (await this.#rules.load());
    const ev = ruleEventOf(event);
    const watched: string[] = [];
    const candidates = snap.index.candidates(ev, watched);
    // keyed by attribute names from the hub: no prototype, so every name is a plain own key
    const prev = Object.create(null) as Record<string, AttrValue>;
    if (event.kind === 'state') {
      // a watched attribute's value before, for "changes", from/to and thresholds: the shadow's, as the
      // session tells it in `prev` (not in it: unchanged; null: none); the engine's memory for an
      // event without it (stored before it existed)
      const told = event.prev;
      for (const attr of watched) {
        const value = event.attrs[attr]!;
        const seen = this.#values.swap(`${event.hub}/${event.device}/${attr}`, value);
        const before = told === undefined ? seen : Object.hasOwn(told, attr) ? told[attr] : value;
        if (before !== undefined && before !== null) prev[attr] = before;
      }
    }
    if (candidates.size === 0) return undefined;
    const { guard, stats, metrics } = this.deps;
    const rules: Rule[] = [];
    for (const r of candidates.values()) {
      if (guard.suspended(r)) {
        stats.of(r).suppressed++;
        metrics.outcome('suppressed');
      } else rules.push(r);
    }
    if (rules.length === 0) return undefined;
    const runs: Array<Promise<void>> = [];
    await this.#evaluateAndRun(snap, rules, ev, prev, eventDedupKey(event, offset), received, storedAt ?? this.deps.now(), parent, runs, storedAt !== undefined);
    return runs;
  }

  async #schedule(msg: Extract<HomeMessage, { type: 'schedule' }>): Promise<void> {
    let result: FireResult = 'error';
    try {
      const snap = await this.#rules.load();
      const rule = snap.rules.get(msg.ruleId);
      if (!rule || !rule.enabled || !rule.triggers.some((t) => t.type === 'cron')) result = 'gone';
      else {
        const ev: RuleEvent = { kind: 'schedule', scheduledAt: msg.scheduledAt, ts: this.deps.now() };
        const results = await this.#evaluateAndRun(snap, [rule], ev, {}, `${msg.scheduledAt}`, performance.now(), msg.scheduledAt);
        result = results.get(rule.id) ?? 'error';
      }
    } finally {
      msg.reply(result);
    }
  }

  /**
   * `happenedAt`: the instant `time.*` is read at (the event's, the cron instant's); `runs`: where the
   * first stretch of each run begun is put; `replayed`: an event after an unclean stop (a span attribute)
   */
  async #evaluateAndRun(snap: RulesSnapshot, rules: Rule[], ev: RuleEvent, prev: Record<string, AttrValue>, dedup: string, received: number, happenedAt: number, parent?: Span, runs?: Array<Promise<void>>, replayed = false): Promise<Map<string, FireResult>> {
    const { runner, scope, guard, stats, metrics } = this.deps;
    const out = new Map<string, FireResult>();
    const now = this.deps.now();
    if (this.#cpu.overdrawn) {
      metrics.dropped('home_cpu');
      for (const r of rules) stats.error(r, now, homeCpuMessage(this.deps.homeCpuMsPerSecond));
      this.deps.outage.write('home_cpu', { homeId: this.homeId, rules: rules.length }, 'rules: home past its worker time per second, event dropped (counted in tier_rule_dropped_total)');
      return out;
    }
    let state: Record<string, Attrs>;
    // the main thread's part (the state read, the task's wire form and clone) is the home's too: with
    // 200 rules naming 20 devices it was more than the worker's, and uncharged (review "complexity")
    const cost = { ms: 0 };
    try {
      state = await scope.state(this.homeId, rules, cost);
    } catch (err) {
      this.#failAll(rules, 'state_unavailable', `device state unavailable: ${(err as Error).message}`, err);
      return out;
    }
    // a replayed event or a caught-up instant is judged at its own time (a 21:59 event stays before 22:00);
    // cooldown, loop guard and stats below stay on the clock: they count runs as they happen now
    const task: EvalTask = { homeId: this.homeId, homeVersion: snap.version, timeZone: snap.timeZone, now: happenedAt, rules, event: ev, prev, state };
    const started = performance.now();
    // child of the hub session's step that published the event; a root for a cron instant
    const span = tracing === null ? undefined : tracing.start('rule evaluation', SpanKind.INTERNAL, parent, { 'hubtier.home_id': this.homeId, 'hubtier.rules': rules.length, ...(replayed ? { 'hubtier.replayed': true } : {}) });
    let result;
    try {
      result = await runner.evaluate(task, cost);
    } catch (err) {
      const reason: DropReason = err instanceof RulePoolError && err.code !== 'worker_failed' ? err.code : 'worker_failed';
      // a task that ran into the deadline held a thread all that time
      this.#cpu.charge(cost.ms + (reason === 'timeout' ? performance.now() - started : 0));
      if (span) endSpan(span, reason);
      this.#failAll(rules, reason, err instanceof Error ? err.message : String(err), err);
      return out;
    }
    // a change told meanwhile: matches of rules since deleted or disabled are dropped (they ran until
    // 2026-12-06); an edited rule's runs, as matched on the version the event came to. A store that
    // failed a moment ago is not waited for again (its hold, HomeRules.fresh)
    const live = snap.stale ? (this.#rules.fresh ?? (await this.#rules.load().catch(() => snap))) : snap;
    metrics.evaluation((performance.now() - started) / 1000);
    this.#cpu.charge(result.outcomes.reduce((ms, o) => ms + o.evalUs / 1000, cost.ms));
    if (span) {
      span.setAttribute('hubtier.matched', result.outcomes.filter((o) => o.triggered && o.passed && !o.error).length);
      endSpan(span);
    }
    const at = this.deps.now();
    let overBudget = 0;
    const byId = new Map(rules.map((r) => [r.id, r]));
    for (const o of result.outcomes) {
      const rule = byId.get(o.ruleId);
      if (!rule || (live !== snap && live.rules.get(rule.id)?.enabled !== true)) continue;
      const c = stats.of(rule);
      c.evaluated++;
      c.lastEvaluatedAt = at;
      c.sample(o.evalUs);
      if (o.triggered) c.triggered++;
      if (o.error) {
        if (o.dropped) {
          metrics.dropped(o.dropped);
          overBudget++;
        }
        stats.error(rule, at, o.error);
        metrics.outcome('error');
        out.set(rule.id, 'error');
        continue;
      }
      if (!o.triggered || !o.passed) {
        metrics.outcome(o.triggered ? 'not_matched' : 'not_triggered');
        out.set(rule.id, 'not_matched');
        continue;
      }
      c.matched++;
      if (!guard.admit(this.homeId, rule, at)) {
        c.suppressed++;
        metrics.outcome('suppressed');
        out.set(rule.id, 'suppressed');
        continue;
      }
      c.lastRunAt = at;
      metrics.outcome('matched');
      out.set(rule.id, 'ran');
      const run = new ActionRun(this.deps.actions, this.homeId, rule, o.actions, `rule:${rule.id}:${dedup}`, received, (r) => guard.ended(rule.id, r), 0, span);
      guard.begin(rule.id, run, happenedAt, replayed);
      const stretch = run.start();
      runs?.push(stretch);
    }
    if (overBudget > 0) this.deps.outage.write('event_budget', { homeId: this.homeId, dropped: overBudget }, "rules: an event's rules past its evaluation budget not evaluated (counted in tier_rule_dropped_total)");
    return out;
  }

  #failAll(rules: readonly Rule[], reason: DropReason, message: string, err: unknown): void {
    const { stats, metrics } = this.deps;
    // the pool or the store closing under it: its mark stays before the event, and the next start replays it
    if (this.deps.closing()) {
      this.#cutByClose = true;
      this.deps.owe();
    }
    metrics.dropped(reason);
    const at = this.deps.now();
    for (const r of rules) {
      stats.of(r).evaluated++;
      stats.error(r, at, message);
      metrics.outcome('error');
    }
    // sampled per reason: a device-state store or pool that is away fails every event alike
    this.deps.outage.write(reason, { err, reason, homeId: this.homeId, rules: rules.map((r) => r.id) }, 'rules: evaluation failed');
  }
}

