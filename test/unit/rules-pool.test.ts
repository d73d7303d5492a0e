import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import type { EvalTask, Rule } from '../../src/rules/model.js';
import { RulePool, RulePoolError, workerExecArgv } from '../../src/rules/pool.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const FAULTY = new URL('./rules-faulty-worker.ts', import.meta.url);

const timers = new TimerWheel();
const pools: RulePool[] = [];
afterAll(async () => {
  await Promise.all(pools.map((p) => p.close()));
  timers.close();
});

function pool(options: Partial<ConstructorParameters<typeof RulePool>[0]> = {}): RulePool {
  // a deadline nothing reaches unless a test sets its own: a cold worker loads tsx first, slowly on a busy machine
  const p = new RulePool({ timers, threads: 1, taskTimeoutMs: 30_000, ...options });
  pools.push(p);
  return p;
}

const rule: Rule = {
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

function task(homeId: string, lux = 10): EvalTask {
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

describe('RulePool', () => {
  it('loads the TypeScript worker under vitest (tsx added to the worker execArgv) and evaluates on it', async () => {
    // vitest teaches only its own module runner TypeScript, not worker threads
    expect(process.execArgv.join(' ')).not.toMatch(/tsx/);
    const argv = workerExecArgv('/x/worker.ts');
    expect(argv?.slice(-2)[0]).toBe('--import');
    expect(argv?.slice(-1)[0]).toMatch(/^file:\/\/.*\/tsx\/.*loader\.mjs$/);
    expect(workerExecArgv('/x/worker.js')).toBeUndefined();

    const p = pool();
    const dark = await p.evaluate(task('home-a', 10));
    expect(dark.outcomes).toEqual([expect.objectContaining({ ruleId: 'r1', triggered: true, passed: true, actions: [{ type: 'command', hub: 'hub1', device: 'light', set: { on: true } }] })]);
    const bright = await p.evaluate(task('home-a', 80));
    expect(bright.outcomes[0]).toMatchObject({ triggered: true, passed: false, actions: [] });
    // the second task hit the worker's compile cache (same home, same version)
    expect(dark.compiled).toBe(1);
    expect(bright.compiled).toBe(0);
  });

  it('loads the TypeScript worker in a process started with node --import tsx (as the server runs)', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/unit/rules-pool-child.ts'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(err).toBe('');
    expect(code).toBe(0);
    const line = JSON.parse(out.trim()) as { execArgv: string[]; added: string[] | null; passed: boolean };
    expect(line.execArgv).toEqual(['--import', 'tsx']);
    // the worker inherits --import tsx: nothing needs adding
    expect(line.added).toBeNull();
    expect(line.passed).toBe(true);
  });

  it('sends the tasks of one turn as one batch, answers each with its own result, and fails a bad task alone', async () => {
    const p = pool({ filename: FAULTY });
    await p.evaluate(task('home-warm')); // the thread is up
    const before = p.stats().batches;
    const results = await Promise.allSettled([task('home-1', 10), task('home-2', 80), task('fault-task'), task('home-3', 10)].map((t) => p.evaluate(t)));
    expect(p.stats().batches).toBe(before + 1);
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value.outcomes[0]?.passed : (r.reason as RulePoolError).code))).toEqual([true, false, 'worker_failed', true]);
  });

  it("adds the main thread's time for sending a batch to its tasks' costs, shared by their rules (review complexity)", async () => {
    const p = pool();
    await p.evaluate(task('home-warm')); // the thread is up
    const one = { ms: 0 };
    const three = { ms: 0 };
    await Promise.all([p.evaluate(task('home-1'), one), p.evaluate({ ...task('home-2'), rules: [rule, { ...rule, id: 'r2' }, { ...rule, id: 'r3' }] }, three), p.evaluate(task('home-3'))]);
    expect(one.ms).toBeGreaterThan(0);
    // shares by rules + 1: 2 against 4
    expect(three.ms).toBeCloseTo(one.ms * 2, 6);
  });

  it('a task whose worker throws is rejected (worker_failed); the pool keeps serving', async () => {
    const p = pool({ filename: FAULTY });
    const err = await p.evaluate(task('fault-throw')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RulePoolError);
    expect((err as RulePoolError).code).toBe('worker_failed');
    expect((err as RulePoolError).message).toMatch(/bug in the worker/);
    expect((await p.evaluate(task('home-b'))).outcomes[0]?.passed).toBe(true);
  });

  it('a worker that exits mid-task: that task fails, a new thread takes the next one', async () => {
    const p = pool({ filename: FAULTY });
    const err = await p.evaluate(task('fault-exit')).catch((e: unknown) => e);
    expect((err as RulePoolError).code).toBe('worker_failed');
    expect((err as RulePoolError).message).toMatch(/exited with code: 7/);
    expect((await p.evaluate(task('home-c'))).outcomes[0]?.passed).toBe(true);
    expect(p.stats()).toMatchObject({ failed: 1, completed: 1 });
  });

  it('a worker module that does not load: reported through onWorkerError, tasks fail at their deadline, the node goes on', async () => {
    const errors: unknown[] = [];
    const p = pool({ filename: new URL('./rules-no-such-worker.ts', import.meta.url), taskTimeoutMs: 500, maxWaitMs: 500, onWorkerError: (e) => errors.push(e) });
    const first = await p.evaluate(task('home-d')).catch((e: unknown) => e);
    // the task fails: with the load error, or at its deadline when loading tsx (before failing)
    // took longer than 500 ms on a busy machine
    expect(first).toBeInstanceOf(RulePoolError);
    expect(['worker_failed', 'timeout']).toContain((first as RulePoolError).code);
    // the thread that failed at start-up without a task is reported, not thrown
    await expect.poll(() => errors.length, { timeout: 20_000 }).toBeGreaterThanOrEqual(1);
    expect(String(errors[0])).toMatch(/Cannot find module/);
    expect(p.stats().workerErrors).toBe(errors.length);
    // piscina stops restarting a thread that fails at start-up: the deadline still answers
    const started = Date.now();
    const later = await p.evaluate(task('home-d')).catch((e: unknown) => e);
    expect((later as RulePoolError).code).toBe('timeout');
    expect(Date.now() - started).toBeGreaterThanOrEqual(490);
  });

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

  it('refuses at once when the queue is full (bounded), and serves again when it drains', async () => {
    const p = pool({ filename: FAULTY, maxQueue: 2 });
    await p.evaluate(task('home-f')); // the thread is up
    const slow = p.evaluate(task('fault-slow'));
    // the tasks of one turn go as one batch: the slow one leaves alone, at the end of this turn
    await new Promise((resolve) => setImmediate(resolve));
    // the only thread is busy for 300 ms: these two wait, the third is refused at once
    const queued = [p.evaluate(task('home-f')), p.evaluate(task('home-f'))];
    const refused = await p.evaluate(task('home-f')).catch((e: unknown) => e);
    expect((refused as RulePoolError).code).toBe('queue_full');
    expect((await slow).outcomes[0]?.passed).toBe(true);
    for (const r of await Promise.all(queued)) expect(r.outcomes[0]?.passed).toBe(true);
    expect((await p.evaluate(task('home-f'))).outcomes[0]?.passed).toBe(true);
    expect(p.stats().rejected).toBe(1);
  });

  it('after close, evaluate is refused with code closed', async () => {
    const p = new RulePool({ timers, threads: 1 });
    await p.close();
    await expect(p.evaluate(task('home-g'))).rejects.toMatchObject({ code: 'closed' });
  });
});
