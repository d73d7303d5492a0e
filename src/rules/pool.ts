/**
 * The main-thread side of rule evaluation: a piscina pool of worker threads running `worker.ts`.
 * The event loop that serves sockets only posts tasks and reads results; rule code (CEL) runs on
 * the workers.
 *
 * Faults stay inside the pool: a task that throws, a worker that exits or crashes, or a task that
 * runs past `taskTimeoutMs` (its worker is terminated) rejects that task with a RulePoolError and
 * piscina starts a replacement thread; the node goes on. The queue is bounded: past `maxQueue`
 * waiting tasks, `evaluate` refuses at once (`queue_full`) instead of letting latency grow.
 */
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { pathToFileURL } from 'node:url';
import { Piscina } from 'piscina';
import type { TimerHandle, TimerTarget, TimerWheel } from '../actors/timer-wheel.js';
import type { EvalResult, EvalTask } from './model.js';

/** What the engine needs of an evaluator: the pool, in production. */
export interface RuleRunner {
  evaluate(task: EvalTask): Promise<EvalResult>;
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
  /** a task running longer has its worker terminated and replaced; @default 2_000 (ms) */
  taskTimeoutMs?: number;
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
  rejected: number;
  workerErrors: number;
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

class Deadline implements TimerTarget {
  constructor(private readonly controller: AbortController) {}
  onTimer(): void {
    this.controller.abort();
  }
}

export class RulePool implements RuleRunner {
  private readonly piscina: Piscina<EvalTask, EvalResult>;
  private readonly timers: TimerWheel;
  private readonly maxQueue: number;
  private readonly taskTimeoutMs: number;
  private readonly threads: number;
  private closed = false;
  private readonly counts = { completed: 0, failed: 0, timeouts: 0, rejected: 0, workerErrors: 0 };

  constructor(options: RulePoolOptions) {
    this.timers = options.timers;
    this.threads = options.threads ?? Math.max(1, Math.min(4, availableParallelism() - 1));
    this.maxQueue = options.maxQueue ?? 1_024;
    this.taskTimeoutMs = options.taskTimeoutMs ?? 2_000;
    const file = options.filename ?? defaultWorker();
    const filename = typeof file === 'string' ? file : file.href;
    const execArgv = workerExecArgv(filename);
    this.piscina = new Piscina<EvalTask, EvalResult>({
      filename,
      minThreads: this.threads,
      maxThreads: this.threads,
      maxQueue: this.maxQueue,
      idleTimeout: 60_000,
      // close waits this long for running tasks: a task aborted at its deadline never reports done,
      // and piscina's own 30 s would hold a node's shutdown (SIGTERM soon after start: the warm-up)
      closeTimeout: Math.min(5_000, this.taskTimeoutMs + 1_000),
      resourceLimits: { maxOldGenerationSizeMb: options.maxWorkerHeapMb ?? 256 },
      ...(execArgv ? { execArgv } : {}),
    });
    // a worker that dies while idle is reported here; without a listener it would crash the node
    this.piscina.on('error', (err: unknown) => {
      this.counts.workerErrors++;
      options.onWorkerError?.(err);
    });
  }

  async evaluate(task: EvalTask): Promise<EvalResult> {
    if (this.closed) throw new RulePoolError('closed', 'rule pool is closed');
    if (this.piscina.queueSize >= this.maxQueue) {
      this.counts.rejected++;
      throw new RulePoolError('queue_full', `rule pool queue is full (${this.maxQueue} tasks waiting)`);
    }
    const controller = new AbortController();
    const handle: TimerHandle = this.timers.schedule(this.taskTimeoutMs, new Deadline(controller));
    try {
      const result = await this.piscina.run(task, { signal: controller.signal });
      this.counts.completed++;
      return result;
    } catch (err) {
      this.counts.failed++;
      if (controller.signal.aborted) {
        this.counts.timeouts++;
        throw new RulePoolError('timeout', `rule evaluation took longer than ${this.taskTimeoutMs} ms; its worker was replaced`, { cause: err });
      }
      if (this.closed) throw new RulePoolError('closed', 'rule pool closed', { cause: err });
      if (err instanceof Error && /queue is at limit/i.test(err.message)) {
        this.counts.rejected++;
        throw new RulePoolError('queue_full', 'rule pool queue is full', { cause: err });
      }
      throw new RulePoolError('worker_failed', `rule worker failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    } finally {
      this.timers.cancel(handle);
    }
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
    return { threads: this.piscina.threads.length, queued: this.piscina.queueSize, ...this.counts };
  }

  /** Waits for running tasks, then stops the threads; waiting tasks are refused. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.piscina.close();
  }
}
