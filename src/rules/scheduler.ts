/**
 * Cron timers of rules. Every node runs a scheduler over every home's cron rules; each scheduled
 * instant fires on one node only, and a restart resumes where the cluster left off.
 *
 * Once per instant: the node that fires instant `t` of rule `r` first takes the lease
 * `rule:<r>:<t>` (only one node gets it) and then advances the rule's cursor in the RuleStore to
 * `t` (an atomic compare-and-set: it fails if any node already recorded `t` or later). Only with
 * both does it fire, so even a lease that expired cannot cause a second firing. A node that dies
 * between taking the lease and firing loses that firing (at most once).
 *
 * Restarts and missed firings (catch-up policy): the cursor is durable, so a scheduler that
 * starts (or a node that comes back) looks at the instants after the cursor (and after the rule's
 * last change: a new or edited rule never fires for instants before it existed):
 * - of the instants at or before now, the latest that is at most `catchUpMs` old fires late (that of
 *   the trigger naming it, default 60 s; the longest when several name it);
 * - every other missed instant is skipped: after an outage a rule fires at most once, never a
 *   burst. Skipped instants are counted (`missed`), logged, recorded in the cursor and in the
 *   rule's statistics (`errors`, `lastError`), so its status says why it did not run.
 *
 * Clocks: an instant is due when this node's clock reaches it, but in a cluster never before the
 * shared store's clock does (Redis's TIME, + CLOCK_SLACK_MS): a node ahead waits, a node behind is
 * outrun by one on time. The store's cursor refuses instants past its clock as well.
 *
 * Time zone: patterns are read in the home's time zone (settings), with daylight saving, for every
 * pattern (local-cron.ts): times in the hour skipped in spring fire once at the end of the gap
 * (02:30 → 03:00; 02:00, 02:15, 02:30, 02:45 → one firing at 03:00), each time in the hour
 * repeated in autumn fires once (its first occurrence).
 */
import { LocalCron, zoneClock } from './local-cron.js';
import type { Logger } from '../log/logger.js';
import { failureLog, type SampledLog } from '../log/sampler.js';
import type { Lease } from '../ports/lease/lease.js';
import { noRuleMetrics, type RuleMetricsSink } from './metrics.js';
import { DEFAULT_CATCH_UP_MS } from './model.js';
import { CLOCK_SLACK_MS, type RuleStore, type ScheduledRule } from '../ports/rule-store/rule-store.js';

export interface CronSchedulerDeps {
  store: RuleStore;
  lease: Lease;
  /** this node's name: the lease owner */
  nodeId: string;
  /** runs the rule for instant `scheduledAt` (the engine's `fireScheduled`) */
  fire(homeId: string, ruleId: string, scheduledAt: number): Promise<unknown>;
  log: Logger;
  metrics?: RuleMetricsSink;
  now?: () => number;
  /** how often due instants are looked for; @default 1_000 (ms) */
  pollMs?: number;
  /** the list of cron rules is re-read at least this often (and after each store change); @default 30_000 (ms) */
  reloadMs?: number;
  /** default of `catchUpMs` for cron triggers that do not set it; @default 60_000 (ms) */
  catchUpMs?: number;
  /**
   * A rule's instants closer than this to the one before (fired or skipped) are passed over, so
   * its cron triggers together fire at most once per interval, whatever the save-time check saw
   * (validate.ts looks at the next firings only). @default 0 (none); the node's is 60 s
   */
  minIntervalMs?: number;
}

interface Entry {
  rule: ScheduledRule;
  crons: LocalCron[];
  /** each cron trigger's `catchUpMs`, in the order of `crons` */
  catchUps: number[];
  /** instants at or before this are done (fired, skipped, or before the rule existed) */
  after: number;
  /** the first instant after `after`, or null when the pattern never fires again */
  next: number | null;
}

/** What one tick did (tests, diagnostics). */
export interface TickReport {
  fired: Array<{ homeId: string; ruleId: string; at: number }>;
  missed: number;
  taken: number;
}

/** an instant's lease outlives its catch-up by this: no node can still be within catch-up when it expires */
const LEASE_MARGIN_MS = 5 * 60_000;

