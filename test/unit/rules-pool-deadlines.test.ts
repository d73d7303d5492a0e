/**
 * The rules pool's deadlines: a runaway task is stopped and its thread replaced (no file left
 * open), the deadline counts from when a thread takes a batch, an overrun fails only its task, and
 * a batch that overran before starting is sent again once. Apart from rules-pool.test.ts: the two
 * were the unit group's longest file, run by one worker while the other waited.
 */
import { readdirSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { RulePoolError } from '../../src/rules/pool.js';
import { FAULTY, task, testPools } from './rules-pool-fixtures.js';

const { pool, close } = testPools();
afterAll(close);

describe('RulePool deadlines', () => {
  it('a runaway task is stopped at the deadline: its thread is terminated and replaced', async () => {
    // the deadline counts from when a thread takes the batch, and a replacement thread must load tsx first (slower
    // while other suites run beside this one): generous
    const p = pool({ filename: FAULTY, taskTimeoutMs: 3_000 });
    await p.evaluate(task('home-e')); // the thread is up
    const started = Date.now();
    const err = await p.evaluate(task('fault-hang')).catch((e: unknown) => e);
    expect((err as RulePoolError).code).toBe('timeout');
    expect(Date.now() - started).toBeGreaterThanOrEqual(2_990);
    expect((await p.evaluate(task('home-e'))).outcomes[0]?.passed).toBe(true);
    expect(p.stats().timeouts).toBe(1);
  });

  it('a thread replaced at its deadline leaves no open file behind (tsx held its cache files open in each thread)', async () => {
    const open = () => readdirSync('/proc/self/fd').length;
    const p = pool({ filename: FAULTY, taskTimeoutMs: 1_500 });
    await p.evaluate(task('home-f')); // the thread is up
    const before = open();
    for (let i = 0; i < 2; i++) {
      expect(((await p.evaluate(task('fault-hang')).catch((e: unknown) => e)) as RulePoolError).code).toBe('timeout');
      await p.evaluate(task('home-f')); // the new thread is up, its modules loaded
    }
    // ~34 files a thread with tsx's cache on; a few of slack for what the process opens meanwhile
    expect(open() - before).toBeLessThan(8);
    expect(p.stats().timeouts).toBe(2);
  });

  it('a batch that waits behind others for the thread is not failed for the wait: its deadline counts from when the thread takes it', async () => {
    const p = pool({ filename: FAULTY, taskTimeoutMs: 1_000 });
    await p.evaluate(task('home-w')); // the thread is up
    // five batches of 300 ms each (one per turn) on one thread: the last waits about 1.2 s, more
    // than the deadline, and runs well within it
    const pending: Array<Promise<unknown>> = [];
    for (let i = 0; i < 5; i++) {
      pending.push(p.evaluate(task('fault-slow')));
      await new Promise((resolve) => setImmediate(resolve));
    }
    const results = await Promise.allSettled(pending);
    expect(results.map((r) => (r.status === 'fulfilled' ? 'answered' : (r.reason as RulePoolError).message))).toEqual(Array(5).fill('answered'));
    expect(p.stats()).toMatchObject({ timeouts: 0, retried: 0, batches: 6 });
  });

  it('a batch past its deadline fails only the task that overran: its batch-mates, done or not started, get their results', async () => {
    const p = pool({ filename: FAULTY, taskTimeoutMs: 3_000 });
    await p.evaluate(task('home-i')); // the thread is up
    const before = p.stats();
    // one turn, one batch: another home's task before the runaway one, and one after it
    const results = await Promise.allSettled([task('home-i', 10), task('fault-hang'), task('home-j', 80)].map((t) => p.evaluate(t)));
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value.outcomes[0]?.passed : (r.reason as RulePoolError).code))).toEqual([true, 'timeout', false]);
    expect(p.stats().batches - before.batches).toBe(2);
    expect(p.stats()).toMatchObject({ timeouts: 1, retried: 2 });
  });

  it('a batch that overran before any task started is sent again once, not more', async () => {
    const p = pool({ filename: FAULTY, taskTimeoutMs: 3_000 });
    await p.evaluate(task('home-k')); // the thread is up
    const before = p.stats();
    // the worker stalls before its first task, each time: no task to blame, both go again, once
    const results = await Promise.allSettled([task('fault-stall'), task('home-k')].map((t) => p.evaluate(t)));
    expect(results.map((r) => (r.status === 'rejected' ? (r.reason as RulePoolError).code : 'answered'))).toEqual(['timeout', 'timeout']);
    expect(p.stats().batches - before.batches).toBe(2);
    expect(p.stats()).toMatchObject({ timeouts: 2, retried: 2 });
    expect((await p.evaluate(task('home-k'))).outcomes[0]?.passed).toBe(true);
  });
});
