/** The rules pool's test fixtures: pools closed after the file, a rule and its evaluation task. */
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import type { EvalTask, Rule } from '../../src/rules/model.js';
import { RulePool } from '../../src/rules/pool.js';

export const FAULTY = new URL('./rules-faulty-worker.ts', import.meta.url);

/**
 * A test file's pools on its own timer wheel, each with a deadline nothing reaches unless a test
 * sets its own (a cold worker loads tsx first, slowly on a busy machine); `close` after the file.
 * Per file: the unit group runs several files in one process (isolate: false).
 */
export function testPools() {
  const timers = new TimerWheel();
  const pools: RulePool[] = [];
  return {
    timers,
    pool(options: Partial<ConstructorParameters<typeof RulePool>[0]> = {}): RulePool {
      const p = new RulePool({ timers, threads: 1, taskTimeoutMs: 30_000, ...options });
      pools.push(p);
      return p;
    },
    async close(): Promise<void> {
      await Promise.all(pools.map((p) => p.close()));
      timers.close();
    },
  };
}

export const rule: Rule = {
  id: 'r1',
  homeId: 'h',
  version: 1,
  createdAt: 0,
  updatedAt: 0,
  name: 'light on when dark',
  enabled: true,
  triggers: [{ type: 'state', hub: 'hub1', device: 'motion', attr: 'motion', to: true }],
  devices: { lux: { hub: 'hub1', device: 'lux' } },
  conditions: ['dev.lux.lux < 30'],
  actions: [{ type: 'command', hub: 'hub1', device: 'light', set: { on: true } }],
  cooldownMs: 0,
  limit: { maxRuns: 20, windowMs: 60_000 },
};

export function task(homeId: string, lux = 10): EvalTask {
  return {
    homeId,
    homeVersion: 1,
    timeZone: 'UTC',
    now: Date.now(),
    rules: [{ ...rule, homeId }],
    event: { kind: 'state', hub: 'hub1', device: 'motion', attrs: { motion: true }, ts: 0 },
    prev: {},
    state: { 'hub1/lux': { lux } },
  };
}