/** instants skipped one by one at most per rule and tick; beyond, the rest are skipped in one step */
const MAX_SKIP_WALK = 10_000;
/**
 * Rules whose instants one tick handles at once: each takes its lease and moves its cursor (a
 * commit) before it fires. One at a time, a minute's 14,000 rules fired over 190 s (review herd);
 * concurrent, the store commits them together.
 */
const DUE_PARALLEL = 64;
/** Firings waiting for their home's evaluation at most: past it the tick waits (the rule pool's queue holds 1,024 tasks for every home's events too). */
const FIRINGS_IN_FLIGHT = 256;

export class CronScheduler {
  private readonly entries = new Map<string, Entry>();
  /** rules this node cannot schedule, by id: the version and zone refused (said once each) */
  private readonly refused = new Map<string, string>();
  private readonly metrics: RuleMetricsSink;
  private readonly now: () => number;
  private readonly pollMs: number;
  private readonly reloadMs: number;
  private readonly defaultCatchUpMs: number;
  /** added to an instant to find the next: 0, or the minimum interval less 1 ms (nextAfter is strict) */
  private readonly gap: number;
  private readonly inflight = new Set<Promise<unknown>>();
  private lastReload = -Infinity;
  private dirty = true;
  private interval: NodeJS.Timeout | null = null;
  private ticking: Promise<TickReport> | null = null;
  /** set by `stop`: a tick under way fires nothing more (a drain during a burst went on firing for 22 s) */
  private stopping = false;
  /** rules past the in-flight check, not yet firing (their lease and cursor being written) */
  private claiming = 0;
  private unwatch: (() => void) | null = null;
  /**
   * Failed ticks and instants: a backend away fails every tick (1 s) alike, so one line per kind
   * and 10 s, then one with the count of those not logged (10 per 10 s would let every tick through)
   */
  private readonly failures: SampledLog;
  /** totals since start */
  readonly counts = { fired: 0, missed: 0, taken: 0, spaced: 0, errors: 0 };

  constructor(private readonly deps: CronSchedulerDeps) {
    this.metrics = deps.metrics ?? noRuleMetrics;
    this.now = deps.now ?? Date.now;
    this.pollMs = deps.pollMs ?? 1_000;
    this.reloadMs = deps.reloadMs ?? 30_000;
    this.defaultCatchUpMs = deps.catchUpMs ?? DEFAULT_CATCH_UP_MS;
    this.gap = Math.max(0, (deps.minIntervalMs ?? 0) - 1);
    this.failures = failureLog(deps.log, 'cron: failures not logged', 'warn', 1);
    this.unwatch = deps.store.watch(() => {
      this.dirty = true;
    });
  }

  /** The store lost its data (its change notices with it): the rules are read again at the next tick. */
  storeLost(): void {
    this.dirty = true;
  }

  /** Ticks every `pollMs` until `stop`. */
  start(): void {
    if (this.interval) return;
    this.interval = setInterval(() => {
      if (this.ticking) return; // a slow tick (store, lease) is not stacked
      this.tick().catch((err: unknown) => {
        this.counts.errors++;
        this.failures.write('tick', { err }, 'cron scheduler tick failed');
      });
    }, this.pollMs);
    this.interval.unref();
  }

  /** One pass: reload if due, then handle every instant that is due. Ticks never overlap. */
  tick(): Promise<TickReport> {
    if (this.ticking) return this.ticking;
    const p = this.run().finally(() => {
      this.ticking = null;
    });
    this.ticking = p;
    return p;
  }

  /** Stops ticking and waits for firings in progress. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.interval) clearInterval(this.interval);
    this.interval = null;
    this.unwatch?.();
    this.unwatch = null;
    // the count of lines not logged so far, then no timer left behind
    this.failures.flush(true);
    this.failures.close();
    await this.ticking?.catch(() => {});
    await Promise.allSettled([...this.inflight]);
  }

  /** rules with a cron trigger this scheduler knows */
  get size(): number {
    return this.entries.size;
  }

