/**
 * What a rule's runs on this node allow next: its cooldown, its loop guard and its current run.
 *
 * - cooldown: after a run, matches within the rule's `cooldownMs` are skipped.
 * - loop guard: a run that would be the (maxRuns+1)-th within `limit.windowMs` suspends the rule
 *   for `suspendMs` instead; this is logged, counted, shown in the rule's status and pushed to the
 *   home. A new version of the rule (edited or re-enabled) is not suspended.
 * - restart: a rule has one current run; starting another supersedes the one before: cancelled if it
 *   waits in a delay, so "on, wait 5 min, off" keeps the light on until 5 min after the last
 *   trigger; still running its actions, it runs them up to its next delay and ends there (a
 *   notification of the first event is still sent). Each cancelled run is counted
 *   (`tier_rule_runs_cancelled_total{reason}`).
 *
 * Kept per rule id for the node's life (a home forgotten while idle keeps its rules' suspension);
 * `forget` drops a deleted rule. Cooldowns, loop windows and suspensions are measured on the
 * guard's `clock` (monotonic): a step of the wall clock back would otherwise keep a rule in its
 * cooldown, or count an hour of runs into its loop window, until the wall clock caught up. The
 * `now` a run is admitted at (the wall clock) is what the rule's status and statistics show.
 */
import { monotonicMs } from '../actors/clock.js';
import type { Logger } from '../log/logger.js';
import type { PushNotification } from '../ports/push-queue/push-queue.js';
import type { RuleMetricsSink, RuleStats } from './metrics.js';
import type { Rule } from './model.js';
import { ActionBudgetError, type ActionBudget } from './action-budget.js';

/** A run of a rule's actions, as the guard sees it. */
export interface Run {
  /** parked in a delay */
  readonly waiting: boolean;
  /** stops it before its next action and forgets its saved remainder (`deleted`: its rule is gone) */
  cancel(deleted?: boolean): void;
  /** a newer run of its rule began: cancelled now if it waits in a delay, else it ends at its next delay */
  supersede(): void;
  /**
   * A run of a later event began before this one (an event replayed after a crash): it ends at the
   * delay that ends past `ms` after its own event, as it would have live; the delays before go on.
   */
  supersedeAfter(ms: number): void;
  /** stops it and keeps its saved remainder, for the next start (node closing); answers the keeping of actions it cut, if any */
  detach(): Promise<void> | undefined;
}

export interface RunGuardDeps {
  stats: RuleStats;
  metrics: RuleMetricsSink;
  log: Logger;
  push(notification: PushNotification): Promise<unknown>;
  /** the home's notifications a minute, which the loop guard's report is charged to as a rule's notify is */
  notifyBudget?: ActionBudget;
  /** the loop-guard report is a promise the engine's close waits for */
  track(p: Promise<unknown>): void;
  /** how long the loop guard suspends a rule (ms) */
  suspendMs: number;
  /** @default monotonicMs: the clock runs are measured on */
  clock?: () => number;
}

interface RuleRuntime {
  /** start times of recent runs on the guard's clock, oldest first (loop guard window) */
  runs: number[];
  /** the last run on the wall clock (shown), and on the guard's clock (its cooldown) */
  lastRunAt: number | null;
  lastRunTick: number;
  /** the end of a suspension on the wall clock (shown), and on the guard's clock */
  suspendedUntil: number;
  suspendedUntilTick: number;
  /** the rule version the suspension applies to */
  suspendedVersion: number;
  current: Run | null;
  /** when the current run's event happened (ms, the wall clock; 0: not known, a restored run) */
  currentAt: number;
  /** runs superseded while running their actions, until they end (at their next delay at the latest) */
  older: Set<Run> | null;
}

export class RunGuard {
  readonly #rules = new Map<string, RuleRuntime>();
  readonly #clock: () => number;

  constructor(private readonly deps: RunGuardDeps) {
    this.#clock = deps.clock ?? monotonicMs;
  }

