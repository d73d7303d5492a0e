/**
 * The main-thread side of rule evaluation: a piscina pool of worker threads running `worker.ts`.
 * The event loop that serves sockets only posts tasks and reads results; rule code (CEL) runs on
 * the workers. The tasks of one event-loop turn go as one message per thread (a batch): a message
 * per event cost the socket thread more than the rules it moved away (bench:rules, BENCHMARKS.md).
 *
 * Faults stay inside the pool: a task that throws fails alone; a worker that exits or crashes
 * rejects the tasks of that batch with a RulePoolError and piscina starts a replacement thread; the
 * node goes on. A batch that runs past `taskTimeoutMs` has its worker terminated too, but fails
 * only the task that was running then (`timeout`): the others of the batch, done or not started,
 * are sent again once, as a batch of their own; a task overrunning a second batch fails with it.
 * One user's slow rule does not take other homes' evaluations along. The queue is bounded: past `maxQueue`
 * waiting tasks, `evaluate` refuses at once (`queue_full`) instead of letting latency grow.
 */
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { pathToFileURL } from 'node:url';
import { Piscina } from 'piscina';
import type { TimerHandle, TimerTarget, TimerWheel } from '../actors/timer-wheel.js';
import { wireTask, type BatchResult, type EvalBatch } from './eval-wire.js';
import type { EvalResult, EvalTask } from './model.js';

/** What the engine needs of an evaluator: the pool, in production. */
export interface RuleRunner {
  /** `cost.ms`: added the main thread's share of sending the task (its wire form and clone), charged to its home */
  evaluate(task: EvalTask, cost?: MainThreadCost): Promise<EvalResult>;
}

/** Main-thread time (ms) spent for one home's evaluation, added to by each part that spends it. */
export interface MainThreadCost {
  ms: number;
}

export type RulePoolErrorCode = 'queue_full' | 'timeout' | 'worker_failed' | 'closed';

