/**
 * The rules' run guard measures cooldowns, loop windows and suspensions on its own (monotonic)
 * clock; the wall clock each call passes is only what status shows. A step of the wall clock back
 * neither keeps a rule in its cooldown nor counts an hour of runs into its loop window.
 */
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log/logger.js';
import { noRuleMetrics, RuleStats } from '../../src/rules/metrics.js';
import type { Rule } from '../../src/rules/model.js';
import { RunGuard } from '../../src/rules/run-guard.js';

const HOUR = 3_600_000;
const WALL = 1_700_000_000_000;

function guardOn(clock: { tick: number }) {
  const pushed: unknown[] = [];
  const guard = new RunGuard({
    stats: new RuleStats(),
    metrics: noRuleMetrics,
    log: createLogger('silent'),
    push: async (n) => void pushed.push(n),
    track: () => {},
    suspendMs: 600_000,
    clock: () => clock.tick,
  });
  return { guard, pushed };
}

const rule = (over: Partial<Rule> = {}): Rule => ({
  id: 'r1', homeId: 'home', version: 1, createdAt: 0, updatedAt: 0, name: 'Hall light', enabled: true,
  triggers: [], devices: {}, conditions: [], actions: [], cooldownMs: 0, limit: { maxRuns: 3, windowMs: 60_000 }, ...over,
});

describe('RunGuard after a step of the wall clock', () => {
  it('ends a cooldown when its time has passed on the guard\'s clock, whatever the wall clock says', () => {
    const clock = { tick: 1_000 };
    const { guard } = guardOn(clock);
    const r = rule({ cooldownMs: 60_000 });
    expect(guard.admit('home', r, WALL)).toBe(true);
    clock.tick += 30_000;
    expect(guard.admit('home', r, WALL + 30_000)).toBe(false); // in its cooldown
    expect(guard.blockedBy(r)).toEqual(['cooldown']);
    clock.tick += 31_000; // 61 s after the run; the wall clock was stepped an hour back meanwhile
    expect(guard.blockedBy(r)).toEqual([]);
    expect(guard.admit('home', r, WALL - HOUR)).toBe(true);
    expect(guard.status('r1', 1).lastRunAt).toBe(WALL - HOUR); // status shows the wall clock
  });

  it('counts in its loop window only the runs of the window on the guard\'s clock, and suspends by it', () => {
    const clock = { tick: 1_000 };
    const { guard, pushed } = guardOn(clock);
    const r = rule();
    for (let i = 0; i < 3; i++) {
      expect(guard.admit('home', r, WALL + i * 30_000)).toBe(true);
      clock.tick += 30_000;
    }
    // 90 s after the first run, the wall clock an hour back: one run is left in the window, so two more may run
    expect(guard.admit('home', r, WALL - HOUR)).toBe(true);
    expect(guard.admit('home', r, WALL - HOUR + 1)).toBe(true);
    expect(pushed).toHaveLength(0);
    expect(guard.admit('home', r, WALL - HOUR + 2)).toBe(false); // the fourth within 60 s: suspended
    expect(pushed).toHaveLength(1);
    expect(guard.status('r1', 1).suspendedUntil).toBe(WALL - HOUR + 2 + 600_000);
    clock.tick += 600_001;
    expect(guard.suspended(r)).toBe(false); // over on the guard's clock
  });
});
