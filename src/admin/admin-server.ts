import type { AdminTokens } from '../auth/admin-tokens.js';
import { onlyAllowedHosts, type AdminHosts } from './admin-hosts.js';
import type { GuessWatch } from '../auth/guess-limit.js';
import type { NodeMetrics } from './metrics.js';
import type { Shedder } from '../actors/shed.js';
import type { DiagnoseReport } from './diagnose.js';
import { isLogLevel, setLogLevel, type Logger } from '../log/logger.js';
import { guardApp } from '../transport/guard.js';
import { endHead, noSniff, readBody } from '../transport/http.js';
import type { HttpResponse, TemplatedApp, UwsModule } from '../transport/uws.js';
import { adminOnly } from './admin-only.js';

export interface Readiness {
  ready: boolean;
  detail: Record<string, unknown>;
}

/** Why a node should not get new traffic; none: ready. */
export type NotReadyReason = 'starting' | 'draining' | 'full' | 'local_store_failing' | 'listen_paused';

/**
 * Readiness answers for this node alone: not started, draining, at its hub session limit, its own
 * store failing, or its public port closed for want of open files. A shared backend (NATS, Redis) is
 * not a reason: it is down for every node at once, and readiness would take the whole fleet out of
 * the Service. Nor is memory near a limit (the body says it): load spreads evenly, so nodes cross
 * the line together, and the HTTP API would leave the Service with them (review "diff12").
 */
export function notReadyReasons(s: { started: boolean; draining: boolean; full: boolean; localStoreOk: boolean; listenPaused?: boolean }): NotReadyReason[] {
  const reasons: NotReadyReason[] = [];
  if (!s.started) reasons.push('starting');
  if (s.draining) reasons.push('draining');
  if (s.full) reasons.push('full');
  if (!s.localStoreOk) reasons.push('local_store_failing');
  if (s.listenPaused) reasons.push('listen_paused');
  return reasons;
}

export interface AdminDeps {
  metrics: NodeMetrics;
  log: Logger;
  readiness: () => Readiness;
  /** serves `/debug/diagnose` behind the admin token (it shows configuration); absent: not served */
  diagnose?: { adminToken: AdminTokens; run: () => Promise<DiagnoseReport> };
  /** serves `GET`/`PUT /debug/log-level` behind the admin token, for `log` and its children; absent: not served */
  logLevel?: { adminToken: AdminTokens };
  /** serves `POST /debug/shed` behind the admin token: some of this node's hubs told to reconnect (shed.ts); absent: not served */
  shed?: { adminToken: AdminTokens; shedder: Pick<Shedder, 'start'> };
  /** the names the port answers to (admin-hosts.ts); absent: any */
  hosts?: AdminHosts;
  /** wrong admin tokens by address (guess-limit.ts); absent: not limited */
  guesses?: GuessWatch;
}

/**
 * The admin port: `/healthz` (the process serves), `/readyz` (it should get new traffic: 503 while
 * starting, draining or full, with the reasons; backends reported, not judged), `/metrics`
 * (Prometheus text), `/debug/diagnose` (self-diagnosis, admin token), `/debug/log-level` (read
 * and set the log level at run time, admin token). Nothing else changes state. Every GET route
 * answers HEAD as it answers GET, without the body: probes and load balancers send HEAD.
 */
export function createAdminApp(uws: UwsModule, deps: AdminDeps): TemplatedApp {
  const guarded = guardApp(uws.App(), deps.log);
  const app = withHead(deps.hosts ? onlyAllowedHosts(guarded, deps.hosts, () => deps.metrics.adminRefused.inc({ reason: 'host' })) : guarded);
  app.get('/healthz', (res) => {
    res.cork(() => noSniff(res).writeHeader('content-type', 'application/json').end('{"ok":true}'));
  });
  app.get('/readyz', (res) => {
    const r = deps.readiness();
    res.cork(() =>
      noSniff(res.writeStatus(r.ready ? '200 OK' : '503 Service Unavailable'))
        .writeHeader('content-type', 'application/json')
        .writeHeader('cache-control', 'no-store')
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
        if (!state.aborted) res.cork(() => noSniff(res).writeHeader('content-type', deps.metrics.registry.contentType).end(text));
      },
      () => {
        if (!state.aborted) res.cork(() => noSniff(res.writeStatus('500 Internal Server Error')).end());
      },
    );
  });
  if (deps.diagnose) mountDiagnose(app, deps.diagnose, deps.log, deps.guesses);
  if (deps.logLevel) mountLogLevel(app, deps.logLevel.adminToken, deps.log, deps.guesses);
  if (deps.shed) mountShed(app, deps.shed, deps.log, deps.guesses);
  app.any('/*', (res) => {
    res.cork(() => noSniff(res.writeStatus('404 Not Found')).end());
  });
  return app;
}

/**
 * `app` whose `get` also registers the handler for HEAD, given a response whose `end(body)` writes
 * the body's length and no body (RFC 9110 §9.3.2; uWS would send the body after a HEAD answer).
 */
