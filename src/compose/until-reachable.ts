/**
 * The start of a process that needs its backends (a cluster node: NATS and Redis; the push worker:
 * Redis): it retries with backoff up to TIER_BACKEND_START_WAIT_MS instead of exiting, since
 * Kubernetes may start the pods before their backends. Free of uWS and of the adapters, so a
 * process with no admin port (`npm run push-worker`) waits the same way as a node.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { TierError } from '../errors.js';
import { endLog, type Logger } from '../log/logger.js';
import { STOP_SIGNALS } from '../config/process.js';
import { backoff, monotonicMs } from '../actors/clock.js';

/** The cap of the wait between two attempts (ms); the first ones come sooner (100 ms doubling). */
const MAX_RETRY_MS = 5_000;
/** One `waiting for backends` line per this many ms while the same backend stays away. */
const LOG_EVERY_MS = 15_000;

/** A backend a starting process could not reach: which one, so the start-up wait can say what it waits for. */
export class BackendStartError extends TierError {
  override name = 'BackendStartError';
  constructor(
    readonly backend: 'nats' | 'redis',
    cause: unknown,
  ) {
    super('unavailable', (cause as Error).message, { cause });
  }
}

/** The backends did not answer within TIER_BACKEND_START_WAIT_MS: the process exits 1. */
export class BackendWaitError extends Error {
  override name = 'BackendWaitError';
  constructor(
    readonly backend: BackendStartError['backend'],
    readonly waitedMs: number,
    cause: BackendStartError,
  ) {
    super(`${backend} not reachable after ${waitedMs} ms of waiting (TIER_BACKEND_START_WAIT_MS): ${cause.message}`, { cause });
  }
}

/** A stop signal came while the process waited for its backends: nothing was started, the exit is clean. */
export class StartAbortedError extends Error {
  override name = 'StartAbortedError';
}

export interface WaitOptions {
  /** TIER_BACKEND_START_WAIT_MS: past it, BackendWaitError */
  maxWaitMs: number;
  log: Logger;
  /** ends the wait with StartAbortedError */
  signal?: AbortSignal | undefined;
  /** told of each failed attempt (what a waiting admin port reports) */
  onWaiting?: (backend: BackendStartError['backend'], err: BackendStartError) => void;
}

/**
 * Calls `connect` until it resolves, retrying while it rejects with a BackendStartError: 100 ms
 * doubling up to 5 s between attempts, one `waiting for backends` warn line per backend and 15 s.
 * Any other rejection ends the wait with it. An attempt still under way at the abort closes what it
 * opens once it settles.
 */
export async function untilReachable<T extends { close?(): Promise<void> | void }>(connect: () => Promise<T>, options: WaitOptions): Promise<T> {
  const { maxWaitMs, log, signal } = options;
  const started = monotonicMs();
  let waitingFor: BackendStartError['backend'] | null = null;
  let logged = { backend: '', at: 0 };
  for (let attempt = 1; ; attempt++) {
    if (signal?.aborted) throw new StartAbortedError('stopped while waiting for the backends');
    const attempting = connect();
    let value: T;
    try {
      value = await untilAborted(attempting, signal);
    } catch (err) {
      if (signal?.aborted) {
        attempting.then((p) => p.close?.(), () => undefined);
        throw new StartAbortedError('stopped while waiting for the backends');
      }
      if (!(err instanceof BackendStartError)) throw err;
      const waited = monotonicMs() - started;
      if (waited >= maxWaitMs) throw new BackendWaitError(err.backend, waited, err);
      waitingFor = err.backend;
      options.onWaiting?.(err.backend, err);
      if (logged.backend !== err.backend || monotonicMs() - logged.at >= LOG_EVERY_MS) {
        log.warn({ backend: err.backend, err: err.message, attempt, waitedMs: waited, maxWaitMs }, 'waiting for backends');
        logged = { backend: err.backend, at: monotonicMs() };
      }
      await sleep(Math.min(backoff(attempt, MAX_RETRY_MS), maxWaitMs - waited), undefined, signal ? { signal } : {}).catch(() => undefined);
      continue;
    }
    if (waitingFor) log.info({ waitedMs: monotonicMs() - started, attempts: attempt }, 'backends reachable');
    return value;
  }
}

/**
 * Runs a process's start with SIGTERM and SIGINT watched: one during the wait for the backends
 * exits 0 (`stopped while starting`); a wait past TIER_BACKEND_START_WAIT_MS exits 1 with one fatal
 * line (`backends unreachable at start`). Other errors are the caller's. `stopped`: a signal came
 * after the wait, while the rest started; the caller drains what did start.
 */
export async function startOrExit<T>(log: Logger, start: (signal: AbortSignal) => Promise<T>): Promise<{ value: T; stopped: boolean }> {
  const starting = new AbortController();
  const stopStart = (signal: NodeJS.Signals) => {
    log.info({ signal }, 'stopped while starting');
    starting.abort();
  };
  for (const signal of STOP_SIGNALS) process.once(signal, stopStart);
  try {
    const value = await start(starting.signal);
    return { value, stopped: starting.signal.aborted };
  } catch (err) {
    if (err instanceof StartAbortedError) {
      await endLog(log);
      process.exit(0);
    }
    if (err instanceof BackendWaitError) {
      log.fatal({ backend: err.backend, waitedMs: err.waitedMs, err: err.message }, 'backends unreachable at start');
      await endLog(log);
      process.exit(1);
    }
    throw err;
  } finally {
    for (const signal of STOP_SIGNALS) process.off(signal, stopStart);
  }
}

/** `p`, or a rejection as soon as `signal` aborts. */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