  private async run(): Promise<TickReport> {
    const report: TickReport = { fired: [], missed: 0, taken: 0 };
    const local = this.now();
    if (this.dirty || local - this.lastReload >= this.reloadMs) await this.reload(local);
    const now = await this.clusterNow(local);
    // only the rules with an instant due: a tick of a quiet minute walks no rule's instants
    const entries = [...this.entries.values()].filter((e) => e.next !== null && e.next <= now);
    let next = 0;
    const work = async () => {
      while (next < entries.length && !this.stopping) {
        const entry = entries[next++]!;
        try {
          await this.due(entry, now, report);
        } catch (err) {
          this.counts.errors++;
          this.failures.write('instant', { err, ruleId: entry.rule.ruleId }, 'cron: instant not handled, retried next tick');
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(DUE_PARALLEL, entries.length) }, work));
    return report;
  }

  /**
   * `local`, but never past the store's shared clock + CLOCK_SLACK_MS: a node whose clock runs
   * ahead waits for the cluster's time (it would fire early, or skip instants as missed and leave
   * the cursor in the future). Read only when an instant looks due: a node behind just fires late,
   * and another node fires on time.
   */
  private async clusterNow(local: number): Promise<number> {
    let due = false;
    for (const e of this.entries.values()) {
      if (e.next !== null && e.next <= local) {
        due = true;
        break;
      }
    }
    if (!due) return local;
    const shared = await this.deps.store.sharedTime();
    return shared === null ? local : Math.min(local, shared + CLOCK_SLACK_MS);
  }

  private async reload(now: number): Promise<void> {
    this.dirty = false;
    const list = await this.deps.store.listScheduled();
    const seen = new Set<string>();
    for (const rule of list) {
      seen.add(rule.ruleId);
      const old = this.entries.get(rule.ruleId);
      if (old && old.rule.version === rule.version && old.rule.timeZone === rule.timeZone) continue;
      let crons: LocalCron[];
      try {
        const clock = zoneClock(rule.timeZone);
        crons = rule.crons.map((c) => new LocalCron(c.cron, clock));
      } catch (err) {
        this.entries.delete(rule.ruleId);
        await this.refuse(rule, err as Error, now);
        continue;
      }
      const cursor = await this.deps.store.getCursor(rule.ruleId);
      // spaced from the last instant handled; a rule saved just now fires at its first instant (a
      // home's new zone moved the cursor to the change: zone-change.ts)
      const after = Math.max(cursor === null ? -Infinity : cursor + this.gap, rule.updatedAt);
      const entry: Entry = {
        rule,
        crons,
        catchUps: rule.crons.map((c) => c.catchUpMs ?? this.defaultCatchUpMs),
        after,
        next: null,
      };
      entry.next = nextAfter(entry.crons, after);
      this.entries.set(rule.ruleId, entry);
    }
    for (const id of this.entries.keys()) if (!seen.has(id)) this.entries.delete(id);
    for (const id of this.refused.keys()) if (!seen.has(id)) this.refused.delete(id);
    this.lastReload = now;
  }

  /**
   * A rule this node cannot schedule: a zone its ICU does not know (a store written by a node of
   * newer tzdata, in a rolling upgrade) or a pattern its croner refuses. Said once per version and
   * zone, in the log and in the rule's status: it was a warning every reload and nothing in the
   * status, while the rule never fired (review "tz").
   */
  private async refuse(rule: ScheduledRule, err: Error, now: number): Promise<void> {
    const what = `${rule.version} ${rule.timeZone}`;
    if (this.refused.get(rule.ruleId) === what) return;
    this.refused.set(rule.ruleId, what);
    const { homeId, ruleId, timeZone } = rule;
    this.deps.log.warn({ err, homeId, ruleId, timeZone }, 'cron: pattern or time zone refused; rule not scheduled');
    const message = `not scheduled on node ${this.deps.nodeId}: its pattern or time zone ${timeZone} is refused here (${err.message})`;
    await this.deps.store.addRunStats([{ homeId, ruleId, counts: { errors: 1 }, lastError: { at: now, message } }]).catch((e: unknown) => {
      this.failures.write('stats', { err: e, ruleId }, "cron: a rule not scheduled not added to the rule's statistics");
    });
  }

