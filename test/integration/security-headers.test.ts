/**
 * The security headers of every kind of answer of both ports: the console page (a CSP without
 * inline scripts, no framing, no base or form target, no referrer), its script and the client
 * library (one cache-control), the JSON API's answers and refusals, the catch-all 404, a handler
 * that threw, and the admin port's own routes: each says `nosniff`. bull-board's are in
 * bull-board.test.ts; the console still runs under its CSP in console-browser.test.ts.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log/logger.js';
import { guardApp } from '../../src/transport/guard.js';
import { loadUws, type us_listen_socket } from '../../src/transport/uws.js';
import { startInProcessNode, type InProcessNode } from '../helpers/in-process-node.js';

const ADMIN = 'headers-admin-token-0123456789ab';
const admin = { authorization: `Bearer ${ADMIN}` };
let node: InProcessNode;
let adminUrl: string;

beforeAll(async () => {
  node = await startInProcessNode(ADMIN, 'headers-jwt-secret-0123456789abcdef');
  adminUrl = `http://127.0.0.1:${node.server.adminPort}`;
});

afterAll(async () => {
  await node?.server.close();
});

/** The answer's headers; fetch joins a header sent twice with ", ", so one value means one header. */
async function headersOf(url: string, init: RequestInit = {}): Promise<{ status: number; h: Headers }> {
  const res = await fetch(url, init);
  await res.arrayBuffer();
  return { status: res.status, h: res.headers };
}

describe('security headers', () => {
  it('the console page: scripts from the node only, never inline; no framing, base, form target or referrer', async () => {
    const { status, h } = await headersOf(`${node.http}/`);
    expect(status).toBe(200);
    const csp = (h.get('content-security-policy') ?? '').split(/;\s*/);
    expect(csp).toContain("script-src 'self'");
    expect(csp.find((d) => d.startsWith('script-src'))).not.toMatch(/unsafe-inline|unsafe-eval/);
    for (const d of ["default-src 'none'", "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'"]) expect(csp).toContain(d);
    expect(h.get('x-content-type-options')).toBe('nosniff');
    expect(h.get('x-frame-options')).toBe('DENY');
    expect(h.get('referrer-policy')).toBe('no-referrer');
    expect(h.get('cache-control')).toBe('no-store');
    // the page has no inline script left for the CSP to refuse
    expect(await (await fetch(`${node.http}/`)).text()).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
  });

  it('the console script and the client library: nosniff, one cache-control', async () => {
    for (const path of ['/console.js', '/client.js']) {
      const { status, h } = await headersOf(`${node.http}${path}`);
      expect(status, path).toBe(200);
      expect(h.get('content-type'), path).toBe('text/javascript; charset=utf-8');
      expect(h.get('x-content-type-options'), path).toBe('nosniff');
      expect(h.get('cache-control'), path).toBe('no-cache');
    }
    expect(await (await fetch(`${node.http}/console.js`)).text()).toBe(readFileSync(new URL('../../src/api/console.js', import.meta.url), 'utf8'));
  });

  it('JSON answers and refusals, HEAD, the catch-all 404 and the docs page say nosniff', async () => {
    const cases: Array<[string, RequestInit, number]> = [
      ['/v1/openapi.json', {}, 200],
      ['/v1/hubs/x', { headers: admin }, 404],
      ['/v1/hubs/x', {}, 401],
      ['/v1/admin/hubs', { method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: '{' }, 400],
      ['/v1/hubs/x', { method: 'HEAD', headers: admin }, 404],
      ['/no/such/route', {}, 404],
      ['/no/such/route', { method: 'HEAD' }, 404],
      ['/docs', {}, 200],
    ];
    for (const [path, init, want] of cases) {
      const { status, h } = await headersOf(`${node.http}${path}`, init);
      const what = `${init.method ?? 'GET'} ${path}`;
      expect(status, what).toBe(want);
      expect(h.get('x-content-type-options'), what).toBe('nosniff');
      if (path.startsWith('/v1/')) expect(h.get('cache-control'), what).toBe('no-store');
    }
  });

  it('the admin port: health, readiness, metrics, refusals and its 404 say nosniff', async () => {
    const cases: Array<[string, RequestInit, number]> = [
      ['/healthz', {}, 200],
      ['/readyz', {}, 200],
      ['/metrics', {}, 200],
      ['/debug/log-level', {}, 401],
      ['/debug/log-level', { headers: admin }, 200],
      ['/debug/log-level', { method: 'PUT', headers: admin, body: '{"level":"loud"}' }, 400],
      ['/nope', {}, 404],
    ];
    for (const [path, init, want] of cases) {
      const { status, h } = await headersOf(`${adminUrl}${path}`, init);
      const what = `${init.method ?? 'GET'} ${path}`;
      expect(status, what).toBe(want);
      expect(h.get('x-content-type-options'), what).toBe('nosniff');
    }
  });

  it('a handler that threw is answered 500 with nosniff', async () => {
    const { uws } = loadUws({ requireNative: false });
    const app = guardApp(uws.App(), createLogger('silent'));
    app.get('/boom', () => {
      throw new Error('a bug');
    });
    const socket = await new Promise<us_listen_socket>((resolve, reject) => app.listen('127.0.0.1', 0, (s) => (s ? resolve(s) : reject(new Error('no listen')))));
    try {
      const { status, h } = await headersOf(`http://127.0.0.1:${uws.us_socket_local_port(socket as never)}/boom`);
      expect(status).toBe(500);
      expect(h.get('x-content-type-options')).toBe('nosniff');
    } finally {
      uws.us_listen_socket_close(socket);
    }
  });
});
