import { describe, expect, it } from 'vitest';
import { createAdminApp } from '../../src/admin/admin-server.js';
import { AdminTokens } from '../../src/auth/admin-tokens.js';
import { createLogger, setLogLevel } from '../../src/log/logger.js';
import { fakeUwsResponse } from '../helpers/fake-uws-response.js';

function capture(level = 'info') {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger(level, { node: 'n1' }, { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { lines, log };
}

describe('log level at run time', () => {
  it('children made before and after the change follow it, grandchildren too', () => {
    const { lines, log } = capture('info');
    const early = log.child({ part: 'rules' });
    const grand = early.child({ hubId: 'h1' });
    early.debug('hidden');
    expect(setLogLevel(log, 'debug')).toEqual({ old: 'info', level: 'debug' });
    early.debug('early child');
    grand.debug('grandchild');
    log.child({ part: 'late' }).debug('late child');
    expect(lines.map((l) => l.msg)).toEqual(['early child', 'grandchild', 'late child']);
    expect(grand.isLevelEnabled('debug')).toBe(true);
    setLogLevel(log, 'warn');
    early.info('quiet again');
    grand.info('quiet again');
    expect(lines).toHaveLength(3);
  });

  it('GET and PUT /debug/log-level on the admin port: admin token required, level checked', async () => {
    const { lines, log } = capture('info');
    const child = log.child({ hubId: 'h1' });
    const routes = adminRoutes(log, 'admin-token-0123456789');
    expect(await routes.call('get', '/debug/log-level', {})).toMatchObject({ status: 401, body: { code: 'unauthorized' } });
    expect(await routes.call('put', '/debug/log-level', { authorization: 'Bearer wrong' }, '{"level":"debug"}')).toMatchObject({ status: 401 });
    expect(log.level).toBe('info');
    const auth = { authorization: 'Bearer admin-token-0123456789' };
    expect(await routes.call('get', '/debug/log-level', auth)).toMatchObject({ status: 200, body: { level: 'info' } });
    expect(await routes.call('put', '/debug/log-level', auth, '{"level":"loud"}')).toMatchObject({ status: 400, body: { code: 'invalid_field', field: 'level' } });
    expect(await routes.call('put', '/debug/log-level', auth, 'not json')).toMatchObject({ status: 400 });
    expect(log.level).toBe('info');
    expect(await routes.call('put', '/debug/log-level', auth, '{"level":"debug"}')).toEqual({ status: 200, body: { old: 'info', level: 'debug' } });
    expect(await routes.call('get', '/debug/log-level', auth)).toMatchObject({ status: 200, body: { level: 'debug' } });
    child.debug('after the change');
    expect(lines.map((l) => l.msg)).toEqual(['log level changed', 'after the change']);
    expect(lines[0]).toMatchObject({ level: 30, from: 'info', to: 'debug' });
  });
});

/** The admin app's routes on an app that never listens, called as uWS calls them. */
function adminRoutes(log: ReturnType<typeof createLogger>, adminToken: string) {
  type Handler = (res: never, req: never) => void;
  const handlers = new Map<string, Handler>();
  const app = new Proxy({}, { get: (_, m) => (p: string, h: Handler) => (handlers.set(`${String(m)} ${p}`, h), app) });
  const uws = { App: () => app } as never;
  createAdminApp(uws, { metrics: {} as never, log, readiness: () => ({ ready: true, detail: {} }), logLevel: { adminToken: new AdminTokens(adminToken) } });
  return {
    call(method: string, path: string, headers: Record<string, string>, body = '') {
      return new Promise<{ status: number; body: unknown }>((resolve) => {
        // an answer without writeStatus is a 200
        const res = fakeUwsResponse(body, (a) => resolve({ status: a.status || 200, body: JSON.parse(a.body) }));
        const req = { getHeader: (name: string) => headers[name] ?? '' };
        handlers.get(`${method} ${path}`)!(res as never, req as never);
      });
    },
  };
}