  private async due(entry: Entry, now: number, report: TickReport): Promise<void> {
    while (entry.next !== null && entry.next <= now) {
      // every due instant is walked; the latest within its own trigger's catch-up fires, the others
      // are skipped (no burst after an outage; a frequent trigger's late instant does not mask a
      // daily one's still within its hour)
      let t = entry.next;
      let following = nextAfter(entry.crons, t + this.gap);
      let walked = 0;
      let previous = 0;
      // the instant that fires: when, its place in the walk, the instant walked before it
      let chosen: { at: number; index: number; before: number } | null = null;
      if (now - t <= catchUpOf(entry, t)) chosen = { at: t, index: 0, before: 0 };
      while (following !== null && following <= now) {
        walked++;
        previous = t;
        t = following;
        if (walked >= MAX_SKIP_WALK) {
          // a very long outage of a frequent pattern: jump to the last instant before now
          const back = entry.crons.map((c) => c.latestAtOrBefore(now) ?? -Infinity);
          const latest = Math.max(...back);
          if (latest > t) t = latest;
          if (now - t <= catchUpOf(entry, t)) chosen = { at: t, index: walked, before: previous };
          following = nextAfter(entry.crons, t + this.gap);
          break;
        }
        if (now - t <= catchUpOf(entry, t)) chosen = { at: t, index: walked, before: previous };
        following = nextAfter(entry.crons, t + this.gap);
      }
      // one record of the instants skipped before the one that fires, one of those after it
      if (chosen === null) await this.skip(entry, t, walked + 1, true, catchUpOf(entry, t), now, report);
      else {
        if (chosen.index > 0) await this.skip(entry, chosen.before, chosen.index, false, catchUpOf(entry, chosen.at), now, report);
        await this.fireOnce(entry, chosen.at, catchUpOf(entry, chosen.at), now, report);
        if (chosen.at < t) await this.skip(entry, t, walked - chosen.index, true, catchUpOf(entry, t), now, report);
      }
      entry.after = t;
      entry.next = following;
      if (this.gap > 0) this.spaced(entry, t);
    }
  }

  /** Fires instant `t` once fewer than FIRINGS_IN_FLIGHT firings wait for their homes (and the scheduler runs). */
  private async fireOnce(entry: Entry, t: number, catchUpMs: number, now: number, report: TickReport): Promise<void> {
    // before its lease: an instant this node cannot fire yet stays free for another; the rules
    // between this check and their firing count too (the ticks' DUE_PARALLEL workers pass it at once)
    while (this.inflight.size > 0 && this.inflight.size + this.claiming >= FIRINGS_IN_FLIGHT) await Promise.race(this.inflight);
    if (this.stopping) return;
    this.claiming++;
    try {
      await this.claimAndFire(entry, t, catchUpMs, now, report);
    } finally {
      this.claiming--;
    }
  }

  /** Fires instant `t` if this node takes its lease and moves the cursor to it first. */
  private async claimAndFire(entry: Entry, t: number, catchUpMs: number, now: number, report: TickReport): Promise<void> {
    const { homeId, ruleId } = entry.rule;
    if (!(await this.deps.lease.tryAcquire(`rule:${ruleId}:${t}`, this.deps.nodeId, catchUpMs + LEASE_MARGIN_MS))) return this.taken(report);
    if (!(await this.deps.store.advanceCursor(homeId, ruleId, t))) return this.taken(report);
    this.counts.fired++;
    this.metrics.cron('fired');
    report.fired.push({ homeId, ruleId, at: t });
    // late as it fires, not as the tick began (a long tick said 0.6 s of rules fired minutes late)
    this.deps.log.info({ homeId, ruleId, scheduledAt: new Date(t).toISOString(), lateMs: Math.max(now, this.now()) - t }, 'cron: firing');
    const firing = this.deps.fire(homeId, ruleId, t).catch((err: unknown) => {
      this.counts.errors++;
      this.deps.log.warn({ err, ruleId }, 'cron: firing failed');
    });
    this.inflight.add(firing);
    void firing.finally(() => this.inflight.delete(firing));
  }