export class RulePoolError extends Error {
  override name = 'RulePoolError';
  constructor(
    readonly code: RulePoolErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface RulePoolOptions {
  /** the node's timer wheel: task deadlines are wheel entries, not one setTimeout per task */
  timers: TimerWheel;
  /** worker threads, kept alive; @default min(4, available cores − 1), at least 1 */
  threads?: number;
  /** tasks that may wait for a thread; @default 1_024 */
  maxQueue?: number;
  /** a batch running longer (from when a thread takes it) has its worker terminated and replaced; @default 2_000 (ms) */
  taskTimeoutMs?: number;
  /** a batch no thread has taken for this long fails (`timeout`): the threads take nothing; @default 15 × taskTimeoutMs */
  maxWaitMs?: number;
  /** heap of one worker; past it the worker dies, not the node; @default 256 (MiB) */
  maxWorkerHeapMb?: number;
  /** worker module; @default worker.ts (or .js) beside this file */
  filename?: string | URL;
  /** a worker failed while running no task (it is replaced) */
  onWorkerError?: (err: unknown) => void;
}

export interface RulePoolStats {
  threads: number;
  queued: number;
  completed: number;
  failed: number;
  timeouts: number;
  /** tasks sent again after a batch-mate overran the deadline (each at most once) */
  retried: number;
  rejected: number;
  workerErrors: number;
  /** messages sent to the threads, each with the tasks of one turn (or a share of them) */
  batches: number;
}

/** The worker beside this module, in the same language as this module was loaded in. */
function defaultWorker(): URL {
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  return new URL(`./worker${ext}`, import.meta.url);
}

/**
 * Worker threads inherit the parent's execArgv, so under `node --import tsx` a `.ts` worker loads
 * as it is. Elsewhere (vitest, a plain `node` running a test runner) nothing teaches the thread
 * TypeScript: then tsx is added, resolved to an absolute URL so the working directory does not
 * matter.
 */
export function workerExecArgv(filename: string): string[] | undefined {
  if (!filename.endsWith('.ts')) return undefined;
  const hasTsx = (s: string | undefined) => s !== undefined && /(^|[\\/=\s])tsx([\\/\s]|$)/.test(s);
  if (process.execArgv.some(hasTsx) || hasTsx(process.env.NODE_OPTIONS)) return undefined;
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
  return [...process.execArgv, '--import', tsx];
}

/**
 * The environment of a `.ts` worker's threads: tsx's transform cache off. Its cache files stay open
 * in a thread, and a thread terminated at a deadline or its heap limit never closes them: each
 * replaced thread left ~34 files open until the node ran out (`npm start`). Without the cache a
 * thread transpiles anew, no slower to start (0.7–1.4 s cold either way). Compiled, nothing changes.
 */
export function workerEnv(filename: string): NodeJS.ProcessEnv | undefined {
  return filename.endsWith('.ts') ? { ...process.env, TSX_DISABLE_CACHE: '1' } : undefined;
}

/** How often a batch's deadline looks whether a thread has taken it (ms). */
const TAKEN_POLL_MS = 100;

/**
 * A batch's deadline, counted from when a thread takes the batch (the worker marks `progress[1]`),
 * not from when it was queued: batches that waited behind others for a thread (a burst of events,
 * the replay at start) were failed for the wait. Waiting is bounded apart by `maxWaitMs`, so a
 * pool whose threads take nothing (a worker module that never loads) still answers.
 */
class Deadline implements TimerTarget {
  private handle: TimerHandle;
  private waitedMs = 0;
  /** why the batch was aborted, once it was */
  reason: 'ran' | 'waited' | null = null;
  private taken = false;

  constructor(
    readonly controller: AbortController,
    private readonly progress: Int32Array,
    private readonly timers: TimerWheel,
    private readonly runMs: number,
    private readonly maxWaitMs: number,
  ) {
    this.handle = timers.schedule(TAKEN_POLL_MS, this);
  }

  onTimer(): void {
    if (this.taken) return this.abort('ran');
    this.waitedMs += TAKEN_POLL_MS;
    if (Atomics.load(this.progress, 1) === 1) {
      // taken within the last poll: it runs for runMs (up to one poll more) from here
      this.taken = true;
      this.handle = this.timers.schedule(this.runMs, this);
    } else if (this.waitedMs >= this.maxWaitMs) this.abort('waited');
    else this.handle = this.timers.schedule(TAKEN_POLL_MS, this);
  }

  cancel(): void {
    this.timers.cancel(this.handle);
  }

  private abort(reason: 'ran' | 'waited'): void {
    this.reason = reason;
    this.controller.abort();
  }
}

/** A task waiting for its batch's answer. */
interface Waiting {
  task: EvalTask;
  cost?: MainThreadCost;
  resolve(result: EvalResult): void;
  reject(err: RulePoolError): void;
  /** sent again already, after a batch-mate overran: not again */
  retried?: boolean;
}

/** Tasks per batch at most: a batch runs on one thread, and its deadline covers all of it. */
const MAX_BATCH = 64;

export class RulePool implements RuleRunner {
  private readonly piscina: Piscina<EvalBatch, BatchResult>;
  private readonly timers: TimerWheel;
  private readonly maxQueue: number;
  private readonly taskTimeoutMs: number;
  private readonly maxWaitMs: number;
  private readonly threads: number;
  private closed = false;
  private readonly counts = { completed: 0, failed: 0, timeouts: 0, retried: 0, rejected: 0, workerErrors: 0, batches: 0 };
  /** tasks of this turn, sent as batches when the turn ends */
  private next: Waiting[] = [];
  /** batches handed to piscina and not answered, in the order they were handed */
  private readonly sent: Waiting[][] = [];

  constructor(options: RulePoolOptions) {
    this.timers = options.timers;
    this.threads = options.threads ?? Math.max(1, Math.min(4, availableParallelism() - 1));
    this.maxQueue = options.maxQueue ?? 1_024;
    this.taskTimeoutMs = options.taskTimeoutMs ?? 2_000;
    this.maxWaitMs = options.maxWaitMs ?? 15 * this.taskTimeoutMs;
    const file = options.filename ?? defaultWorker();
    const filename = typeof file === 'string' ? file : file.href;
    const execArgv = workerExecArgv(filename);
    const env = workerEnv(filename);
    this.piscina = new Piscina<EvalBatch, BatchResult>({
      filename,
      minThreads: this.threads,
      maxThreads: this.threads,
      // batches: never more than tasks, whose bound evaluate keeps
      maxQueue: this.maxQueue,
      idleTimeout: 60_000,
      // close waits this long for running tasks: a task aborted at its deadline never reports done,
      // and piscina's own 30 s would hold a node's shutdown (SIGTERM soon after start: the warm-up)
      closeTimeout: Math.min(5_000, this.taskTimeoutMs + 1_000),
      resourceLimits: { maxOldGenerationSizeMb: options.maxWorkerHeapMb ?? 256 },
      ...(execArgv ? { execArgv } : {}),
      ...(env ? { env } : {}),
    });
    // a worker that dies while idle is reported here; without a listener it would crash the node
    this.piscina.on('error', (err: unknown) => {
      this.counts.workerErrors++;
      options.onWorkerError?.(err);
    });
  }

  /**
   * Queues the task for the batch of this event-loop turn; refused at once when `maxQueue` tasks
   * already wait for a thread (this turn's, and those of batches no thread has started).
   */
  evaluate(task: EvalTask, cost?: MainThreadCost): Promise<EvalResult> {
    if (this.closed) return Promise.reject(new RulePoolError('closed', 'rule pool is closed'));
    if (this.waiting() >= this.maxQueue) {
      this.counts.rejected++;
      return Promise.reject(new RulePoolError('queue_full', `rule pool queue is full (${this.maxQueue} tasks waiting)`));
    }
    return new Promise((resolve, reject) => {
      if (this.next.push(cost === undefined ? { task, resolve, reject } : { task, cost, resolve, reject }) === 1) setImmediate(this.flush);
    });
  }

  /** Tasks no thread has started: this turn's, and those of the batches piscina still queues (the newest). */
  private waiting(): number {
    let n = this.next.length;
    for (let i = this.sent.length - this.piscina.queueSize; i < this.sent.length; i++) if (i >= 0) n += this.sent[i]!.length;
    return n;
  }

  /** Splits the turn's tasks over the threads, in batches of at most MAX_BATCH. */
  private readonly flush = (): void => {
    const tasks = this.next;
    this.next = [];
    const size = Math.min(MAX_BATCH, Math.ceil(tasks.length / this.threads));
    for (let i = 0; i < tasks.length; i += size) void this.run(tasks.slice(i, i + size));
  };

  private async run(batch: Waiting[]): Promise<void> {
    if (this.closed) {
      for (const w of batch) w.reject(new RulePoolError('closed', 'rule pool is closed'));
      return;
    }
    this.sent.push(batch);
    this.counts.batches++;
    // [0] the task running (-1: none yet), [1] 1 once a thread took the batch; shared, so that it
    // can be read after the worker is terminated
    const progress = new Int32Array(new SharedArrayBuffer(8)).fill(-1);
    Atomics.store(progress, 1, 0);
    const deadline = new Deadline(new AbortController(), progress, this.timers, this.taskTimeoutMs, this.maxWaitMs);
    try {
      const posted = performance.now();
      const running = this.piscina.run({ tasks: batch.map((w) => wireTask(w.task)), progress }, { signal: deadline.controller.signal });
      shareCost(batch, performance.now() - posted);
      const results = await running;
      batch.forEach((w, i) => {
        const r = results[i];
        if (r && !('error' in r)) {
          this.counts.completed++;
          w.resolve(r);
        } else {
          this.counts.failed++;
          w.reject(new RulePoolError('worker_failed', `rule worker failed: ${r?.error ?? 'no result'}`));
        }
      });
    } catch (err) {
      const failure = this.failure(err, deadline.reason);
      if (failure.code === 'timeout') {
        this.overran(batch, Atomics.load(progress, 0), failure);
        return;
      }
      for (const w of batch) {
        this.counts.failed++;
        if (failure.code === 'queue_full') this.counts.rejected++;
        w.reject(failure);
      }
    } finally {
      deadline.cancel();
      this.sent.splice(this.sent.indexOf(batch), 1);
    }
  }

  /**
   * A batch past its deadline: the task that was running (`running`, the worker's mark) fails, and
   * so does any task already sent again; the rest go once more as a batch of their own (bounded:
   * each task at most twice). Not started (-1) or all done (the batch's length): none is to blame.
   */
  private overran(batch: Waiting[], running: number, failure: RulePoolError): void {
    const again: Waiting[] = [];
    batch.forEach((w, i) => {
      if (i === running || w.retried) {
        this.counts.failed++;
        this.counts.timeouts++;
        w.reject(failure);
      } else {
        w.retried = true;
        this.counts.retried++;
        again.push(w);
      }
    });
    if (again.length > 0) void this.run(again);
  }

  private failure(err: unknown, aborted: 'ran' | 'waited' | null): RulePoolError {
    if (aborted === 'ran') return new RulePoolError('timeout', `rule evaluation took longer than ${this.taskTimeoutMs} ms; its worker was replaced`, { cause: err });
    if (aborted === 'waited') return new RulePoolError('timeout', `no rule worker took the evaluation within ${this.maxWaitMs} ms`, { cause: err });
    if (this.closed) return new RulePoolError('closed', 'rule pool closed', { cause: err });
    if (err instanceof Error && /queue is at limit/i.test(err.message)) return new RulePoolError('queue_full', 'rule pool queue is full', { cause: err });
    return new RulePoolError('worker_failed', `rule worker failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }

  /**
   * Runs one small task per thread (a condition and a template to compile), so the first real
   * event does not wait for module loading and the expression environment's set-up.
   */
  async warmUp(): Promise<void> {
    const task: EvalTask = {
      homeId: '-warm-up',
      homeVersion: 0,
      timeZone: 'UTC',
      now: Date.now(),
      rules: [
        {
          id: '-warm-up',
          homeId: '-warm-up',
          version: 0,
          createdAt: 0,
          updatedAt: 0,
          name: 'warm-up',
          enabled: true,
          triggers: [{ type: 'cron', cron: '0 0 * * *' }],
          devices: {},
          conditions: ['time.hour >= 0 && between(time.hhmm, "00:00", "23:59")'],
          actions: [{ type: 'notify', title: 'warm-up', body: '{{ time.hhmm }}' }],
          cooldownMs: 0,
          limit: { maxRuns: 1, windowMs: 1_000 },
        },
      ],
      event: { kind: 'manual', ts: 0 },
      prev: {},
      state: {},
    };
    await Promise.allSettled(Array.from({ length: this.threads }, () => this.evaluate(task)));
  }

  stats(): RulePoolStats {
    return { threads: this.piscina.threads.length, queued: this.waiting(), ...this.counts };
  }

  /** Waits for running tasks, then stops the threads; waiting tasks are refused. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.flush();
    await this.piscina.close();
  }
}

/**
 * The main thread's time for a batch's wire form and its clone (when a thread was free to take it
 * at once) shared among its tasks by their rules: one home's rules at their limit cost the main
 * thread more than its worker, and only the worker's time was charged (review "complexity").
 */
function shareCost(batch: readonly Waiting[], ms: number): void {
  let weight = 0;
  for (const w of batch) weight += w.task.rules.length + 1;
  for (const w of batch) if (w.cost) w.cost.ms += (ms * (w.task.rules.length + 1)) / weight;
}