  suspended(rule: Rule): boolean {
    const rt = this.#rules.get(rule.id);
    return rt !== undefined && suspendedNow(rt, rule, this.#clock());
  }

  /** Why a match would not run now (dry run), without recording anything. */
  blockedBy(rule: Rule): Array<'suspended' | 'cooldown'> {
    const out: Array<'suspended' | 'cooldown'> = [];
    if (this.suspended(rule)) out.push('suspended');
    const rt = this.#rules.get(rule.id);
    if (rt !== undefined && coolingDown(rt, rule, this.#clock())) out.push('cooldown');
    return out;
  }

  /** Cooldown and loop guard for a match of `rule`: true when it may run now (and the run is recorded). */
  admit(homeId: string, rule: Rule, now: number): boolean {
    const rt = this.#runtime(rule.id);
    const tick = this.#clock();
    if (suspendedNow(rt, rule, tick) || coolingDown(rt, rule, tick)) return false;
    const windowStart = tick - rule.limit.windowMs;
    while (rt.runs.length > 0 && rt.runs[0]! <= windowStart) rt.runs.shift();
    if (rt.runs.length >= rule.limit.maxRuns) {
      this.#suspend(homeId, rule, rt, now, tick);
      return false;
    }
    rt.runs.push(tick);
    rt.lastRunAt = now;
    rt.lastRunTick = tick;
    return true;
  }

  /**
   * Makes `run` the current run of an admitted rule, superseding the one before (see the restart
   * above). `happenedAt`: when its event happened (ms); `replayed`: an event replayed after a crash,
   * whose run never supersedes one of a later event (taking a dead node's marks over, a node replayed
   * events older than runs it had begun, and cancelled their delays: review "kill9b"): it runs as the
   * older one instead.
   */
  begin(ruleId: string, run: Run, happenedAt = 0, replayed = false): void {
    const rt = this.#rules.get(ruleId);
    if (!rt) return;
    const before = rt.current;
    if (replayed && before && rt.currentAt > happenedAt) {
      (rt.older ??= new Set()).add(run);
      run.supersedeAfter(rt.currentAt - happenedAt);
      return;
    }
    rt.current = run;
    rt.currentAt = happenedAt;
    if (!before) return;
    // kept until it ends: disabling or deleting the rule, or the node closing, must still reach it
    (rt.older ??= new Set()).add(before);
    before.supersede();
  }

  /**
   * A run restored from the store becomes the rule's current run, with no cooldown or loop-guard
   * record (it was counted when it started). False when the rule has a current run already: a
   * newer run began since the restart and supersedes the restored one; unless the restored one is
   * `overdue` (its delay ended before that run began: its node was down): it goes on beside it.
   */
  adopt(ruleId: string, run: Run, overdue = false): boolean {
    const rt = this.#runtime(ruleId);
    if (rt.current || rt.older) {
      if (!overdue) return false;
      // the current run began after its delay ended: it ends at its next delay, stored beside it
      (rt.older ??= new Set()).add(run);
      run.supersedeAfter(0);
      return true;
    }
    rt.current = run;
    rt.currentAt = 0;
    return true;
  }

  /** Whether a run of the rule is running its actions (not parked in a delay: that one reads its rule again when it wakes). */
  executing(ruleId: string): boolean {
    const rt = this.#rules.get(ruleId);
    return rt !== undefined && ((rt.current !== null && !rt.current.waiting) || rt.older !== null);
  }

  /** A run finished or was cancelled: the rule has no current run unless a newer one began. */
  ended(ruleId: string, run: Run): void {
    const rt = this.#rules.get(ruleId);
    if (!rt) return;
    if (rt.current === run) rt.current = null;
    else if (rt.older?.delete(run) && rt.older.size === 0) rt.older = null;
  }

  /** Cancels the rule's runs (disabled, edited): the rest of the old plan never runs. */
  cancel(ruleId: string): void {
    const rt = this.#rules.get(ruleId);
    if (rt) this.#cancelAll(rt, 'rule_changed');
  }

  /** Node closing: stops every run, keeping saved remainders for the next start; resolves once those cut within an action are kept. */
  detachAll(): Promise<unknown> {
    const kept: Array<Promise<void>> = [];
    for (const rt of this.#rules.values()) for (const run of runsOf(rt)) {
      const k = run.detach();
      if (k) kept.push(k);
    }
    return Promise.allSettled(kept);
  }

  /** A deleted rule: its runs are cancelled and its history dropped. */
  forget(ruleId: string): void {
    const rt = this.#rules.get(ruleId);
    if (rt) this.#cancelAll(rt, 'rule_changed', true);
    this.#rules.delete(ruleId);
  }

  #cancelAll(rt: RuleRuntime, reason: 'rule_changed' | 'loop_guard', deleted = false): void {
    for (const run of runsOf(rt)) {
      run.cancel(deleted);
      this.deps.metrics.runCancelled(reason);
    }
  }

  /**
   * A rule of a home whose actor retired: forgotten unless a run of it is under way (or waits in a
   * delay), it is suspended, or its last run still counts for its cooldown or loop window.
   */
  release(rule: Rule): void {
    const rt = this.#rules.get(rule.id);
    const tick = this.#clock();
    if (!rt || rt.current || rt.older || rt.suspendedUntilTick > tick) return;
    if (rt.lastRunAt !== null && tick - rt.lastRunTick < Math.max(rule.cooldownMs, rule.limit.windowMs)) return;
    this.#rules.delete(rule.id);
  }

  /** For the rule's `status`: a suspension of this version, the last run, whether a run waits in a delay. */
  status(ruleId: string, version: number): { suspendedUntil: number | null; lastRunAt: number | null; waiting: boolean } {
    const rt = this.#rules.get(ruleId);
    const suspended = rt && rt.suspendedVersion === version && rt.suspendedUntilTick > this.#clock() ? rt.suspendedUntil : null;
    return { suspendedUntil: suspended, lastRunAt: rt?.lastRunAt ?? null, waiting: rt?.current?.waiting ?? false };
  }

  #runtime(ruleId: string): RuleRuntime {
    let rt = this.#rules.get(ruleId);
    if (!rt) {
      rt = { runs: [], lastRunAt: null, lastRunTick: 0, suspendedUntil: 0, suspendedUntilTick: 0, suspendedVersion: -1, current: null, currentAt: 0, older: null };
      this.#rules.set(ruleId, rt);
    }
    return rt;
  }

  #mayNotify(homeId: string): boolean {
    try {
      this.deps.notifyBudget?.take(homeId, 1);
      return true;
    } catch (err) {
      if (err instanceof ActionBudgetError) return false;
      throw err;
    }
  }

