import { describe, expect, it } from 'vitest';
import { AccessLog } from '../../src/log/access-log.js';
import { createLogger, type Logger } from '../../src/log/logger.js';
import { TierError } from '../../src/errors.js';
import { route, type HttpHandler } from '../../src/transport/http.js';
import { fakeUwsResponse } from '../helpers/fake-uws-response.js';

function capture(level = 'info') {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger(level, { node: 'n1' }, { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { lines, log };
}

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: unknown;
}

/**
 * Registers one route on an app that never listens and runs requests through it as uWS would:
 * path parameters, headers, and the answer's status, headers and body.
 */
function mounted(pattern: string, handler: HttpHandler, access: AccessLog, log: Logger) {
  type UwsHandler = (res: never, req: never) => void;
  let registered: UwsHandler | undefined;
  const app = new Proxy({}, { get: () => (_p: string, h: UwsHandler) => (registered = h) });
  route(app as never, 'post', pattern, handler, { maxBodyBytes: 1024, log, access });
  return (params: string[], headers: Record<string, string> = {}) =>
    new Promise<Answer>((resolve) => {
      const res = fakeUwsResponse('{}', (a) => resolve({ status: a.status, headers: a.headers, body: JSON.parse(a.body) }));
      const req = {
        getParameter: (i: number) => params[i] ?? '',
        getMethod: () => 'post',
        getUrl: () => pattern,
        getQuery: () => '',
        getHeader: (name: string) => headers[name] ?? '',
      };
      registered!(res as never, req as never);
    });
}

const PATTERN = '/v1/hubs/:hubId/devices/:deviceId/commands';

describe('HTTP access log and request ids', () => {
  it("echoes the caller's x-request-id and writes one line with the route template, status, µs and the id", async () => {
    const { lines, log } = capture();
    const seen: string[] = [];
    const call = mounted(PATTERN, (c) => (seen.push(c.requestId), { status: 200, body: { ok: true } }), new AccessLog(log, 'n1'), log);
    const answer = await call(['hub-secret-1', 'lamp-7'], { 'x-request-id': 'abc-123' });
    expect(answer.headers['x-request-id']).toBe('abc-123');
    expect(seen).toEqual(['abc-123']);
    expect(lines).toHaveLength(1);
    const line = lines[0]!;
    expect(line).toMatchObject({ level: 30, msg: 'http request', method: 'POST', route: PATTERN, status: 200, requestId: 'abc-123', node: 'n1' });
    expect(typeof line.us).toBe('number');
    expect(line.code).toBeUndefined();
    // the template, never the path: ids of hubs and devices stay out of the access log
    expect(JSON.stringify(line)).not.toContain('hub-secret-1');
    expect(JSON.stringify(line)).not.toContain('lamp-7');
  });

  it('generates an id when none or an invalid one is sent, and echoes that', async () => {
    const { lines, log } = capture();
    const call = mounted(PATTERN, () => ({ status: 200, body: {} }), new AccessLog(log, 'n1'), log);
    const a = await call(['h', 'd']);
    const b = await call(['h', 'd'], { 'x-request-id': 'not valid/at all' });
    const ids = [a.headers['x-request-id'], b.headers['x-request-id']];
    expect(ids[0]).toMatch(/^n1-[0-9a-f]{6}-[0-9a-z]+$/);
    expect(ids[1]).toMatch(/^n1-[0-9a-f]{6}-[0-9a-z]+$/);
    expect(ids[0]).not.toBe(ids[1]);
    expect(lines.map((l) => l.requestId)).toEqual(ids);
  });

  it('writes the error code of 401 and 403 answers', async () => {
    const { lines, log } = capture();
    const call = mounted(PATTERN, () => Promise.reject(new TierError('unauthorized', 'no token')), new AccessLog(log, 'n1'), log);
    const answer = await call(['h', 'd'], { 'x-request-id': 'r-401' });
    expect(answer.status).toBe(401);
    expect(lines).toEqual([expect.objectContaining({ msg: 'http request', status: 401, code: 'unauthorized', requestId: 'r-401' })]);
  });

  it('keeps to the rate per route, always writes server errors, and sums up what it skipped', async () => {
    const { lines, log } = capture();
    let now = 0;
    const access = new AccessLog(log, 'n1', 2, () => now);
    let status = 200;
    const call = mounted(PATTERN, () => (status === 200 ? { status, body: {} } : Promise.reject(new Error('boom'))), access, log);
    for (let i = 0; i < 5; i++) await call(['h', 'd']);
    status = 500;
    await call(['h', 'd']);
    const requests = lines.filter((l) => l.msg === 'http request');
    expect(requests.map((l) => l.status)).toEqual([200, 200, 500]);
    now = 1_000;
    (access as unknown as { sampled: { flush(): void } }).sampled.flush();
    expect(lines.filter((l) => l.msg === 'http requests not logged')).toEqual([expect.objectContaining({ request: `POST ${PATTERN}`, skipped: 3, windowMs: 1_000 })]);
    access.close();
  });

  it('keeps refused requests to a budget of their own: a flood of bad tokens leaves the accepted ones their lines (review logs)', async () => {
    const { lines, log } = capture();
    let now = 0;
    const access = new AccessLog(log, 'n1', 2, () => now);
    let refuse = true;
    const call = mounted(PATTERN, () => (refuse ? Promise.reject(new TierError('unauthorized', 'bad token')) : { status: 200, body: {} }), access, log);
    for (let i = 0; i < 50; i++) await call(['h', 'd']);
    refuse = false;
    for (let i = 0; i < 2; i++) await call(['h', 'd']);
    expect(lines.filter((l) => l.msg === 'http request').map((l) => l.status)).toEqual([401, 401, 200, 200]);
    now = 1_000;
    (access as unknown as { sampled: { flush(): void } }).sampled.flush();
    expect(lines.filter((l) => l.msg === 'http requests not logged')).toEqual([expect.objectContaining({ request: `POST ${PATTERN} (refused)`, skipped: 48 })]);
    access.close();
  });

  it('writes nothing at warn', async () => {
    const { lines, log } = capture('warn');
    const call = mounted(PATTERN, () => ({ status: 200, body: {} }), new AccessLog(log, 'n1'), log);
    const answer = await call(['h', 'd'], { 'x-request-id': 'quiet' });
    expect(answer.headers['x-request-id']).toBe('quiet');
    expect(lines).toEqual([]);
  });

  it('logs requests that failed because a backend is away at most 10 times per route and window, and answers each 503 unavailable', async () => {
    const { lines, log } = capture();
    const call = mounted(PATTERN, () => Promise.reject(new Error("Stream isn't writeable and enableOfflineQueue options is false")), new AccessLog(log, 'n1', 0), log);
    for (let i = 0; i < 30; i++) expect(await call(['h', 'd'])).toMatchObject({ status: 503, body: { code: 'unavailable' } });
    const failures = lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('http handler failed'));
    expect(failures).toHaveLength(10);
    expect(failures[0]).toMatchObject({ level: 40, msg: 'http handler failed: a backend is away' });
  });

  it("gives the handler a logger with the request's id, for its own lines and for the failure line", async () => {
    const { lines, log } = capture();
    const fleetLog = log.child({ part: 'fleet' });
    const call = mounted(
      PATTERN,
      (c) => {
        c.log.info({ hubId: 'h' }, 'hub moved');
        return Promise.reject(new Error('store gone'));
      },
      new AccessLog(log, 'n1', 0),
      fleetLog,
    );
    const answer = await call(['h', 'd'], { 'x-request-id': 'req-own-lines' });
    expect(answer.status).toBe(500);
    expect(lines.find((l) => l.msg === 'hub moved')).toMatchObject({ requestId: 'req-own-lines', part: 'fleet', hubId: 'h' });
    expect(lines.find((l) => l.msg === 'http handler failed')).toMatchObject({ requestId: 'req-own-lines', part: 'fleet', level: 50 });
  });
});
