/**
 * Running what a rule decided: one run of its planned actions, in order, each awaited. A delay
 * parks the run on the node's timer wheel (nothing else is held meanwhile); cancelling stops it
 * before its next action (an action already started finishes). A failed action is counted with
 * its index and the next one still runs. Runs are detached from the home's mailbox: a delay never
 * holds the home's next event.
 *
 * Delays and restarts: with a PendingRuns store, a run reaching a delay saves what it still has to
 * do before it waits (a delay-free run never touches the store). The entry is replaced at the next
 * delay and removed once the actions after the last one have run (a crash in between runs that
 * stretch again at the next start: at least once), or when the run is cancelled. Stopping the
 * node detaches waiting runs and keeps their entries (resume.ts picks them up at the next start);
 * a run it stops within an action, or whose command the drain answers `session_closed`, is saved
 * from that action, due at once (`#keepRest`: the cut command goes again, at least once, unless
 * it is answered within the close's wait: `#passKept`).
 * After every delay the run reads its rule again: deleted, disabled or edited (another version)
 * meanwhile, it ends there; the edited rule's next trigger starts a run of the new plan. It also
 * ends there when its saved wait was replaced by a newer run of the rule on another node.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Attrs } from '../../proto/frames.js';
import type { TimerHandle, TimerTarget, TimerWheel } from '../actors/timer-wheel.js';
import { asTierError, CommandError, isUnreachable } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { SampledLog } from '../log/sampler.js';
import type { AuditTrail } from '../actors/audit-trail.js';
import type { PendingRun, PendingRuns } from '../ports/pending-runs/pending-runs.js';
import type { PushNotification } from '../ports/push-queue/push-queue.js';
import { ActionBudgetError, type ActionBudget } from './action-budget.js';
import type { HomeScope } from './home-scope.js';
import type { WaitingSender } from './hub-wait.js';
import { perform } from './actions.js';
import type { RuleMetricsSink, RuleStats } from './metrics.js';
import type { PlannedAction, Rule, Scene } from './model.js';
import type { Run } from './run-guard.js';
import { inSpan } from '../trace/active-span.js';
import { endSpan, SpanKind, tracing, type Span } from '../trace/tracing.js';

/** What actions reach, from the composition root, and where their outcomes are counted. */
export interface ActionDeps {
  scope: HomeScope;
  getScene(homeId: string, sceneId: string): Promise<Scene | null>;
  /** the rule as stored now: a run going on after a delay checks it still exists and is enabled */
  getRule(homeId: string, ruleId: string): Promise<Rule | null>;
  /** where runs parked in a delay are saved; absent: delays live in this node's memory only */
  pendingRuns?: PendingRuns;
  /** a rule's commands; a `WaitingSender` re-checks the hub's home before each try after the first */
  runCommand: WaitingSender;
  setDesired(hubId: string, deviceId: string, patch: Attrs, homeId: string): Promise<unknown>;
  push(notification: PushNotification): Promise<unknown>;
  /** what each home's runs may start per second (commands, a scene's each, desired changes, notifications) */
  budget: ActionBudget;
  /** notifications each home's runs may send per minute (TIER_RULE_HOME_NOTIFY_PER_MIN), besides `budget` */
  notifyBudget?: ActionBudget;
  timers: TimerWheel;
  /** for commands that set no timeout (ms) */
  commandTimeoutMs: number;
  /** a scene run's commands in flight per hub (`sceneCommandsPerHub`); @default SCENE_COMMANDS_PER_HUB (8) */
  sceneCommandsPerHub?: number;
  stats: RuleStats;
  metrics: RuleMetricsSink;
  log: Logger;
  /** where a failure because a backend is away is logged instead of `log`: sampled per kind (`failureLog`) */
  outage: SampledLog;
  now(): number;
  /** each stretch of a run between delays is a promise the engine's idle and close wait for */
  track(p: Promise<unknown>): void;
  /** commands, desired changes and scenes run by rules are recorded here, the rule as the actor */
  audit?: AuditTrail;
  /** the node drains or its rules close: a command failing for that keeps the run's actions from it for the next start */
  closing?(): boolean;
}

