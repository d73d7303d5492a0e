/**
 * An app socket's request budget (`TIER_APP_REQUESTS_PER_SEC`, `TIER_APP_REQUESTS_BURST`): past it a
 * request is answered `rate_limited` with its id, and a socket that goes on sending past the burst
 * of refusals is closed 4004. Until 2026-12-07 there was none: one socket sent 3,200 sub/unsub
 * pairs a second, 42 % of a core, and other sockets' pings answered 180 ms late (review "recovery").
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CloseCode } from '../../proto/errors.js';
import { AppSocket } from '../helpers/app-socket.js';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.js';

let server: ServerProcess;
beforeAll(async () => {
  server = await startServerProcess({ TIER_APP_REQUESTS_PER_SEC: '1', TIER_APP_REQUESTS_BURST: '70' });
});
afterAll(async () => {
  expect(await server.stop()).toBe(0);
});

const appUrl = () => `${server.wsUrl}/app/v1?token=${server.adminToken}`;

it('answers the burst, then rate_limited with each id (temporary); another socket is not affected', async () => {
  const app = new AppSocket(appUrl());
  await app.opened();
  const answers = await Promise.all(Array.from({ length: 80 }, () => app.request({ op: 'ping' })));
  const ok = answers.filter((a) => a.op === 'ok').length;
  // the burst, and at most a token or two refilled meanwhile
  expect(ok).toBeGreaterThanOrEqual(70);
  expect(ok).toBeLessThanOrEqual(72);
  const refused = answers.filter((a) => a.op === 'err');
  expect(refused.length).toBe(80 - ok);
  for (const r of refused) expect(r).toMatchObject({ code: 'rate_limited', temporary: true });
  const other = new AppSocket(appUrl());
  await other.opened();
  expect(await other.request({ op: 'ping' })).toMatchObject({ op: 'ok' });
  app.close();
  other.close();
});

it('closes a socket 4004 once it was refused more than the burst within 10 s', async () => {
  const app = new AppSocket(appUrl());
  await app.opened();
  for (let i = 0; i < 200; i++) app.send({ op: 'ping', id: i + 1 });
  expect(await app.closed).toMatchObject({ code: CloseCode.rateLimited, reason: 'rate_limited' });
  // every answer before the close, none missing
  expect(app.messages.filter((m) => m.op === 'ok' || m.op === 'err').map((m) => m.id)).toEqual(Array.from({ length: app.messages.filter((m) => m.op === 'ok' || m.op === 'err').length }, (_, i) => i + 1));
});
