/**
 * Rule observability. Per rule: counters, added to the rule store so that every node reads the
 * same totals (the API's `GET .../rules/{id}` → `stats`), and this node's recent evaluation
 * latency. Per node: aggregate Prometheus series without a rule label (a label per rule would
 * grow without bound with the number of homes).
 */
import { Counter, Histogram, type Registry } from 'prom-client';
import { RUN_COUNTERS, type RuleRunDelta, type RuleStore } from '../ports/rule-store/rule-store.js';

const RESERVOIR = 128;

export interface LatencySummary {
  count: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

export interface RuleStatsSnapshot {
  /** sent to a worker as a candidate for an event or a schedule */
  evaluated: number;
  /** a trigger matched */
  triggered: number;
  /** a trigger matched and every condition held */
  matched: number;
  /** matched but not run: cooldown, or suspended by the loop guard */
  suppressed: number;
  /** actions that completed */
  actionsRun: number;
  /** evaluation failures and failed actions */
  errors: number;
  /** times the loop guard suspended the rule */
  loopStops: number;
  lastEvaluatedAt: number | null;
  lastRunAt: number | null;
  lastError: { at: number; message: string } | null;
  /** worker time per evaluation of this rule, µs, over the last 128 (of the node that answers) */
  evalUs: LatencySummary;
}

/** What the counters need to know of a rule: the store keys its statistics by home. */
export interface RuleRef {
  readonly id: string;
  readonly homeId: string;
}

class Counters {
  constructor(readonly homeId: string) {}
  /** what the store has been told of (counts), to send only what was added since */
  readonly flushed = { evaluated: 0, triggered: 0, matched: 0, suppressed: 0, actionsRun: 0, errors: 0, loopStops: 0 };
  flushedError: { at: number; message: string } | null = null;
  evaluated = 0;
  triggered = 0;
  matched = 0;
  suppressed = 0;
  actionsRun = 0;
  errors = 0;
  loopStops = 0;
  lastEvaluatedAt: number | null = null;
  lastRunAt: number | null = null;
  lastError: { at: number; message: string } | null = null;
  readonly samples = new Float64Array(RESERVOIR);
  sampleCount = 0;

  sample(us: number): void {
    this.samples[this.sampleCount % RESERVOIR] = us;
    this.sampleCount++;
  }
}

/**
 * How long counts wait to be sent (ms): a write transaction per turn, every rule of a home at its
 * limit evaluated 45 times a second, was an eighth of the main thread (review "complexity").
 */
const STATS_FLUSH_MS = 250;

/**
 * Per-rule counters of this node, and what they added since they were last sent to the store.
 * Sent STATS_FLUSH_MS after the first change (before a status is answered, and at close: at once),
 * one `addRunStats` for every rule that changed, at most one call in flight. A failed send is kept
 * and goes with the next one.
 */
export class RuleStats {
  private readonly rules = new Map<string, Counters>();
  private readonly dirty = new Set<string>();
  private scheduled = false;
  private flushing: Promise<void> | null = null;
  private failing = false;

  /** Without a store the counters stay on this node (tests, benchmarks). */
  constructor(
    private readonly store?: Pick<RuleStore, 'addRunStats'>,
    private readonly onError: (err: unknown, firstOfOutage: boolean) => void = () => {},
  ) {}

  /** The rule's counters, to change now: they are sent to the store within STATS_FLUSH_MS. */
  of(rule: RuleRef): Counters {
    let c = this.rules.get(rule.id);
    if (!c) {
      c = new Counters(rule.homeId);
      this.rules.set(rule.id, c);
    }
    if (this.store) {
      this.dirty.add(rule.id);
      if (!this.scheduled) {
        this.scheduled = true;
        setTimeout(() => {
          this.scheduled = false;
          void this.flush();
        }, STATS_FLUSH_MS).unref();
      }
    }
    return c;
  }

  error(rule: RuleRef, at: number, message: string): void {
    const c = this.of(rule);
    c.errors++;
    c.lastError = { at, message };
  }

