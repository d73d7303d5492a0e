import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { HubClient, HubClientError } from '../../load/wire/hub-client.js';
import { freePort, startNats, startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import { api, startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { eventually } from '../helpers/eventually.js';

/** An app socket that records events; resolves `next` when a matching message arrives. */
function appSocket(url: string) {
  const ws = new WebSocket(url);
  const messages: any[] = [];
  const waiters: Array<{ pred: (m: any) => boolean; resolve: (m: any) => void }> = [];
  ws.on('message', (d: Buffer) => {
    const m = JSON.parse(d.toString());
    messages.push(m);
    for (const w of waiters.splice(0)) (w.pred(m) ? w.resolve(m) : waiters.push(w));
  });
  let id = 0;
  const next = (pred: (m: any) => boolean) =>
    new Promise<any>((resolve) => {
      const seen = messages.find(pred);
      if (seen) resolve(seen);
      else waiters.push({ pred, resolve });
    });
  return {
    ws,
    messages,
    next,
    opened: new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    }),
    async request(body: Record<string, unknown>) {
      const rid = ++id;
      ws.send(JSON.stringify({ id: rid, ...body }));
      return next((m) => m.id === rid);
    },
  };
}

// fault tests wait (bounded) for reconnects and expiry: a loaded CI machine needs more than 30 s
describe('cluster mode: three nodes, one NATS, one Redis (real processes)', { timeout: 60_000 }, () => {
  let nats: Backend;
  let redis: Backend;
  const nodes: Record<'a' | 'b' | 'c', ServerProcess> = {} as never;
  const secrets: Record<string, string> = {};
  const clients: HubClient[] = [];
  const shared = {
    ADMIN_TOKEN: 'cluster-admin-token-0123456789',
    JWT_SECRET: 'cluster-jwt-secret-0123456789abcdef',
  };
  let env: Record<string, string>;

  const startNode = (name: string, extra: Record<string, string> = {}) =>
    startServerProcess({ ...env, NODE_ID: `node-${name}`, ...extra });
  const cmd = (node: ServerProcess, hub: string, body: unknown = { set: { on: true } }, device = 't1') =>
    api(node.httpUrl, 'POST', `/v1/hubs/${hub}/devices/${device}/commands`, shared.ADMIN_TOKEN, body);
  const hubOn = async (node: ServerProcess, hubId: string, boot?: string) => {
    const c = new HubClient({ url: node.wsUrl, hubId, secret: secrets[hubId]!, ...(boot ? { boot } : {}) });
    clients.push(c);
    try {
      await c.connect();
    } catch (err) {
      // what the node said meanwhile is the way to tell a refusal from a bug
      const said = node.logs.filter((l) => (typeof l.level === 'number' && l.level >= 40) || l.stderr !== undefined).slice(-8);
      const state = node.child.exitCode ?? node.child.signalCode ?? 'running';
      throw new Error(`${hubId} could not connect to ${node.wsUrl} (process ${state}): ${(err as Error).message}; its last warnings: ${JSON.stringify(said)}`, { cause: err });
    }
    return c;
  };
  /**
   * Connects as a real hub does after an outage: a refusal the hub is told to retry (a temporary
   * code, or the socket closing before the welcome) is retried with backoff; the test's timeout is
   * the ceiling. Each retry is printed: a refusal by a node whose /readyz is 200 is worth a look.
   */
  const hubOnRetrying = async (node: ServerProcess, hubId: string): Promise<HubClient> => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await hubOn(node, hubId);
      } catch (err) {
        const cause = (err as Error).cause;
        const retry = cause instanceof HubClientError && (cause.temporary === true || cause.code === 'closed' || cause.status === 503 || cause.status === 500);
        if (!retry) throw err;
        console.warn(`retrying ${hubId}: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, Math.min(2_000, 100 * 2 ** attempt)));
      }
    }
  };
  /** Waits until the node's /readyz answers 200 with no backend degraded: its NATS and Redis connections are up. */
  const ready = (signal: AbortSignal, node: ServerProcess, name: string) =>
    eventually(signal, `${name} ready`, async () => {
      const r = await api(node.adminUrl, 'GET', '/readyz', undefined);
      return r.status === 200 && r.body.degraded?.length === 0 ? true : undefined;
    });

  beforeAll(async () => {
    [nats, redis] = await Promise.all([startNats(), startRedis({ persist: true })]);
    env = {
      ...shared,
      NATS_URL: nats.url,
      REDIS_URL: redis.url,
      TIER_REDIS_PREFIX: uniquePrefix(),
      TIER_DIRECTORY_TTL_MS: '3000',
      TIER_IDLE_MS: '4000',
      TIER_HEARTBEAT_MS: '1000',
      // lets a test give a command a timeout beyond its own
      TIER_COMMAND_TIMEOUT_MAX_MS: '600000',
    };
    [nodes.a, nodes.b, nodes.c] = await Promise.all([startNode('a'), startNode('b'), startNode('c')]);
    for (const hub of ['c-cmd', 'c-off', 'c-app', 'c-race', 'c-kill', 'c-stall', 'c-nats', 'c-nats-down', 'c-redis', 'c-redis-restart', 'c-restart']) {
      const res = await api(nodes.a.httpUrl, 'POST', '/v1/admin/hubs', shared.ADMIN_TOKEN, { hubId: hub, homeId: `home-${hub}` });
      expect(res.status).toBe(201);
      secrets[hub] = res.body.secret;
    }
  }, 60_000);

  afterAll(async () => {
    await Promise.allSettled(clients.map((c) => c.terminate()));
    await Promise.allSettled(Object.values(nodes).map((n) => n.stop()));
    await Promise.allSettled([nats?.stop(), redis?.stop()]);
  });

  it('reports cluster mode and healthy backends on /readyz', async () => {
    const r = await api(nodes.b.adminUrl, 'GET', '/readyz', undefined);
    expect(r).toMatchObject({ status: 200, body: { ready: true, mode: 'cluster', node: 'node-b' } });
  });

  it('routes a command arriving at one node to the node holding the hub, and shows the holder everywhere', async () => {
    const c = await hubOn(nodes.a, 'c-cmd');
    const commands: unknown[] = [];
    c.on('command', (f) => commands.push(f.p));
    expect(await cmd(nodes.b, 'c-cmd')).toMatchObject({ status: 200, body: { ok: true, result: { on: true } } });
    // node a, holding the hub, refuses a command whose frame would pass the hub's max (12 KB of JSON, 27 KB of msgpack floats)
    const floats = { lines: Array.from({ length: 3_000 }, () => 0.1) };
    expect(await cmd(nodes.b, 'c-cmd', { method: 'show', params: floats, timeoutMs: 3_000 })).toMatchObject({ status: 413, body: { code: 'frame_too_large' } });
    expect(await cmd(nodes.c, 'c-cmd', { set: { level: 5 } })).toMatchObject({ status: 200, body: { result: { level: 5 } } });
    expect(commands).toEqual([{ on: true }, { level: 5 }]);
    const status = await api(nodes.c.httpUrl, 'GET', '/v1/hubs/c-cmd', shared.ADMIN_TOKEN);
    expect(status.body).toMatchObject({ online: true, node: 'node-a' });
    expect(status.body.epoch).toBeGreaterThan(0);
  });

  it('answers 409 hub_offline at once when no node holds the hub', async () => {
    // "at once": the command's own timeout is beyond the test's, so only hub_offline can answer it
    const res = await cmd(nodes.b, 'c-off', { set: { on: true }, timeoutMs: 600_000 });
    expect(res).toMatchObject({ status: 409, body: { code: 'hub_offline' } });
  });

  it('delivers events of a hub on node A to an app on node C', async () => {
    const app = appSocket(`${nodes.c.wsUrl}/app/v1?token=${shared.ADMIN_TOKEN}`);
    await app.opened;
    expect(await app.request({ op: 'sub', home: 'home-c-app' })).toMatchObject({ op: 'ok' });
    const hub = await hubOn(nodes.a, 'c-app');
    await hub.report({ t1: { temperature: 19.5 } });
    const evt = await app.next((m) => m.op === 'evt' && m.kind === 'state');
    expect(evt).toMatchObject({ hub: 'c-app', home: 'home-c-app', device: 't1', attrs: { temperature: 19.5 } });
    app.ws.close();
  });

  it('leaves exactly one session when two connections of a hub race on two nodes', async () => {
    const one = new HubClient({ url: nodes.a.wsUrl, hubId: 'c-race', secret: secrets['c-race']! });
    const two = new HubClient({ url: nodes.b.wsUrl, hubId: 'c-race', secret: secrets['c-race']! });
    clients.push(one, two);
    await Promise.allSettled([one.connect(), two.connect()]);
    const loser = await Promise.race([one.closed.then(() => one), two.closed.then(() => two)]);
    const winner = loser === one ? two : one;
    expect(await loser.closed).toMatchObject({ code: 4000 });
    expect(winner.connected).toBe(true);
    let answered = '';
    winner.onCommand((c) => {
      answered = 'winner';
      return { ok: true, r: c.p };
    });
    expect((await cmd(nodes.c, 'c-race')).status).toBe(200);
    expect(answered).toBe('winner');
    const status = await api(nodes.c.httpUrl, 'GET', '/v1/hubs/c-race', shared.ADMIN_TOKEN);
    expect(status.body.node).toBe(winner === one ? 'node-a' : 'node-b');
  });

  it('recovers the hubs of a node killed with SIGKILL on another node, shadows intact; apps elsewhere are told offline', async ({ signal }) => {
    const victim = await startNode('victim');
    const app = appSocket(`${nodes.c.wsUrl}/app/v1?token=${shared.ADMIN_TOKEN}`);
    await app.opened;
    expect(await app.request({ op: 'sub', home: 'home-c-kill' })).toMatchObject({ op: 'ok' });
    const hub = await hubOn(victim, 'c-kill', 'boot-k');
    const seq = await hub.report({ t1: { temperature: 22.25 } });
    // durable once the batch window has passed and another node can read it
    await eventually(signal, 'the shadow write', async () => {
      const s = await api(nodes.a.httpUrl, 'GET', '/v1/hubs/c-kill/shadow', shared.ADMIN_TOKEN);
      return s.body.devices?.t1?.reported?.temperature === 22.25 ? true : undefined;
    });
    await victim.kill();
    await hub.closed;
    // the dead node's entry expires with its liveness key
    await eventually(signal, 'the directory entry to expire', async () => {
      const s = await api(nodes.a.httpUrl, 'GET', '/v1/hubs/c-kill', shared.ADMIN_TOKEN);
      return s.body.online === false ? true : undefined;
    });
    expect((await cmd(nodes.b, 'c-kill')).body.code).toBe('hub_offline');
    // no session closed to say it: a live node took the dead one's sessions and said it (until 2026-12-06 nobody did)
    const online = await app.next((m) => m.op === 'evt' && m.kind === 'online' && m.hub === 'c-kill');
    const offline = await app.next((m) => m.op === 'evt' && m.kind === 'offline' && m.hub === 'c-kill');
    expect(offline).toMatchObject({ home: 'home-c-kill', reason: '1006', pos: { epoch: online.pos.epoch, offset: expect.any(Number) } });
    expect(offline.pos.offset).toBeGreaterThan(online.pos.offset);
    const back = new HubClient({ url: nodes.b.wsUrl, hubId: 'c-kill', secret: secrets['c-kill']!, boot: 'boot-k' });
    clients.push(back);
    const welcome = await back.connect();
    expect(welcome.s).toBe(seq);
    const shadow = await api(nodes.c.httpUrl, 'GET', '/v1/hubs/c-kill/shadow', shared.ADMIN_TOKEN);
    expect(shadow.body.devices.t1.reported).toEqual({ temperature: 22.25 });
    expect((await cmd(nodes.c, 'c-kill')).status).toBe(200);
    // once: the back session's online follows, no second offline
    await app.next((m) => m.op === 'evt' && m.kind === 'online' && m.hub === 'c-kill' && m.node === 'node-b');
    expect(app.messages.filter((m) => m.op === 'evt' && m.kind === 'offline' && m.hub === 'c-kill')).toHaveLength(1);
    app.ws.close();
  });

  it('a node killed and started again under its NODE_ID within the ttl (a container restarted in its pod): a hub that does not come back is said offline and reads offline (review "presence")', async ({ signal }) => {
    const first = await startNode('restarted');
    const app = appSocket(`${nodes.c.wsUrl}/app/v1?token=${shared.ADMIN_TOKEN}`);
    await app.opened;
    expect(await app.request({ op: 'sub', home: 'home-c-restart' })).toMatchObject({ op: 'ok' });
    const hub = await hubOn(first, 'c-restart');
    await app.next((m) => m.op === 'evt' && m.kind === 'online' && m.hub === 'c-restart');
    await first.kill();
    await hub.terminate();
    // at once, under the same id: its liveness never lapses, so no node takes its sessions
    const second = await startNode('restarted');
    const offline = await app.next((m) => m.op === 'evt' && m.kind === 'offline' && m.hub === 'c-restart');
    expect(offline).toMatchObject({ home: 'home-c-restart', reason: '1006' });
    // before: `online: true, node: node-restarted` for as long as the new process lived
    await eventually(signal, 'the entry released', async () => ((await api(nodes.a.httpUrl, 'GET', '/v1/hubs/c-restart', shared.ADMIN_TOKEN)).body.online === false ? true : undefined));
    app.ws.close();
    await second.stop();
  });

  it('a node stalled past the ttl: another says its hubs offline, it says them online again as it resumes, and its later death is said too', async ({ signal }) => {
    const staller = await startNode('staller');
    const app = appSocket(`${nodes.c.wsUrl}/app/v1?token=${shared.ADMIN_TOKEN}`);
    await app.opened;
    expect(await app.request({ op: 'sub', home: 'home-c-stall' })).toMatchObject({ op: 'ok' });
    const hub = await hubOn(staller, 'c-stall', 'boot-s');
    const evts = (kind: string) => app.messages.filter((m) => m.op === 'evt' && m.kind === kind && m.hub === 'c-stall');
    await app.next((m) => m.op === 'evt' && m.kind === 'online' && m.hub === 'c-stall');
    staller.child.kill('SIGSTOP');
    try {
      await app.next((m) => m.op === 'evt' && m.kind === 'offline' && m.hub === 'c-stall');
    } finally {
      staller.child.kill('SIGCONT');
    }
    // resumed: the session never closed; its hub said online again, after the offline (until 2026-12-06 it stayed offline)
    await eventually(signal, 'online again', async () => (evts('online').length === 2 ? true : undefined));
    const [offline] = evts('offline');
    expect(evts('online')[1]).toMatchObject({ node: 'node-staller' });
    expect(evts('online')[1].pos.offset).toBeGreaterThan(offline.pos.offset);
    await hub.report({ t1: { temperature: 20.5 } });
    await app.next((m) => m.op === 'evt' && m.kind === 'state' && m.hub === 'c-stall');
    // listed again: its death now is said as well
    await staller.kill();
    await eventually(signal, 'offline after the death', async () => (evts('offline').length === 2 ? true : undefined));
    app.ws.close();
  });

  it('drains on SIGTERM: hubs get a reconnect hint, entries are released at once, not after the ttl', async () => {
    const leaving = await startNode('leaving');
    const res = await api(nodes.a.httpUrl, 'POST', '/v1/admin/hubs', shared.ADMIN_TOKEN, { hubId: 'c-drain', homeId: 'home-c-drain' });
    secrets['c-drain'] = res.body.secret;
    const hub = await hubOn(leaving, 'c-drain');
    const hint = hub.waitFor((f) => f.t === 11, 10_000);
    expect(await leaving.stop()).toBe(0);
    expect(await hint).toMatchObject({ t: 11, e: 'draining' });
    expect((await hub.closed).code).toBe(1001);
    const status = await api(nodes.a.httpUrl, 'GET', '/v1/hubs/c-drain', shared.ADMIN_TOKEN);
    expect(status.body.online).toBe(false);
  });

  it('keeps working after NATS restarts: nodes reconnect and re-subscribe on their own', async ({ signal }) => {
    const hub = await hubOn(nodes.a, 'c-nats');
    const app = appSocket(`${nodes.c.wsUrl}/app/v1?token=${shared.ADMIN_TOKEN}`);
    await app.opened;
    await app.request({ op: 'sub', home: 'home-c-nats' });
    await nats.restart();
    await eventually(signal, 'a command after the NATS restart', async () => ((await cmd(nodes.b, 'c-nats')).status === 200 ? true : undefined));
    expect(hub.connected).toBe(true);
    // node C re-subscribes on its own reconnect, which may come a little later than A's and B's
    let temperature = 18;
    // each report not seen within a second is followed by another (a step, not a deadline)
    const evt = await eventually(signal, 'an event through the restarted NATS', async () => {
      const t = ++temperature;
      await hub.report({ t1: { temperature: t } });
      const seen = app.next((m) => m.op === 'evt' && m.kind === 'state' && m.attrs.temperature === t);
      return Promise.race([seen, new Promise<undefined>((r) => setTimeout(() => r(undefined), 1_000))]);
    });
    expect(evt.hub).toBe('c-nats');
    app.ws.close();
  });

  it('takes commands for the hubs a node holds while NATS is down; a node not holding the hub answers 503 unavailable', async ({ signal }) => {
    const hub = await hubOn(nodes.a, 'c-nats-down');
    await nats.stop();
    try {
      // the nodes see the bus down once its socket closes; each try is a step, not a deadline
      await eventually(signal, 'a command through the node holding the hub, NATS down', async () => ((await cmd(nodes.a, 'c-nats-down')).status === 200 ? true : undefined));
      const elsewhere = await cmd(nodes.b, 'c-nats-down');
      expect(elsewhere).toMatchObject({ status: 503, body: { code: 'unavailable', temporary: true } });
      expect(hub.connected).toBe(true);
    } finally {
      await nats.restart();
    }
    for (const [name, node] of Object.entries(nodes)) await ready(signal, node, `node ${name}`);
    expect((await cmd(nodes.b, 'c-nats-down')).status).toBe(200);
  });

  it('keeps hub sessions up while Redis is down, reports the degradation, and writes what it accepted once Redis is back', async ({ signal }) => {
    await ready(signal, nodes.a, 'node a'); // after an earlier fault test, its connections may still be coming back
    const hub = await hubOnRetrying(nodes.a, 'c-redis');
    await hub.report({ t1: { n: 1 } });
    redis.pause(); // a hung Redis: connections open, nothing answered
    let stored = false;
    // accepted by the session and queued for Redis, acknowledged only once Redis has it
    const acked = hub.report({ t1: { n: 2 } }).then(() => (stored = true));
    try {
      // reported, but the node stays ready: Redis is down for every node alike
      const degraded = await eventually(signal, 'readiness to report the degradation', async () => {
        const r = await api(nodes.a.adminUrl, 'GET', '/readyz', undefined);
        return r.body.degraded?.includes('redis') ? r : undefined;
      });
      expect(degraded.status).toBe(200);
      expect(hub.connected).toBe(true);
      // the hub's record is cached on the node that admitted it: commands need NATS only
      expect((await cmd(nodes.a, 'c-redis')).status).toBe(200);
      expect(stored).toBe(false);
    } finally {
      redis.resume();
    }
    await acked;
    await ready(signal, nodes.a, 'node a');
    const shadow = await eventually(signal, 'the queued write to reach Redis', async () => {
      const s = await api(nodes.c.httpUrl, 'GET', '/v1/hubs/c-redis/shadow', shared.ADMIN_TOKEN);
      return s.body.devices?.t1?.reported?.n === 2 ? s.body : undefined;
    });
    expect(shadow.devices.t1.reported).toEqual({ n: 2 });
    expect(hub.connected).toBe(true);
  });

  it('rides out a Redis restart: sessions stay up, writes made meanwhile are retried, new sessions open after', async ({ signal }) => {
    await ready(signal, nodes.b, 'node b'); // after an earlier fault test, its connections may still be coming back
    const hub = await hubOnRetrying(nodes.b, 'c-redis-restart');
    await hub.report({ t1: { n: 1 } });
    await redis.stop();
    let stored = false;
    // accepted while Redis is gone, acknowledged once it is back and has the write
    const acked = hub.report({ t1: { n: 2 } }).then(() => (stored = true));
    await eventually(signal, 'Redis reported down on node b', async () => ((await api(nodes.b.adminUrl, 'GET', '/readyz', undefined)).body.degraded?.includes('redis') ? true : undefined));
    expect(stored).toBe(false);
    await redis.restart();
    await acked;
    await ready(signal, nodes.b, 'node b');
    await eventually(signal, 'the write made during the outage', async () => {
      const s = await api(nodes.a.httpUrl, 'GET', '/v1/hubs/c-redis-restart/shadow', shared.ADMIN_TOKEN);
      return s.body.devices?.t1?.reported?.n === 2 ? true : undefined;
    });
    expect(hub.connected).toBe(true);
    // the next step uses node c: its own Redis connections must be back (each node reconnects on
    // its own schedule; b being ready says nothing about c)
    await ready(signal, nodes.c, 'node c');
    // the registry and epochs survived (append-only file): a new connection takes the session over
    const again = await hubOnRetrying(nodes.c, 'c-redis-restart');
    expect(again.connected).toBe(true);
    expect((await hub.closed).code).toBe(4000);
  });
});

describe('cluster mode: two nodes on one port (SO_REUSEPORT)', () => {
  let nats: Backend;
  let redis: Backend;
  let nodes: ServerProcess[] = [];

  beforeAll(async () => {
    [nats, redis] = await Promise.all([startNats(), startRedis()]);
    const port = String(await freePort());
    const env = {
      NATS_URL: nats.url,
      REDIS_URL: redis.url,
      TIER_REDIS_PREFIX: uniquePrefix(),
      PORT: port,
      ADMIN_TOKEN: 'reuse-admin-token-0123456789',
      JWT_SECRET: 'reuse-jwt-secret-0123456789abcdef',
    };
    nodes = [await startServerProcess({ ...env, NODE_ID: 'node-r1' }), await startServerProcess({ ...env, NODE_ID: 'node-r2' })];
  }, 60_000);

  afterAll(async () => {
    await Promise.allSettled(nodes.map((n) => n.stop()));
    await Promise.allSettled([nats?.stop(), redis?.stop()]);
  });

  it('shares the port: hubs land on both nodes and every command reaches its hub', async () => {
    const [n1] = nodes;
    const token = 'reuse-admin-token-0123456789';
    const hubs: HubClient[] = [];
    for (let i = 0; i < 24; i++) {
      const res = await api(n1!.httpUrl, 'POST', '/v1/admin/hubs', token, { hubId: `r-${i}`, homeId: 'home-r' });
      const c = new HubClient({ url: n1!.wsUrl, hubId: `r-${i}`, secret: res.body.secret });
      await c.connect();
      hubs.push(c);
    }
    const holders = new Set<string>();
    for (let i = 0; i < 24; i++) {
      const status = await api(n1!.httpUrl, 'GET', `/v1/hubs/r-${i}`, token);
      holders.add(status.body.node);
      expect((await api(n1!.httpUrl, 'POST', `/v1/hubs/r-${i}/devices/d1/commands`, token, { set: { on: true } })).status).toBe(200);
    }
    expect([...holders].sort()).toEqual(['node-r1', 'node-r2']);
    await Promise.all(hubs.map((h) => h.close()));
  });
});
