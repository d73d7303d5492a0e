/**
 * Runs of events replayed after a crash, and runs restored past due, beside the rule's current run
 * (review "kill9b"): taking a dead node's marks over, a node replayed an event older than one whose
 * run it had begun, and the replayed run superseded it (its delay cancelled, its notification never
 * sent); a dead node's run overdue in its delay was dropped at resume as superseded by a run begun
 * after its delay had ended.
 */
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log/logger.js';
import { noRuleMetrics, RuleStats } from '../../src/rules/metrics.js';
import type { Rule } from '../../src/rules/model.js';
import { RunGuard, type Run } from '../../src/rules/run-guard.js';

const rule: Rule = {
  id: 'r1', homeId: 'home', version: 1, createdAt: 0, updatedAt: 0, name: 'Doorbell', enabled: true,
  triggers: [], devices: {}, conditions: [], actions: [], cooldownMs: 0, limit: { maxRuns: 100, windowMs: 60_000 },
};

function guard(): RunGuard {
  return new RunGuard({ stats: new RuleStats(), metrics: noRuleMetrics, log: createLogger('silent'), push: async () => {}, track: () => {}, suspendMs: 600_000 });
}

/** A run recording what the guard told it. */
function run(): Run & { told: string[] } {
  const told: string[] = [];
  return { told, waiting: true, cancel: () => void told.push('cancel'), supersede: () => void told.push('supersede'), supersedeAfter: (ms) => void told.push(`after ${ms}`), detach: () => undefined };
}

describe('RunGuard: replayed and overdue runs', () => {
  it('a replayed event older than the current run\'s does not supersede it: it runs as the older one, superseded past the gap', () => {
    const g = guard();
    expect(g.admit('home', rule, 0)).toBe(true);
    const live = run();
    g.begin('r1', live, 5_000);
    expect(g.admit('home', rule, 0)).toBe(true);
    const replayed = run();
    g.begin('r1', replayed, 3_500, true);
    expect(live.told).toEqual([]);
    expect(replayed.told).toEqual(['after 1500']);
    // a replayed event newer than the current run's, or a live one, supersedes it as always
    const newer = run();
    g.begin('r1', newer, 6_000, true);
    expect(live.told).toEqual(['supersede']);
    const next = run();
    g.begin('r1', next, 1_000);
    expect(newer.told).toEqual(['supersede']);
  });

  it('a run restored past due goes on beside a current run; one still due later is dropped for it', () => {
    const g = guard();
    expect(g.admit('home', rule, 0)).toBe(true);
    g.begin('r1', run(), 5_000);
    expect(g.adopt('r1', run())).toBe(false);
    const overdue = run();
    expect(g.adopt('r1', overdue, true)).toBe(true);
    // it ends at its next delay: the current run began after its delay had ended
    expect(overdue.told).toEqual(['after 0']);
    expect(g.executing('r1')).toBe(true);
  });
});
