/**
 * WebSocket pings spend a socket's budget: uWS answers each one by itself, so nothing bounded them.
 * One hub credential sent 843,000 pings a second for 20 s, its session never refused or closed,
 * 2.1 GB of pongs back, 0.85 of a core (review "conn"). A hub's flood is now closed 4004 while a hub
 * pinging once a second keeps its session; an app socket's flood is closed 4004 too.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CloseCode } from '../../proto/errors.js';
import { HubClient } from '../../load/wire/hub-client.js';
import { AppSocket } from '../helpers/app-socket.js';
import { api, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

let server: ServerProcess;
beforeAll(async () => {
  server = await startServerProcess({ TIER_HUB_RATE_PER_SEC: '20', TIER_HUB_RATE_BURST: '40', TIER_APP_REQUESTS_PER_SEC: '10', TIER_APP_REQUESTS_BURST: '70' });
});
afterAll(async () => {
  expect(await server.stop()).toBe(0);
});

async function hub(hubId: string): Promise<HubClient> {
  const { secret } = (await api(server.httpUrl, 'POST', '/v1/admin/hubs', server.adminToken, { hubId, homeId: 'ping-home' })).body as { secret: string };
  const h = new HubClient({ url: server.wsUrl, hubId, secret });
  await h.connect();
  return h;
}

it("a hub's ping flood closes its session 4004; a hub pinging once a second keeps it", async () => {
  const [flooder, steady] = await Promise.all([hub('ping-flood'), hub('ping-steady')]);
  const closed = flooder.closed;
  for (let i = 0; i < 5_000 && flooder.ping(); i++);
  expect(await closed).toMatchObject({ code: CloseCode.rateLimited, reason: 'rate_limited' });
  for (let i = 0; i < 3; i++) {
    expect(steady.ping()).toBe(true);
    await new Promise((r) => setTimeout(r, 1_000));
  }
  // still served: a report is acknowledged
  expect(await steady.report({ d1: { on: true } })).toBeGreaterThan(0);
  expect(steady.connected).toBe(true);
  await steady.close();
});

it("an app socket's ping flood closes it 4004", async () => {
  const app = new AppSocket(`${server.wsUrl}/app/v1?token=${server.adminToken}`);
  await app.opened();
  for (let i = 0; i < 5_000 && app.ws.readyState === app.ws.OPEN; i++) app.ws.ping();
  expect(await app.closed).toMatchObject({ code: CloseCode.rateLimited, reason: 'rate_limited' });
});