/**
 * An action failed for the stop, not for itself: a command answered `session_closed` as its hub was
 * told to go. A wait for a hub the close ends is the close's `detach`; one that ran out in the
 * drain would have failed all the same (review "diff22" S5).
 */
function cutByStop(deps: ActionDeps, error: unknown): boolean {
  return deps.closing?.() === true && error instanceof CommandError && error.code === 'session_closed';
}

export class ActionRun implements TimerTarget, Run {
  #cancelled = false;
  /** a newer run of its rule began while this one ran its actions: it ends at its next delay */
  #superseded = false;
  /** a later event's run began first (RunGuard.supersedeAfter): the plan's delays may add up to this (ms), null: any */
  #supersededAfter: number | null = null;
  /** the plan's delays so far (ms) */
  #delayed = 0;
  /** saved beside its rule's entry, never over it: an older run beside the current one (replayed, or resumed past due) */
  #apart = false;
  /** cancelled because its rule was deleted: the node's counters for the rule are gone, and stay so */
  #deleted = false;
  #timer: TimerHandle | null = null;
  #next = 0;
  #started = false;
  /** the runId of this run's entry in the PendingRuns store, while it may be there */
  #saved: string | null = null;
  /** that entry's save succeeded (or it was loaded from the store): the store can say if a newer run replaced it */
  #stored = false;
  /** the `rule run` span while tracing is on (a child of the evaluation), ended with the run */
  #span: Span | undefined;
  /** the error code of the first failed action, for the span's status */
  #failure: string | undefined;
  /** the index of the action in progress; -1 between actions (a delay, its save, the rule's re-read) */
  #at = -1;
  /** resolves what `start` answered once the stop's cut-off actions are kept (`#keepRest`) */
  #kept: (() => void) | null = null;
  /** the entry the stop's keep saved (from action `at`): passed on if that action then succeeds */
  #keep: { runId: string; at: number; saved: Promise<unknown> } | null = null;

  constructor(
    private readonly deps: ActionDeps,
    private readonly homeId: string,
    readonly rule: Rule,
    private readonly actions: readonly PlannedAction[],
    /** the notification dedup key of plan index i is `${dedupBase}:${i}` */
    private readonly dedupBase: string,
    /** performance.now() when the triggering event reached the engine */
    private readonly received: number,
    /** called once when the run finishes or is cancelled */
    private readonly onEnd: (run: ActionRun) => void,
    /** the plan index of `actions[0]` (a run restored from the store is the tail of its plan) */
    private readonly offset = 0,
    /** the `rule evaluation` span that decided the run (tracing on); a restored run has none */
    private readonly evaluation?: Span,
  ) {}

  get waiting(): boolean {
    return this.#timer !== null && this.#timer.active;
  }

