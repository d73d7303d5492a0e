import type { NodeMetrics } from './metrics.js';
import type { Logger } from '../log/logger.js';
import { guardApp } from '../transport/guard.js';
import type { TemplatedApp, UwsModule } from '../transport/uws.js';

export interface Readiness {
  ready: boolean;
  detail: Record<string, unknown>;
}

/**
 * The admin port: `/healthz` (the process serves), `/readyz` (it should get traffic: 503 while
 * starting or draining, with the reasons), `/metrics` (Prometheus text). Read-only.
 */
export function createAdminApp(uws: UwsModule, deps: { metrics: NodeMetrics; log: Logger; readiness: () => Readiness }): TemplatedApp {
  const app = guardApp(uws.App(), deps.log);
  app.get('/healthz', (res) => {
    res.cork(() => res.writeHeader('content-type', 'application/json').end('{"ok":true}'));
  });
  app.get('/readyz', (res) => {
    const r = deps.readiness();
    res.cork(() =>
      res
        .writeStatus(r.ready ? '200 OK' : '503 Service Unavailable')
        .writeHeader('content-type', 'application/json')
        .end(JSON.stringify({ ready: r.ready, ...r.detail })),
    );
  });
  app.get('/metrics', (res) => {
    const state = { aborted: false };
    res.onAborted(() => {
      state.aborted = true;
    });
    deps.metrics.registry.metrics().then(
      (text) => {
        if (!state.aborted) res.cork(() => res.writeHeader('content-type', deps.metrics.registry.contentType).end(text));
      },
      () => {
        if (!state.aborted) res.cork(() => res.writeStatus('500 Internal Server Error').end());
      },
    );
  });
  app.any('/*', (res) => {
    res.cork(() => res.writeStatus('404 Not Found').end());
  });
  return app;
}
