import { timingSafeEqual } from 'node:crypto';
import type { NodeMetrics } from './metrics.js';
import type { DiagnoseReport } from './diagnose.js';
import type { Logger } from '../log/logger.js';
import { guardApp } from '../transport/guard.js';
import type { HttpResponse, TemplatedApp, UwsModule } from '../transport/uws.js';

export interface Readiness {
  ready: boolean;
  detail: Record<string, unknown>;
}

/** Why a node should not get new traffic; none: ready. */
export type NotReadyReason = 'starting' | 'draining' | 'full' | 'local_store_failing';

/**
 * Readiness answers for this node alone: not started, draining, at its hub session limit, or its
 * own store failing. A shared backend (NATS, Redis) is not a reason: it is down for every node at
 * once, and readiness would take the whole fleet out of the Service.
 */
export function notReadyReasons(s: { started: boolean; draining: boolean; full: boolean; localStoreOk: boolean }): NotReadyReason[] {
  const reasons: NotReadyReason[] = [];
  if (!s.started) reasons.push('starting');
  if (s.draining) reasons.push('draining');
  if (s.full) reasons.push('full');
  if (!s.localStoreOk) reasons.push('local_store_failing');
  return reasons;
}

export interface AdminDeps {
  metrics: NodeMetrics;
  log: Logger;
  readiness: () => Readiness;
  /** serves `/debug/diagnose` behind the admin token (it shows configuration); absent: not served */
  diagnose?: { adminToken: string; run: () => Promise<DiagnoseReport> };
}

/**
 * The admin port: `/healthz` (the process serves), `/readyz` (it should get new traffic: 503 while
 * starting, draining or full, with the reasons; backends reported, not judged), `/metrics`
 * (Prometheus text), `/debug/diagnose` (self-diagnosis, admin token). Read-only.
 */
export function createAdminApp(uws: UwsModule, deps: AdminDeps): TemplatedApp {
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
  if (deps.diagnose) mountDiagnose(app, deps.diagnose, deps.log);
  app.any('/*', (res) => {
    res.cork(() => res.writeStatus('404 Not Found').end());
  });
  return app;
}

function json(res: HttpResponse, state: { aborted: boolean }, status: string, body: string): void {
  if (state.aborted) return;
  res.cork(() => res.writeStatus(status).writeHeader('content-type', 'application/json').end(body));
}

function mountDiagnose(app: TemplatedApp, diagnose: NonNullable<AdminDeps['diagnose']>, log: Logger): void {
  const token = Buffer.from(diagnose.adminToken);
  app.get('/debug/diagnose', (res, req) => {
    const bearer = /^Bearer\s+(\S+)$/i.exec(req.getHeader('authorization'))?.[1];
    const given = bearer === undefined ? null : Buffer.from(bearer);
    if (given === null || given.length !== token.length || !timingSafeEqual(given, token)) {
      res.cork(() =>
        res
          .writeStatus('401 Unauthorized')
          .writeHeader('www-authenticate', 'Bearer')
          .writeHeader('content-type', 'application/json')
          .end('{"ok":false,"code":"unauthorized","message":"Authorization: Bearer <ADMIN_TOKEN> is required"}'),
      );
      return;
    }
    const state = { aborted: false };
    res.onAborted(() => {
      state.aborted = true;
    });
    // the runner turns every failure into a verdict; a rejection here is a bug, answered 500
    diagnose.run().then(
      (report) => json(res, state, '200 OK', JSON.stringify(report)),
      (err: unknown) => {
        log.error({ err }, 'diagnose failed');
        json(res, state, '500 Internal Server Error', '{"ok":false,"code":"internal","message":"diagnose failed"}');
      },
    );
  });
}
