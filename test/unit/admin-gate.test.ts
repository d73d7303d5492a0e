/**
 * What the admin port checks before its routes: the `Host` a request names (a name an attacker
 * pointed at 127.0.0.1, DNS rebinding, is refused 421; IP addresses, localhost, ADMIN_HOST and
 * ADMIN_ALLOWED_HOSTS are answered) and wrong admin tokens by address (past the limit, 429 with
 * Retry-After and no check, counted and logged), on a real uWS admin app.
 */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAdminApp } from '../../src/admin/admin-server.js';
import { AdminHosts } from '../../src/admin/admin-hosts.js';
import { GuessLimit, guessWatch } from '../../src/auth/guess-limit.js';
import { NodeMetrics } from '../../src/admin/metrics.js';
import { AdminTokens } from '../../src/auth/admin-tokens.js';
import { createLogger } from '../../src/log/logger.js';
import { loadUws, type us_listen_socket } from '../../src/transport/uws.js';

const TOKEN = 'gate-test-admin-token-0123456789';
const binding = loadUws({ requireNative: false });
const lines: Array<Record<string, unknown>> = [];
const log = createLogger('info', {}, { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) });
const metrics = new NodeMetrics(() => 0);
let now = 1_000_000;
let socket: us_listen_socket;
let port: number;

beforeAll(async () => {
  const admin = createAdminApp(binding.uws, {
    metrics,
    log,
    readiness: () => ({ ready: true, detail: { node: 'n1' } }),
    logLevel: { adminToken: new AdminTokens(TOKEN) },
    hosts: new AdminHosts(['admin.internal', 'hubtier-admin.monitoring.svc']),
    guesses: guessWatch(log, (reason) => metrics.adminRefused.inc({ reason }), new GuessLimit({ limit: 3, windowMs: 10_000, now: () => now })),
  });
  // a page mounted later (the dashboard is) is behind the same check
  admin.get('/late', (res) => void res.end('late'));
  socket = await new Promise<us_listen_socket>((resolve, reject) => admin.listen('127.0.0.1', 0, (s) => (s ? resolve(s) : reject(new Error('no listen')))));
  port = binding.uws.us_socket_local_port(socket as never);
});
afterAll(() => binding.uws.us_listen_socket_close(socket));

function get(path: string, headers: Record<string, string>): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const refused = async (reason: string) => (await metrics.adminRefused.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;

describe('admin port: Host', () => {
  it('answers IP addresses, localhost, ADMIN_HOST and the allowed names, with or without a port', async () => {
    for (const host of [`127.0.0.1:${port}`, '10.1.2.3:9090', '[::1]:9090', '[fd00::5]', 'localhost', `LOCALHOST:${port}`, 'admin.internal:9090', 'hubtier-admin.monitoring.svc.', 'Admin.Internal']) {
      const res = await get('/readyz', { host });
      expect(res.status, host).toBe(200);
      expect(res.headers['cache-control'], host).toBe('no-store');
    }
  });

  it('refuses any other name on every route, before the token is looked at (421, counted)', async () => {
    const before = await refused('host');
    for (const [path, host] of [['/metrics', 'rebind.attacker.example:9090'], ['/readyz', 'evil.test'], ['/healthz', 'admin.internal.evil.test'], ['/debug/log-level', 'localhost.evil.test'], ['/late', 'evil.test']] as const) {
      const res = await get(path, { host, authorization: `Bearer ${TOKEN}` });
      expect(res.status, host).toBe(421);
      expect(JSON.parse(res.body)).toMatchObject({ ok: false, code: 'host_not_allowed' });
      expect(res.body).not.toContain('n1');
    }
    expect((await refused('host')) - before).toBe(5);
    expect((await get('/late', { host: 'localhost' })).body).toBe('late');
  });

  it('`*` in the allowed names takes any name', () => {
    expect(new AdminHosts(['127.0.0.1', '*']).allows('anything.example:9090')).toBe(true);
    expect(new AdminHosts(['127.0.0.1']).allows('anything.example:9090')).toBe(false);
  });
});

describe('admin port: wrong admin tokens', () => {
  it('an address past its limit gets 429 with Retry-After, even with the right token, until the window ends; counted and logged', async () => {
    const host = `127.0.0.1:${port}`;
    const auth = (t: string) => ({ host, authorization: `Bearer ${t}` });
    const [tokenBefore, lockedBefore] = [await refused('token'), await refused('locked')];
    // no token at all is not a guess
    for (let i = 0; i < 5; i++) expect((await get('/debug/log-level', { host })).status).toBe(401);
    const none = await get('/debug/log-level', { host });
    expect(none.headers['www-authenticate']).toBe('Bearer');
    expect(JSON.parse(none.body)).toMatchObject({ ok: false, code: 'unauthorized', num: 200 });
    for (let i = 0; i < 3; i++) expect((await get('/debug/log-level', auth(`wrong-${i}`))).status).toBe(401);
    const locked = await get('/debug/log-level', auth(TOKEN));
    expect(locked.status).toBe(429);
    expect(locked.headers['retry-after']).toBe('10');
    expect(JSON.parse(locked.body)).toMatchObject({ code: 'rate_limited' });
    // the public port's refusal body, on this port too
    expect(JSON.parse(locked.body)).toMatchObject({ ok: false, num: 302, temporary: true });
    now += 6_000;
    expect((await get('/debug/log-level', auth('wrong-x'))).headers['retry-after']).toBe('4');
    now += 4_000;
    expect((await get('/debug/log-level', auth(TOKEN))).status).toBe(200);
    expect((await refused('token')) - tokenBefore).toBe(3);
    expect((await refused('locked')) - lockedBefore).toBe(2);
    expect(lines.filter((l) => l.msg === 'wrong admin token')).toEqual(Array.from({ length: 3 }, () => expect.objectContaining({ level: 40, remote: '127.0.0.1', surface: 'debug', reason: 'token' })));
    expect(lines.filter((l) => String(l.msg).startsWith('admin token refused unchecked'))).toHaveLength(2);
    // the right token is never logged
    expect(JSON.stringify(lines)).not.toContain(TOKEN);
  });

  it('remembers at most maxAddresses, the oldest forgotten first', () => {
    const limit = new GuessLimit({ limit: 1, maxAddresses: 2, now: () => 0 });
    limit.wrong('a');
    limit.wrong('b');
    limit.wrong('c');
    expect(limit.size).toBe(2);
    expect(limit.lockedFor('a')).toBe(0);
    expect(limit.lockedFor('c')).toBe(10_000);
  });
});
