import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../config/config.js';
import type { Logger } from '../log/logger.js';
import type { Ports } from '../ports/ports.js';
import { backoff } from '../ports/redis.js';
import { guardApp } from '../transport/guard.js';
import { noSniff } from '../transport/http.js';
import type { UwsModule } from '../transport/uws.js';
import { BackendStartError } from './cluster-ports.js';
import { listen } from './listen.js';

/** The cap of the wait between two attempts (ms); the first ones come sooner (100 ms doubling). */
const MAX_RETRY_MS = 5_000;
/** One `waiting for backends` line per this many ms while the same backend stays away. */
const LOG_EVERY_MS = 15_000;

/** The backends did not answer within TIER_BACKEND_START_WAIT_MS: the node exits 1. */
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

/** A stop signal came while the node waited for its backends: nothing was started, the exit is clean. */
export class StartAbortedError extends Error {
  override name = 'StartAbortedError';
}

/**
 * Connects the cluster ports, retrying with backoff while NATS or Redis does not answer, up to
 * `config.backendStartWaitMs` (Kubernetes may start the pods before their backends). Meanwhile the
 * admin port serves `/healthz` 200 and `/readyz` 503 naming the backend waited for (nothing else); the main port is
 * not open, so no hub or app is taken. `signal` ends the wait with StartAbortedError. Resolves with
 * the ports and the waiting admin port, which the caller closes just before its own admin port binds.
 */
export async function portsWhenReachable(
  connect: () => Promise<Ports>,
  deps: { config: Config; log: Logger; uws: UwsModule; signal?: AbortSignal | undefined },
): Promise<{ ports: Ports; closeAdmin(): void }> {
  const { config, log, signal } = deps;
  const started = Date.now();
  let waitingFor: BackendStartError['backend'] | null = null;
  let lastError = '';
  // a port of its own, not the node's admin app (that needs the ports): every answer closes its
  // connection, so no probe keeps talking to this one after the hand-over
  const admin = guardApp(deps.uws.App(), log);
  admin.any('/*', (res, req) => {
    const url = req.getUrl();
    const head = req.getMethod() === 'head';
    const [status, body] =
      url === '/healthz'
        ? ['200 OK', '{"ok":true}']
        : url === '/readyz'
          ? ['503 Service Unavailable', JSON.stringify({ ready: false, reasons: waitingFor ? ['starting', `waiting_for_${waitingFor}`] : ['starting'], node: config.nodeId, mode: 'cluster', waitingFor, waitingMs: Date.now() - started, lastError })]
          : ['404 Not Found', ''];
    res.cork(() => {
      noSniff(res.writeStatus(status)).writeHeader('content-type', 'application/json');
      if (head) res.endWithoutBody(body.length, true);
      else res.end(body, true);
    });
  });
  const socket = await listen(admin, config.adminHost, config.adminPort, false);
  let closed = false;
  const closeAdmin = () => {
    if (closed) return;
    closed = true;
    deps.uws.us_listen_socket_close(socket.socket);
  };
  let logged = { backend: '', at: 0 };
  try {
    for (let attempt = 1; ; attempt++) {
      if (signal?.aborted) throw new StartAbortedError('stopped while waiting for the backends');
      const attempting = connect();
      let ports: Ports;
      try {
        ports = await untilAborted(attempting, signal);
      } catch (err) {
        if (signal?.aborted) {
          // an attempt still under way closes what it opens once it settles
          attempting.then((p) => p.close?.(), () => undefined);
          throw new StartAbortedError('stopped while waiting for the backends');
        }
        if (!(err instanceof BackendStartError)) throw err;
        const waited = Date.now() - started;
        if (waited >= config.backendStartWaitMs) throw new BackendWaitError(err.backend, waited, err);
        waitingFor = err.backend;
        lastError = err.message;
        if (logged.backend !== err.backend || Date.now() - logged.at >= LOG_EVERY_MS) {
          log.warn({ backend: err.backend, err: err.message, attempt, waitedMs: waited, maxWaitMs: config.backendStartWaitMs }, 'waiting for backends');
          logged = { backend: err.backend, at: Date.now() };
        }
        await sleep(Math.min(backoff(attempt, MAX_RETRY_MS), config.backendStartWaitMs - waited), undefined, signal ? { signal } : {}).catch(() => undefined);
        continue;
      }
      if (waitingFor) log.info({ waitedMs: Date.now() - started, attempts: attempt }, 'backends reachable');
      return { ports, closeAdmin };
    }
  } catch (err) {
    closeAdmin();
    throw err;
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