  #suspend(homeId: string, rule: Rule, rt: RuleRuntime, now: number, tick: number): void {
    const { suspendMs, stats, metrics, log } = this.deps;
    rt.suspendedUntil = now + suspendMs;
    rt.suspendedUntilTick = tick + suspendMs;
    rt.suspendedVersion = rule.version;
    rt.runs = [];
    this.#cancelAll(rt, 'loop_guard');
    stats.of(rule).loopStops++;
    const message = `loop guard: more than ${rule.limit.maxRuns} runs within ${rule.limit.windowMs} ms; suspended for ${Math.round(suspendMs / 1000)} s`;
    stats.error(rule, now, message);
    metrics.loopStopped();
    log.warn({ homeId, ruleId: rule.id, name: rule.name, maxRuns: rule.limit.maxRuns, windowMs: rule.limit.windowMs, suspendMs }, 'rules: rule suspended by the loop guard');
    // past the home's notifications a minute, the suspension is shown (status, log) but not pushed:
    // rules suspended and re-enabled in a loop pushed thousands a minute past it (review "rulesdos2")
    if (!this.#mayNotify(homeId)) return;
    const report = this.deps
      .push({
        homeId,
        title: 'Automation paused',
        body: `"${rule.name}" ran more than ${rule.limit.maxRuns} times within ${Math.round(rule.limit.windowMs / 1000)} s and was paused for ${Math.round(suspendMs / 60_000)} min. Edit or re-enable it to resume.`,
        dedupKey: `rule:${rule.id}:suspended:${now}`,
        data: { ruleId: rule.id, reason: 'loop_guard' },
      })
      .catch((err: unknown) => log.warn({ err, ruleId: rule.id }, 'rules: loop-guard report not queued'));
    this.deps.track(report);
  }
}

/** The rule's runs under way: its current one and those it superseded that still run (a copy: cancelling one ends it). */
function runsOf(rt: RuleRuntime): Run[] {
  const out = rt.older ? [...rt.older] : [];
  if (rt.current) out.push(rt.current);
  return out;
}

/** A suspension of this version of the rule, still running at `tick` (the guard's clock). */
function suspendedNow(rt: RuleRuntime, rule: Rule, tick: number): boolean {
  return rt.suspendedVersion === rule.version && rt.suspendedUntilTick > tick;
}

/** Within the rule's cooldown after its last run, at `tick` (the guard's clock). */
function coolingDown(rt: RuleRuntime, rule: Rule, tick: number): boolean {
  return rule.cooldownMs > 0 && rt.lastRunAt !== null && tick - rt.lastRunTick < rule.cooldownMs;
}
