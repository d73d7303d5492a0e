/**
 * Admin actions taken while NATS is down, or while the node that takes them is cut off from it,
 * answer 200 (stored at once) and are enforced on every node once the bus is back: three cluster
 * nodes (own nats-server and redis-server; node b reaches NATS through a proxy that can cut it
 * alone). A hub deleted (and its id provisioned again in another home), disabled or moved during
 * the outage loses its old session on the node holding it; a token revoked meanwhile has its app
 * socket on another node closed and is refused there. Before, none of this happened until restart.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNats, startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import { HubClient } from '../../load/wire/hub-client.js';
import { AppSocket } from '../helpers/app-socket.js';
import { eventually } from '../helpers/eventually.js';
import { api, startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { TcpCut } from '../helpers/tcp-cut.js';
import { metric } from '../helpers/metric.js';

const ADMIN = 'fleet-outage-admin-token-0123456789';
const JWT = 'fleet-outage-jwt-secret-0123456789abcdef';

describe('fleet changes during a NATS outage are enforced once it is back (three cluster nodes)', { timeout: 90_000 }, () => {
  let nats: Backend;
  let redis: Backend;
  let cut: TcpCut;
  let a: ServerProcess;
  let b: ServerProcess;
  let c: ServerProcess;
  const clients: HubClient[] = [];
  const apps: AppSocket[] = [];

  beforeAll(async () => {
    [nats, redis] = await Promise.all([startNats(), startRedis()]);
    cut = await TcpCut.start(nats.port);
    const env = { ADMIN_TOKEN: ADMIN, JWT_SECRET: JWT, REDIS_URL: redis.url, TIER_REDIS_PREFIX: uniquePrefix() };
    [a, b, c] = await Promise.all([
      startServerProcess({ ...env, NATS_URL: nats.url, NODE_ID: 'outage-a' }),
      startServerProcess({ ...env, NATS_URL: `nats://127.0.0.1:${cut.port}`, NODE_ID: 'outage-b' }),
      startServerProcess({ ...env, NATS_URL: nats.url, NODE_ID: 'outage-c' }),
    ]);
  }, 60_000);
  afterAll(async () => {
    for (const app of apps) app.ws.close();
    await Promise.allSettled(clients.map((h) => h.terminate()));
    await Promise.allSettled([a, b, c].map((n) => n?.stop()));
    await Promise.allSettled([cut?.close(), nats?.stop(), redis?.stop()]);
  });

  const admin = (node: ServerProcess, method: string, path: string, body?: unknown) => api(node.httpUrl, method, path, ADMIN, body);

  async function provision(hubId: string, homeId: string): Promise<string> {
    const res = await admin(a, 'POST', '/v1/admin/hubs', { hubId, homeId });
    expect(res.status).toBe(201);
    return res.body.secret as string;
  }

  async function hubOn(node: ServerProcess, hubId: string, homeId: string): Promise<HubClient> {
    const h = new HubClient({ url: node.wsUrl, hubId, secret: await provision(hubId, homeId) });
    clients.push(h);
    await h.connect();
    return h;
  }

  /** A user token of `homes`, its jti, and an app socket opened with it on `node`. */
  async function userOn(node: ServerProcess, sub: string, homes: string[]) {
    const token = (await admin(a, 'POST', '/v1/admin/tokens', { sub, homes })).body.token as string;
    const { jti } = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { jti: string };
    const app = new AppSocket(`${node.wsUrl}/app/v1?token=${token}`);
    apps.push(app);
    await app.opened();
    return { token, jti, app };
  }

  /** Until each node's readiness reports NATS down (it dropped what it published meanwhile). */
  async function seenDown(signal: AbortSignal, nodes: ServerProcess[]): Promise<void> {
    for (const node of nodes) {
      await eventually(signal, `${node.httpUrl} to see NATS down`, async () => ((await api(node.adminUrl, 'GET', '/readyz', undefined)).body.degraded?.includes('nats') ? true : undefined));
    }
  }

  /** Until each node's readiness no longer reports NATS down (its bus reconnected). */
  async function seenUp(signal: AbortSignal, nodes: ServerProcess[]): Promise<void> {
    for (const node of nodes) {
      await eventually(signal, `${node.httpUrl} to see NATS back`, async () => ((await api(node.adminUrl, 'GET', '/readyz', undefined)).body.degraded?.includes('nats') ? undefined : true));
    }
  }

  it('NATS down for every node: delete (and re-provision), disable, move and revoke are enforced after it returns', async ({ signal }) => {
    const deleted = await hubOn(a, 'o-del', 'o-home');
    const disabled = await hubOn(a, 'o-dis', 'o-home');
    const moved = await hubOn(a, 'o-mov', 'o-home');
    const user = await userOn(c, 'o-erin', ['o-home']);
    await nats.stop();
    try {
      await seenDown(signal, [a, b, c]);
      // each answered 200 by node b, stored at once; no node can hear of it now
      expect((await admin(b, 'DELETE', '/v1/admin/hubs/o-del')).status).toBe(200);
      expect((await admin(b, 'POST', '/v1/admin/hubs', { hubId: 'o-del', homeId: 'o-home-new' })).status).toBe(201);
      expect((await admin(b, 'PATCH', '/v1/admin/hubs/o-dis', { enabled: false })).status).toBe(200);
      expect((await admin(b, 'POST', '/v1/admin/hubs/o-mov/move', { homeId: 'o-home-new' })).status).toBe(200);
      expect((await admin(b, 'POST', '/v1/admin/tokens/revoke', { jti: user.jti })).status).toBe(200);
      expect([deleted.connected, disabled.connected, moved.connected]).toEqual([true, true, true]);
    } finally {
      await nats.restart();
    }
    expect((await deleted.closed).code).toBe(4006);
    expect((await disabled.closed).code).toBe(4006);
    expect((await moved.closed).code).toBe(4008);
    expect(await user.app.closed).toEqual({ code: 4007, reason: 'token_revoked' });
    expect((await api(c.httpUrl, 'GET', '/v1/homes/o-home/hubs', user.token)).body).toMatchObject({ code: 'unauthorized', message: 'token revoked' });
    // the re-provisioned id is not online with the old device's session
    await eventually(signal, 'the deleted hub’s old session to be gone', async () => ((await admin(c, 'GET', '/v1/admin/hubs/o-del')).body.online === false ? true : undefined));
    // and the moved hub comes back into its new home, once node b's bus is back too (b reaches NATS
    // through the proxy and may reconnect later than a and c: until then it answers `unavailable`)
    await seenUp(signal, [b]);
    await moved.connect(b.wsUrl);
    expect((await admin(c, 'GET', '/v1/admin/hubs/o-mov')).body).toMatchObject({ homeId: 'o-home-new', online: true });
    // the holder counted what its reconcile closed
    await eventually(signal, 'the reconcile counted', async () => {
      const text = await (await fetch(`${a.adminUrl}/metrics`)).text();
      return /tier_fleet_reconciles_total\{trigger="reconnect"\} [1-9]/.test(text) ? text : undefined;
    });
    const text = await (await fetch(`${a.adminUrl}/metrics`)).text();
    for (const what of ['deleted', 'disabled', 'moved']) expect(text).toContain(`tier_fleet_reconcile_closes_total{what="${what}"} 1`);
  });

  it('the node taking the actions cut off alone: it sends its notices again once back, and the others act on them', async ({ signal }) => {
    const deleted = await hubOn(a, 'p-del', 'p-home');
    const disabled = await hubOn(c, 'p-dis', 'p-home');
    const user = await userOn(c, 'p-frank', ['p-home']);
    cut.cut();
    try {
      await seenDown(signal, [b]);
      expect((await admin(b, 'DELETE', '/v1/admin/hubs/p-del')).status).toBe(200);
      expect((await admin(b, 'PATCH', '/v1/admin/hubs/p-dis', { enabled: false })).status).toBe(200);
      expect((await admin(b, 'POST', '/v1/admin/tokens/revoke', { sub: 'p-frank' })).status).toBe(200);
    } finally {
      cut.mend();
    }
    // a and c never lost NATS: only b's notices sent again can tell them
    expect((await deleted.closed).code).toBe(4006);
    expect((await disabled.closed).code).toBe(4006);
    expect(await user.app.closed).toEqual({ code: 4007, reason: 'token_revoked' });
    expect((await api(a.httpUrl, 'GET', '/v1/homes/p-home/hubs', user.token)).body).toMatchObject({ code: 'unauthorized', message: 'token revoked' });
  });

  it('a desired change stored while the node holding the hub is cut off reaches the online hub once that node is back (review "desired")', async ({ signal }) => {
    const hub = await hubOn(b, 'p-want', 'p-home');
    await hub.report({ lamp: { on: false } });
    const sets: unknown[] = [];
    hub.onCommand((c) => (sets.push(c.p), { ok: true }));
    cut.cut();
    try {
      await seenDown(signal, [b]);
      expect((await admin(a, 'PUT', '/v1/hubs/p-want/devices/lamp/desired', { desired: { on: true, level: 30 } })).status).toBe(200);
    } finally {
      cut.mend();
    }
    await seenUp(signal, [b]);
    // before: only the hub's next welcome carried it, however long its session stayed up
    await eventually(signal, 'the set at the hub', async () => (sets.length > 0 ? true : undefined));
    expect(sets).toEqual([{ on: true, level: 30 }]);
  });

  it('an app on the node cut off gets the events published meanwhile once it is back, though the home goes quiet (review "slowreaders")', async ({ signal }) => {
    const hub = await hubOn(a, 'q-hub', 'q-home');
    const { app } = await userOn(b, 'q-gina', ['q-home']);
    expect(await app.request({ op: 'sub', home: 'q-home' })).toMatchObject({ op: 'ok' });
    await hub.report({ door: { open: false } });
    await app.next((m) => m.op === 'evt' && m.attrs?.open === false);
    const reconnectsBefore = metric(await (await fetch(`${b.adminUrl}/metrics`)).text(), 'tier_bus_reconnects_total');
    cut.cut();
    try {
      await seenDown(signal, [b]);
      // published by node a while b is away: never on b's bus
      await hub.report({ door: { open: true } });
      await hub.report({ leak: { wet: true } });
    } finally {
      cut.mend();
    }
    await seenUp(signal, [b]);
    // no event after these: the app on b still gets both, in order, from the history
    const leak = await app.next((m) => m.op === 'evt' && m.attrs?.wet === true);
    const door = app.messages.find((m) => m.op === 'evt' && m.attrs?.open === true);
    expect(door?.pos.offset).toBe(leak.pos.offset - 1);
    expect(metric(await (await fetch(`${b.adminUrl}/metrics`)).text(), 'tier_bus_reconnects_total')).toBe((reconnectsBefore ?? 0) + 1);
  });
});