  /**
   * Counts and logs the rule's instants the spacing passes over after `t` (two triggers meeting
   * later than the save's check looked): the user sees why the rule did not fire then.
   */
  private spaced(entry: Entry, t: number): void {
    let passed = 0;
    let first = 0;
    for (let n = nextAfter(entry.crons, t); n !== null && n <= t + this.gap; n = nextAfter(entry.crons, n)) {
      if (passed++ === 0) first = n;
    }
    if (passed === 0) return;
    this.counts.spaced += passed;
    for (let i = 0; i < passed; i++) this.metrics.cron('spaced');
    this.deps.log.info(
      { homeId: entry.rule.homeId, ruleId: entry.rule.ruleId, passed, first: new Date(first).toISOString(), after: new Date(t).toISOString(), minIntervalMs: this.gap + 1 },
      'cron: instant passed over, closer than the minimum interval to the one before',
    );
  }

  /**
   * Records `n` skipped instants up to `upTo` (`tooLate`: `upTo` itself past its catch-up, else only
   * instants before a latest that fires); counted by the one node whose cursor write wins. The rule's
   * statistics get them as a missed event or delay does: the status is where a user asks why it did not run.
   */
  private async skip(entry: Entry, upTo: number, n: number, tooLate: boolean, catchUpMs: number, now: number, report: TickReport): Promise<void> {
    const { homeId, ruleId, timeZone } = entry.rule;
    if (!(await this.deps.store.advanceCursor(homeId, ruleId, upTo))) return;
    this.counts.missed += n;
    report.missed += n;
    for (let i = 0; i < n; i++) this.metrics.cron('missed');
    this.deps.log.warn({ homeId, ruleId, skipped: n, last: new Date(upTo).toISOString(), lateMs: now - upTo, catchUpMs }, 'cron: missed firing skipped (catch-up policy)');
    const message = missedMessage(n, localMinute(upTo, timeZone), tooLate ? `${Math.round((now - upTo) / 1000)} s late (catch-up ${Math.round(catchUpMs / 1000)} s)` : 'after an outage only the latest missed instant fires');
    // straight to the store, which every node's status reads: the scheduler has no engine of its own
    await this.deps.store.addRunStats([{ homeId, ruleId, counts: { errors: n }, lastError: { at: now, message } }]).catch((err: unknown) => {
      this.failures.write('stats', { err, ruleId }, "cron: a skipped instant not added to the rule's statistics");
    });
  }

  private taken(report: TickReport): void {
    this.counts.taken++;
    report.taken++;
    this.metrics.cron('taken');
  }
}

function nextAfter(crons: readonly LocalCron[], after: number): number | null {
  let best: number | null = null;
  const from = Number.isFinite(after) ? after : 0;
  for (const c of crons) {
    const n = c.nextAfter(from);
    if (n !== null && (best === null || n < best)) best = n;
  }
  return best;
}

/**
 * The catch-up of instant `t`: its trigger's (README: "per trigger"), not the rule's longest; the
 * longest of those naming it when several do, as that instant fires once for them all.
 */
function catchUpOf(entry: Entry, t: number): number {
  let best = -Infinity;
  entry.crons.forEach((c, i) => {
    if (c.nextAfter(t - 1) === t) best = Math.max(best, entry.catchUps[i]!);
  });
  // no trigger names it (cannot happen for an instant of nextAfter): the strictest
  return Number.isFinite(best) ? best : Math.min(...entry.catchUps);
}

/** `2026-07-01 08:01:00 (Europe/Berlin)`: on the rule's wall clock, the one its pattern is written in */
function localMinute(t: number, timeZone: string): string {
  return `${new Date(zoneClock(timeZone).wallOf(t)).toISOString().slice(0, 19).replace('T', ' ')} (${timeZone})`;
}

function missedMessage(n: number, last: string, why: string): string {
  return n === 1 ? `cron instant ${last} skipped: ${why}` : `${n} cron instants skipped, the last ${last}: ${why}`;
}