function withHead(app: TemplatedApp): TemplatedApp {
  const get = app.get.bind(app);
  app.get = (pattern, handler) => {
    get(pattern, handler);
    app.head(pattern, (res, req) => handler(headOnly(res), req));
    return app;
  };
  return app;
}

/** `res` for a HEAD request: `end(body)` ends it with the body's length and no body; the rest as `res`. */
function headOnly(res: HttpResponse): HttpResponse {
  const head: HttpResponse = new Proxy(res, {
    get(target, name) {
      if (name === 'end') {
        return (body?: string | ArrayBuffer | ArrayBufferView) => {
          endHead(target, body === undefined ? 0 : typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength);
          return head;
        };
      }
      const v: unknown = Reflect.get(target, name);
      if (typeof v !== 'function') return v;
      // chained calls (`writeStatus(…).writeHeader(…).end(…)`) stay on the HEAD response
      return (...args: unknown[]) => {
        const r: unknown = (v as (...a: unknown[]) => unknown).apply(target, args);
        return r === target ? head : r;
      };
    },
  });
  return head;
}

function json(res: HttpResponse, state: { aborted: boolean }, status: string, body: string): void {
  if (state.aborted) return;
  // diagnose and readiness answers describe the node's configuration: kept by no cache
  res.cork(() => noSniff(res.writeStatus(status)).writeHeader('content-type', 'application/json').writeHeader('cache-control', 'no-store').end(body));
}

/**
 * `GET /debug/log-level` answers `{ level }`; `PUT` with `{"level":"debug"}` sets it for the whole
 * node (every child logger follows) and answers `{ old, level }`. Not kept across a restart.
 */
function mountLogLevel(app: TemplatedApp, token: AdminTokens, log: Logger, guesses: GuessWatch | undefined): void {
  app.get('/debug/log-level', (res, req) => {
    if (!adminOnly(res, req, token, guesses)) return;
    res.cork(() => noSniff(res).writeHeader('content-type', 'application/json').writeHeader('cache-control', 'no-store').end(JSON.stringify({ level: log.level })));
  });
  app.put('/debug/log-level', (res, req) => {
    if (!adminOnly(res, req, token, guesses)) return;
    withJsonBody(res, (body, answer) => {
      const level = body?.level;
      if (!isLogLevel(level)) {
        answer('400 Bad Request', JSON.stringify({ ok: false, code: 'invalid_field', field: 'level', message: 'level: one of fatal, error, warn, info, debug, trace, silent' }));
        return;
      }
      const changed = setLogLevel(log, level);
      // at info: in the log unless the new level is above it; not `level`, pino's own field
      log.info({ from: changed.old, to: changed.level }, 'log level changed');
      answer('200 OK', JSON.stringify(changed));
    });
  });
}

/**
 * `POST /debug/shed` `{"hubs": N, "overS"?: S}`: N of this node's hub sessions (at most all) are
 * told to reconnect, spread over S seconds (default 60), most landing on other nodes; answers
 * `202 {ok, shedding, sessions, overS}`. For a node holding more than its share after a rolling update.
 */
function mountShed(app: TemplatedApp, shed: NonNullable<AdminDeps['shed']>, log: Logger, guesses: GuessWatch | undefined): void {
  app.post('/debug/shed', (res, req) => {
    if (!adminOnly(res, req, shed.adminToken, guesses)) return;
    withJsonBody(res, (body, answer) => {
      const hubs = body?.hubs;
      const overS = body?.overS ?? 60;
      const bad = (field: string, message: string) => answer('400 Bad Request', JSON.stringify({ ok: false, code: 'invalid_field', field, message }));
      if (!Number.isSafeInteger(hubs) || (hubs as number) < 1) return bad('hubs', 'hubs: how many hub sessions to move, an integer from 1');
      if (!Number.isSafeInteger(overS) || (overS as number) < 1 || (overS as number) > 3_600) return bad('overS', 'overS: seconds to spread them over, an integer 1-3600');
      const started = shed.shedder.start(hubs as number, (overS as number) * 1_000);
      log.info({ ...started, overS }, 'shedding hub sessions (POST /debug/shed)');
      answer('202 Accepted', JSON.stringify({ ok: true, ...started, overS }));
    });
  });
}

/** Reads a JSON object body of at most 1 KiB, then `then(body, answer)`; not an object: `body` undefined. */
function withJsonBody(res: HttpResponse, then: (body: Record<string, unknown> | undefined, answer: (status: string, json: string) => void) => void): void {
  const state = { aborted: false };
  res.onAborted(() => {
    state.aborted = true;
  });
  readBody(res, 1024).then(
    (raw) => {
      let body: unknown;
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        body = undefined;
      }
      then(typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>) : undefined, (status, text) => json(res, state, status, text));
    },
    () => json(res, state, '413 Payload Too Large', '{"ok":false,"code":"frame_too_large","message":"body larger than 1024 bytes"}'),
  );
}

function mountDiagnose(app: TemplatedApp, diagnose: NonNullable<AdminDeps['diagnose']>, log: Logger, guesses: GuessWatch | undefined): void {
  app.get('/debug/diagnose', (res, req) => {
    if (!adminOnly(res, req, diagnose.adminToken, guesses)) return;
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
