import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { RulePool, RulePoolError, workerExecArgv } from '../../src/rules/pool.js';
import { FAULTY, rule, task, testPools } from './rules-pool-fixtures.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const { pool, timers, close } = testPools();
afterAll(close);

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
