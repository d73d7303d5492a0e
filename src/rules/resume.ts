/**
 * Runs parked in a delay when the node stopped, picked up at its start from the PendingRuns store.
 *
 * Each entry's rule is read from the rule store first: deleted, disabled or edited (its version is
 * not the entry's `ruleVersion`), the entry is dropped, as a waiting run is cancelled when its rule
 * is disabled or edited while the node runs. Then, by lateness:
 * - due time still ahead: waits on the timer wheel for the time left;
 * - past due by at most the catch-up window: goes on at once;
 * - older: missed. Logged at warn (home, rule, due, lateness), counted as
 *   `tier_rule_dropped_total{reason="missed"}`, shown as the rule's last error, and removed.
 * A run of the rule that began since the start (an event came first) supersedes the entry, unless
 * the entry was past due (its delay ended before that run began) or stored apart: it goes on beside it.
 * A rule's own entry is resumed before its entries kept apart, which go on beside it.
 * In a cluster sharing the store, the runs of a node that died are resumed the same way by the
 * node that claims them (`PendingRuns.claimOrphans`).
 */
import { performance } from 'node:perf_hooks';
import type { PendingRun, PendingRuns } from '../ports/pending-runs/pending-runs.js';
import { ActionRun } from './action-run.js';
import type { HomeDeps } from './home-actor.js';

/** What a home has, less its evaluation, plus the store of pending runs. */
export interface ResumeDeps extends Pick<HomeDeps, 'store' | 'guard' | 'actions' | 'stats' | 'metrics' | 'log' | 'now'> {
  pendingRuns: PendingRuns;
  /** how late past its due time a run still goes on (ms) */
  catchUpMs: number;
}

/** What a resume did with the stored entries (tests, the start-up log). */
export interface ResumeReport {
  /** waiting for their due time */
  armed: number;
  /** past due within the catch-up window: going on at once */
  late: number;
  missed: number;
  /** rule deleted, disabled or edited, or superseded by a newer run */
  dropped: number;
  /** the rule store or the pending-runs store failed: left where it is, for the next start */
  failed: number;
}

/** Resumes `entries`: those of `load` at start, or those `claimOrphans` took from a dead node. */
export async function resumePending(deps: ResumeDeps, entries: readonly PendingRun[], what: string): Promise<ResumeReport> {
  const report: ResumeReport = { armed: 0, late: 0, missed: 0, dropped: 0, failed: 0 };
  // a rule's own entry before those kept apart: adopted first, an older run kept apart would take
  // its place and the newer one, not yet due, would be dropped as superseded (stores answer in any order)
  const ordered = [...entries].sort((a, b) => Number(a.apart === true) - Number(b.apart === true));
  for (const p of ordered) {
    try {
      report[await resumeOne(deps, p)]++;
    } catch (err) {
      report.failed++;
      deps.log.warn({ err, homeId: p.homeId, ruleId: p.ruleId, dueAt: p.dueAt }, 'rules: pending delay not resumed; left for the next start');
    }
  }
  if (entries.length > 0) deps.log.info({ ...report }, `rules: ${what} resumed`);
  return report;
}

async function resumeOne(deps: ResumeDeps, p: PendingRun): Promise<keyof ResumeReport> {
  const { guard, log } = deps;
  const rule = await deps.store.getRule(p.homeId, p.ruleId);
  const now = deps.now();
  const lateMs = now - p.dueAt;
  let outcome: keyof ResumeReport;
  if (!rule || !rule.enabled || rule.version !== p.ruleVersion) outcome = 'dropped';
  else if (lateMs > deps.catchUpMs) {
    outcome = 'missed';
    deps.metrics.dropped('missed');
    deps.stats.error(rule, now, `delay missed: due ${new Date(p.dueAt).toISOString()}, ${Math.round(lateMs / 1000)} s late (catch-up ${Math.round(deps.catchUpMs / 1000)} s)`);
    log.warn({ homeId: p.homeId, ruleId: p.ruleId, dueAt: p.dueAt, lateMs, catchUpMs: deps.catchUpMs }, 'rules: the rest of a run after its delay was missed (node down past its due time)');
  } else {
    const run = new ActionRun(deps.actions, p.homeId, rule, p.actions, p.dedupBase, performance.now(), (r) => guard.ended(rule.id, r), p.offset);
    // past due: its delay ended before any run begun since (its node was down), so it goes on beside it
    if (guard.adopt(rule.id, run, lateMs > 0 || p.apart === true)) {
      run.restore(p);
      return lateMs > 0 ? 'late' : 'armed';
    }
    outcome = 'dropped';
  }
  await deps.pendingRuns.remove(p.ruleId, p.runId, p.dedupBase);
  return outcome;
}