  /** Sends what changed; resolves once the store has it (a failure is reported, not thrown). */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing.then(() => (this.dirty.size > 0 ? this.flush() : undefined));
    const store = this.store;
    if (!store || this.dirty.size === 0) return Promise.resolve();
    const ids = [...this.dirty];
    this.dirty.clear();
    const sent: Array<[Counters, RuleRunDelta]> = [];
    for (const id of ids) {
      const c = this.rules.get(id);
      if (!c) continue;
      const d: RuleRunDelta = { homeId: c.homeId, ruleId: id, counts: {} };
      for (const name of RUN_COUNTERS) if (c[name] !== c.flushed[name]) d.counts[name] = c[name] - c.flushed[name];
      if (c.lastEvaluatedAt !== null) d.lastEvaluatedAt = c.lastEvaluatedAt;
      if (c.lastRunAt !== null) d.lastRunAt = c.lastRunAt;
      if (c.lastError !== null && c.lastError !== c.flushedError) d.lastError = c.lastError;
      sent.push([c, d]);
    }
    this.flushing = store.addRunStats(sent.map(([, d]) => d)).then(
      () => {
        this.failing = false;
        for (const [c, d] of sent) {
          for (const name of RUN_COUNTERS) c.flushed[name] += d.counts[name] ?? 0;
          if (d.lastError) c.flushedError = d.lastError;
        }
      },
      (err: unknown) => {
        // kept: the next change sends these counts too (no timer of its own while the store is down)
        for (const id of ids) if (this.rules.has(id)) this.dirty.add(id);
        this.onError(err, !this.failing);
        this.failing = true;
      },
    ).finally(() => {
      this.flushing = null;
    });
    return this.flushing;
  }

  snapshot(ruleId: string): RuleStatsSnapshot {
    const c = this.rules.get(ruleId) ?? new Counters('');
    const n = Math.min(c.sampleCount, RESERVOIR);
    return {
      evaluated: c.evaluated,
      triggered: c.triggered,
      matched: c.matched,
      suppressed: c.suppressed,
      actionsRun: c.actionsRun,
      errors: c.errors,
      loopStops: c.loopStops,
      lastEvaluatedAt: c.lastEvaluatedAt,
      lastRunAt: c.lastRunAt,
      lastError: c.lastError,
      evalUs: summarize(Array.from(c.samples.subarray(0, n)), c.sampleCount),
    };
  }

  delete(ruleId: string): void {
    this.rules.delete(ruleId);
  }

  /**
   * Drops the counters of rules whose home this node no longer holds (its actor retired) once what
   * they added is in the store, which keeps the totals: a rule run here again counts anew. Counters
   * changed meanwhile, or not sent (the store down), stay.
   */
  async release(ruleIds: readonly string[]): Promise<void> {
    await this.flush();
    for (const id of ruleIds) if (!this.dirty.has(id)) this.rules.delete(id);
  }

  /** Whether this node holds counters of the rule. */
  has(ruleId: string): boolean {
    return this.rules.has(ruleId);
  }

  /** Sums over every rule of this node (benchmarks, diagnostics). */
  totals(): Omit<RuleStatsSnapshot, 'lastEvaluatedAt' | 'lastRunAt' | 'lastError' | 'evalUs'> {
    const t = { evaluated: 0, triggered: 0, matched: 0, suppressed: 0, actionsRun: 0, errors: 0, loopStops: 0 };
    for (const c of this.rules.values()) {
      t.evaluated += c.evaluated;
      t.triggered += c.triggered;
      t.matched += c.matched;
      t.suppressed += c.suppressed;
      t.actionsRun += c.actionsRun;
      t.errors += c.errors;
      t.loopStops += c.loopStops;
    }
    return t;
  }
}

/** Percentiles of a sample (nearest rank). */
export function summarize(values: number[], count = values.length): LatencySummary {
  if (values.length === 0) return { count, p50: 0, p95: 0, p99: 0, max: 0 };
  const s = [...values].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
  return { count, p50: at(0.5), p95: at(0.95), p99: at(0.99), max: s[s.length - 1]! };
}

/**
 * `home_stopped`: queued for a home whose actor its supervisor stopped (too many failures);
 * `missed`: the rest of a run after a delay, found at start past its due time by more than the catch-up window;
 * `store_unavailable`: the rule store unreachable and the home's rules not cached on this node
 */