  /**
   * Runs the plan; resolves once it has run up to its first delay (then saved) or its end, or once
   * the actions a stop cut off are kept for the next start (`#keepRest`; the stretch itself may wait
   * on for an answer that never comes). The home's mark waits for this.
   */
  start(): Promise<void> {
    let stretch: Promise<void>;
    if (tracing === null || this.evaluation === undefined) stretch = this.#execute(0);
    else {
      // the run's commands and notifications are its children; its lines name it while it runs
      const span = (this.#span = tracing.start('rule run', SpanKind.INTERNAL, this.evaluation, { 'hubtier.home_id': this.homeId, 'hubtier.rule_id': this.rule.id, 'hubtier.actions': this.actions.length }));
      stretch = inSpan(span, () => this.#execute(0));
    }
    this.deps.track(stretch);
    return new Promise<void>((resolve, reject) => {
      this.#kept = resolve;
      stretch.then(resolve, reject);
    });
  }

  /**
   * A run restored from the store (resume.ts): waits until its `dueAt`, or goes on at once when
   * that has passed. Its first action is no event's first action: no event-to-action latency.
   */
  restore(pending: PendingRun): void {
    if (pending.apart) this.#apart = true;
    this.#saved = pending.runId;
    this.#stored = true;
    this.#started = true;
    const wait = pending.dueAt - this.deps.now();
    if (wait > 0) this.#timer = this.deps.timers.schedule(wait, this);
    else this.onTimer();
  }

  /** @param deleted its rule was deleted: an action still in flight is then not counted for it */
  cancel(deleted = false): void {
    this.#cancelled = true;
    this.#deleted ||= deleted;
    this.deps.timers.cancel(this.#timer);
    this.#timer = null;
    this.#unsave();
    this.#ended();
  }

  /** What a save of an older run beside the current one adds: stored apart, never over the rule's entry. */
  #beside(): { apart?: true } {
    return this.#apart ? { apart: true } : {};
  }

  /** The run is over (done, cancelled, or its rule changed): its span ends, its guard hears of it. */
  #ended(): void {
    if (this.#span) endSpan(this.#span, this.#failure);
    this.#span = undefined;
    this.onEnd(this);
  }

  /** RunGuard.begin of an older event's run (replayed): its delays past `ms` from its event end it there. */
  supersedeAfter(ms: number): void {
    this.#supersededAfter = ms;
    this.#apart = true;
  }

  /** RunGuard.begin: cancelled now if waiting in a delay; running its actions, they go on up to its next delay. */
  supersede(): void {
    if (this.#cancelled) return;
    this.#superseded = true;
    if (!this.waiting) return;
    this.cancel();
    this.deps.metrics.runCancelled('superseded');
  }

  /** At its delay, superseded: the newer run's delay is the one that counts ("off 5 min after the last motion"). */
  #endSuperseded(): void {
    this.deps.metrics.runCancelled('superseded');
    this.cancel();
  }

  /**
   * Node closing: stops the run and keeps its saved entry, so the next start resumes it. Within an
   * action (its outcome unknown), the actions from that one are kept instead: at least once.
   */
  detach(): Promise<void> | undefined {
    const kept = this.#at >= 0 && !this.#cancelled ? this.#keepRest(this.#at) : undefined;
    if (kept) this.deps.track(kept);
    this.#saved = null;
    this.cancel();
    return kept;
  }

  onTimer(): void {
    this.#timer = null;
    const span = this.#span;
    this.deps.track(span === undefined ? this.#resume() : inSpan(span, () => this.#resume()));
  }

  /** After a delay: goes on only if the rule still exists, is enabled and is the version that planned the run. */
  async #resume(): Promise<void> {
    const { deps, rule } = this;
    let current: Rule | null = rule;
    try {
      current = await deps.getRule(this.homeId, rule.id);
    } catch (err) {
      // the store is down: go on as before the check existed rather than drop the rest of the run
      this.#warn('rule_not_reread', err, { homeId: this.homeId, ruleId: rule.id }, 'rules: rule not re-read after a delay; the run goes on');
    }
    if (this.#cancelled) return;
    if (!current || !current.enabled || current.version !== rule.version) {
      const reason = !current ? 'deleted' : !current.enabled ? 'disabled' : 'edited';
      deps.log.info({ homeId: this.homeId, ruleId: rule.id, reason }, 'rules: run ends after its delay: the rule changed');
      this.#unsave();
      this.#ended();
      return;
    }
    if (await this.#replaced()) {
      // the entry is the newer run's now: left to it
      this.#saved = null;
      return this.#endSuperseded();
    }
    if (this.#cancelled) return;
    await this.#execute(this.#next);
  }

  async #execute(from: number): Promise<void> {
    const { deps, rule } = this;
    for (let i = from; i < this.actions.length; i++) {
      if (this.#cancelled) return;
      const a = this.actions[i]!;
      if (a.type === 'delay') {
        this.#delayed += a.ms;
        if (this.#superseded || (this.#supersededAfter !== null && this.#delayed > this.#supersededAfter)) return this.#endSuperseded();
        this.#next = i + 1;
        const dueAt = deps.now() + a.ms;
        if (deps.pendingRuns && i + 1 < this.actions.length) await this.#save(deps.pendingRuns, dueAt, i + 1);
        if (this.#cancelled) return;
        // superseded while its delay was being saved: not waiting yet, so it ends here
        if (this.#superseded) return this.#endSuperseded();
        this.#timer = deps.timers.schedule(dueAt - deps.now(), this);
        return;
      }
      if (!this.#started) {
        this.#started = true;
        deps.metrics.eventToAction((performance.now() - this.received) / 1000);
      }
      const index = this.offset + i;
      let error: unknown;
      this.#at = i;
      try {
        await perform(deps, this.homeId, rule, a, index, this.dedupBase, this.#span);
      } catch (err) {
        error = err ?? new Error('action failed');
      }
      this.#at = -1;
      // kept by the close while it ran, then answered: the next start goes on after it, not with it again
      if (error === undefined && this.#keep?.at === i) deps.track(this.#passKept(i));
      deps.metrics.action(a.type, error === undefined ? 'ok' : error instanceof ActionBudgetError ? 'refused' : 'failed');
      // counted for a deleted rule, its counters would come back and stay for the node's life
      if (this.#deleted) return;
      if (error === undefined) deps.stats.of(rule).actionsRun++;
      else {
        this.#failure ??= asTierError(error).code;
        deps.stats.error(rule, deps.now(), `actions[${index}] (${a.type}): ${error instanceof Error ? error.message : String(error)}`);
        // a home past its budget has every action refused alike: sampled as an outage is
        if (error instanceof ActionBudgetError) deps.outage.write('action_budget', { homeId: this.homeId, ruleId: rule.id }, 'rules: action refused, the home past its actions per second (counted in tier_rule_actions_total{result="refused"})');
        else this.#warn('action_failed', error, { ruleId: rule.id }, 'rules: action failed');
        if (!this.#cancelled && cutByStop(deps, error)) {
          await this.#keepRest(i);
          // the close may have detached it meanwhile: ended once
          if (!this.#cancelled) this.cancel();
          return;
        }
      }
    }
    if (this.#cancelled) return;
    this.#unsave();
    this.#ended();
  }

  /**
   * A newer run of the rule replaced this one's saved entry: on another node of a cluster, which
   * this node's RunGuard never saw (a hub moved, or a home's hubs on two nodes). Unknown (not
   * saved, or the store away): not replaced, as before the check existed.
   */
  async #replaced(): Promise<boolean> {
    const store = this.deps.pendingRuns;
    const runId = this.#saved;
    if (!store || runId === null || !this.#stored) return false;
    try {
      if (!this.#apart && (await store.holds(this.rule.id, runId))) return false;
      if (!(await store.holds(this.rule.id, runId, this.dedupBase))) return true;
      // kept apart by a newer run's save (its delay had ended first: this node late): it goes on as
      // the older run, to its next delay, stored beside the newer run's entry, never over it
      if (!this.#apart) this.supersedeAfter(0);
      return false;
    } catch (err) {
      this.#warn('run_not_checked', err, { homeId: this.homeId, ruleId: this.rule.id }, 'rules: not checked for a newer run after a delay; the run goes on');
      return false;
    }
  }

  /**
   * The stop cut the run at action `i`: the actions from it are saved as a pending run due now (it
   * replaces the rule's entry), so the next start (or, in a cluster, the node that takes this one's
   * entries) runs them within the catch-up window, with the same notification keys.
   */
  async #keepRest(i: number): Promise<void> {
    const store = this.deps.pendingRuns;
    if (!store) return;
    const { homeId, rule } = this;
    const fields = { homeId, ruleId: rule.id, action: this.offset + i };
    // set before the save: an answer while it is in flight passes it on once the save is done
    const runId = randomUUID();
    const saved = store.save({ runId, homeId, ruleId: rule.id, ruleVersion: rule.version, dueAt: this.deps.now(), actions: this.actions.slice(i), offset: this.offset + i, dedupBase: this.dedupBase, savedAt: this.deps.now(), ...this.#beside() });
    this.#keep = { runId, at: i, saved };
    try {
      await saved;
      this.#kept?.();
      this.deps.log.info(fields, 'rules: run cut short by the stop; its actions from the one cut are kept for the next start');
    } catch (err) {
      this.#warn('cut_not_kept', err, fields, 'rules: run cut short by the stop; its remaining actions not kept');
    }
  }

  /**
   * Action `i`, which the stop's keep saved the run from, succeeded after all (answered within the
   * close's wait): the entry goes on from the next action, or after its delay as `#save` would, or
   * is removed when none is left (review "diff22": the answered command went again at the next start).
   */
  async #passKept(i: number): Promise<void> {
    const store = this.deps.pendingRuns;
    const kept = this.#keep;
    this.#keep = null;
    if (!store || !kept) return;
    const { homeId, rule } = this;
    const next = this.actions[i + 1];
    const from = next?.type === 'delay' ? i + 2 : i + 1;
    try {
      // after the keep's commit: an LMDB read in flight with it does not see it (review "diff24")
      await kept.saved.catch(() => undefined);
      // replaced meanwhile by a newer run of the rule (on another node), or never stored: left alone
      if (!(await store.holds(rule.id, kept.runId, this.dedupBase))) return;
      if (from >= this.actions.length) await store.remove(rule.id, kept.runId, this.dedupBase);
      else {
        const dueAt = this.deps.now() + (next?.type === 'delay' ? next.ms : 0);
        await store.save({ runId: randomUUID(), homeId, ruleId: rule.id, ruleVersion: rule.version, dueAt, actions: this.actions.slice(from), offset: this.offset + from, dedupBase: this.dedupBase, savedAt: this.deps.now(), ...this.#beside() });
      }
      this.deps.log.info({ homeId, ruleId: rule.id, action: this.offset + i }, 'rules: the action a stop cut was answered after all; the kept run goes on after it');
    } catch (err) {
      this.#warn('cut_not_passed', err, { homeId, ruleId: rule.id }, 'rules: the action a stop cut was answered after all, but the kept run still holds it; it may run again');
    }
  }

  /** Saves the rest of the plan after the delay; a failed save leaves the wait in memory only. */
  async #save(store: PendingRuns, dueAt: number, next: number): Promise<void> {
    const runId = randomUUID();
    // set before the save: a cancel while it is in flight removes it (calls apply in order)
    this.#saved = runId;
    this.#stored = false;
    const { homeId, rule } = this;
    try {
      await store.save({ runId, homeId, ruleId: rule.id, ruleVersion: rule.version, dueAt, actions: this.actions.slice(next), offset: this.offset + next, dedupBase: this.dedupBase, savedAt: this.deps.now(), ...this.#beside() });
      this.#stored = this.#saved === runId;
    } catch (err) {
      this.#warn('delay_not_saved', err, { homeId, ruleId: rule.id, dueAt }, 'rules: delay not saved; a restart before it ends forgets it');
    }
  }

  #unsave(): void {
    const runId = this.#saved;
    const store = this.deps.pendingRuns;
    if (runId === null || !store) return;
    this.#saved = null;
    const { homeId, rule } = this;
    this.deps.track(store.remove(rule.id, runId, this.dedupBase).catch((err: unknown) => this.#warn('delay_not_removed', err, { homeId, ruleId: rule.id }, 'rules: finished delay not removed; it may run again after a restart')));
  }

  /** A warn line of this run; sampled per `kind` when a backend is away, as every run then fails alike. */
  #warn(kind: string, err: unknown, fields: Record<string, unknown>, msg: string): void {
    if (isUnreachable(err)) this.deps.outage.write(kind, { ...fields, err }, msg);
    else this.deps.log.warn({ ...fields, err }, msg);
  }
}
