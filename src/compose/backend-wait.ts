import { onlyAllowedHosts } from '../admin/admin-hosts.js';
import { adminHostsOf } from './auth-wiring.js';
import type { Config } from '../config/config.js';
import type { Logger } from '../log/logger.js';
import type { NodeMetrics } from '../admin/metrics.js';
import type { Ports } from '../ports/ports.js';
import { guardApp } from '../transport/guard.js';
import { endHead, noSniff } from '../transport/http.js';
import type { HttpResponse, UwsModule } from '../transport/uws.js';
import { listen } from './listen.js';
import { untilReachable, type BackendStartError } from './until-reachable.js';

/**
 * Connects the cluster ports, retrying with backoff while NATS or Redis does not answer, up to
 * `config.backendStartWaitMs` (src/compose/until-reachable.ts). Meanwhile the admin port serves
 * `/healthz` 200, `/readyz` 503 naming the backend waited for, and `/metrics` (`metrics`' registry,
 * `tier_backend_up` 0 for the backend waited for, 1 for NATS once it answered): the
 * HubtierBackendDown alert fires on a node stuck at start. Nothing else; the main port is not open,
 * so no hub or app is taken. `signal` ends the wait with StartAbortedError. Resolves with the ports
 * and the waiting admin port, which the caller closes just before its own admin port binds.
 */
export async function portsWhenReachable(
  connect: () => Promise<Ports>,
  deps: { config: Config; log: Logger; uws: UwsModule; metrics: NodeMetrics; signal?: AbortSignal | undefined },
): Promise<{ ports: Ports; closeAdmin(): void }> {
  const { config, log, signal, metrics } = deps;
  const started = Date.now();
  let waitingFor: BackendStartError['backend'] | null = null;
  let lastError = '';
  // what the last attempt learnt: the ports connect NATS first, so waiting for Redis means NATS answered
  metrics.backendsUp((): Record<string, boolean> => (waitingFor === 'nats' ? { nats: false } : waitingFor === 'redis' ? { nats: true, redis: false } : {}));
  // a port of its own, not the node's admin app (that needs the ports): every answer closes its
  // connection, so no probe keeps talking to this one after the hand-over
  const admin = onlyAllowedHosts(guardApp(deps.uws.App(), log), adminHostsOf(config), () => metrics.adminRefused.inc({ reason: 'host' }));
  const answer = (res: HttpResponse, head: boolean, status: string, type: string, body: string) =>
    res.cork(() => {
      noSniff(res.writeStatus(status)).writeHeader('content-type', type);
      if (head) endHead(res, body.length, true);
      else res.end(body, true);
    });
  admin.any('/*', (res, req) => {
    const url = req.getUrl();
    const head = req.getMethod() === 'head';
    if (url === '/metrics') {
      const state = { aborted: false };
      res.onAborted(() => (state.aborted = true));
      metrics.registry.metrics().then(
        (text) => !state.aborted && answer(res, head, '200 OK', metrics.registry.contentType, text),
        () => !state.aborted && answer(res, head, '500 Internal Server Error', 'text/plain', ''),
      );
      return;
    }
    const [status, body] =
      url === '/healthz'
        ? ['200 OK', '{"ok":true}']
        : url === '/readyz' || url === '/debug/diagnose'
          ? ['503 Service Unavailable', JSON.stringify({ ready: false, reasons: waitingFor ? ['starting', `waiting_for_${waitingFor}`] : ['starting'], node: config.nodeId, mode: 'cluster', waitingFor, waitingMs: Date.now() - started, lastError })]
          : ['404 Not Found', ''];
    answer(res, head, status, 'application/json', body);
  });
  const socket = await listen(admin, config.adminHost, config.adminPort, false);
  let closed = false;
  const closeAdmin = () => {
    if (closed) return;
    closed = true;
    deps.uws.us_listen_socket_close(socket.socket);
  };
  try {
    const ports = await untilReachable(connect, {
      maxWaitMs: config.backendStartWaitMs,
      log,
      signal,
      onWaiting: (backend, err) => {
        waitingFor = backend;
        lastError = err.message;
      },
    });
    return { ports, closeAdmin };
  } catch (err) {
    closeAdmin();
    throw err;
  }
}