export type DropReason = 'queue_full' | 'backlog' | 'timeout' | 'worker_failed' | 'closed' | 'state_unavailable' | 'home_stopped' | 'missed' | 'store_unavailable' | 'event_budget' | 'home_cpu';

export type ActionResult = 'ok' | 'failed' | 'refused';

/** Node-wide series; the engine, pool and scheduler report into one sink. */
export interface RuleMetricsSink {
  /** one per rule evaluated */
  outcome(outcome: 'not_triggered' | 'not_matched' | 'matched' | 'suppressed' | 'error'): void;
  /** pool round trip of one task (all candidate rules of one event), seconds */
  evaluation(seconds: number): void;
  /** `refused`: not run, its home past its actions per second (ActionBudget) */
  action(type: string, result: ActionResult): void;
  /** from the event reaching the engine to its first action starting, seconds */
  eventToAction(seconds: number): void;
  dropped(reason: DropReason): void;
  loopStopped(): void;
  /** a run stopped before its end: `superseded` by a newer run of its rule (in a delay), its rule disabled, edited or deleted, or suspended by the loop guard */
  runCancelled(reason: 'superseded' | 'rule_changed' | 'loop_guard'): void;
  /** spaced: an instant passed over as closer than the minimum interval to the rule's one before */
  cron(outcome: 'fired' | 'missed' | 'taken' | 'spaced'): void;
  workerError(): void;
}

export const noRuleMetrics: RuleMetricsSink = {
  outcome() {},
  evaluation() {},
  action() {},
  eventToAction() {},
  dropped() {},
  loopStopped() {},
  runCancelled() {},
  cron() {},
  workerError() {},
};

/** The sink as Prometheus series `tier_rule_*` in `registry` (the admin port's /metrics). */
export function prometheusRuleMetrics(registry: Registry): RuleMetricsSink {
  const registers = [registry];
  const outcomes = new Counter({ name: 'tier_rule_evaluations_total', help: 'Rule evaluations by outcome', labelNames: ['outcome'], registers });
  const evalSeconds = new Histogram({
    name: 'tier_rule_evaluation_seconds',
    help: 'Worker pool round trip of one event (all candidate rules)',
    buckets: [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5],
    registers,
  });
  const actions = new Counter({ name: 'tier_rule_actions_total', help: 'Rule actions by type and result (refused: its home past TIER_RULE_HOME_ACTIONS_PER_SEC)', labelNames: ['type', 'result'], registers });
  const e2a = new Histogram({
    name: 'tier_rule_event_to_action_seconds',
    help: 'From an event reaching the rule engine to its first action starting',
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers,
  });
  const dropped = new Counter({ name: 'tier_rule_dropped_total', help: 'Events or tasks not evaluated, and runs missed after a restart, by reason', labelNames: ['reason'], registers });
  const loops = new Counter({ name: 'tier_rule_loop_stops_total', help: 'Rules suspended by the loop guard', registers });
  const cancelled = new Counter({ name: 'tier_rule_runs_cancelled_total', help: 'Runs stopped before their end, by reason (superseded: a newer run of the rule, while in a delay)', labelNames: ['reason'], registers });
  const cron = new Counter({ name: 'tier_rule_cron_total', help: 'Cron instants by outcome (taken: fired by another node; spaced: passed over, too close to the one before)', labelNames: ['outcome'], registers });
  const workers = new Counter({ name: 'tier_rule_worker_errors_total', help: 'Rule worker threads that failed or were terminated', registers });
  return {
    outcome: (o) => outcomes.inc({ outcome: o }),
    evaluation: (s) => evalSeconds.observe(s),
    action: (type, result) => actions.inc({ type, result }),
    eventToAction: (s) => e2a.observe(s),
    dropped: (reason) => dropped.inc({ reason }),
    loopStopped: () => loops.inc(),
    runCancelled: (reason) => cancelled.inc({ reason }),
    cron: (o) => cron.inc({ outcome: o }),
    workerError: () => workers.inc(),
  };
}
