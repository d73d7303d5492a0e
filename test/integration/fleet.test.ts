/**
 * Running a fleet, in both modes, with real node processes: the embedded default (one node, LMDB
 * in DATA_DIR) and a cluster (three nodes, one nats-server, one redis-server). The same steps run
 * over both; in the cluster each step's actions are spread over the nodes, so what one node does
 * must reach the others: 1,000 hubs provisioned in a batch, listed and searched a page at a time;
 * a hub held by another node disabled and its session closed within a second, commands to it
 * refused; a hub moved and the old home's users losing it, the new home's gaining it; a secret
 * rotated, the old one working during its grace period and failing after, a rotation retried with
 * its idempotency key on another node rotating nothing; a token revoked, its
 * open app socket closed and its next request refused on every node; the raw store holding no
 * hub secret in clear.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNats, startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import { HubClient } from '../../load/wire/hub-client.js';
import { AppSocket } from '../helpers/app-socket.js';
import { api, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

const ADMIN = 'fleet-int-admin-token-0123456789';
const JWT = 'fleet-int-jwt-secret-0123456789abcdef';
const FLEET = 1_000;

/** Polls until `check` holds; the test's timeout is the ceiling. */
async function until(check: () => Promise<boolean>): Promise<void> {
  while (!(await check().catch(() => false))) await new Promise((r) => setTimeout(r, 20));
}

/**
 * The steps, over `nodes()` (one node, or three). `rawStore` answers every byte the store holds,
 * as text, to look for secrets in it.
 */
function fleetSteps(mode: string, nodes: () => ServerProcess[], rawStore: () => Promise<string>): void {
  const at = (i: number) => nodes()[i % nodes().length]!;
  const admin = (i: number, method: string, path: string, body?: unknown) => api(at(i).httpUrl, method, path, ADMIN, body);
  const secrets = new Map<string, string>();
  const clients: HubClient[] = [];
  const hub = (i: number, hubId: string, secret = secrets.get(hubId)!) => {
    const c = new HubClient({ url: at(i).wsUrl, hubId, secret, heartbeat: false });
    clients.push(c);
    return c;
  };
  const token = async (sub: string, homes: string[]) => (await admin(0, 'POST', '/v1/admin/tokens', { sub, homes })).body.token as string;
  const p = mode === 'cluster' ? 'c' : 'e';

  afterAll(async () => {
    await Promise.allSettled(clients.map((c) => c.terminate()));
  });

  it(`provisions ${FLEET} hubs in one batch, then lists and searches them a page at a time (on another node)`, async () => {
    const items = Array.from({ length: FLEET }, (_, i) => ({ hubId: `${p}f-${String(i).padStart(4, '0')}`, homeId: `${p}home-${i % 10}`, model: i % 4 === 0 ? 'h4' : 'h2' }));
    const res = await admin(0, 'POST', '/v1/admin/hubs:batch', { hubs: items });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ created: FLEET, failed: 0 });
    for (const r of res.body.results) secrets.set(r.hubId, r.secret);
    const seen: string[] = [];
    let next: string | null = null;
    let pages = 0;
    do {
      const page = await admin(1, 'GET', `/v1/admin/hubs?prefix=${p}f-&limit=100${next ? `&after=${next}` : ''}`);
      expect(page.status).toBe(200);
      seen.push(...page.body.hubs.map((h: { hubId: string }) => h.hubId));
      next = page.body.next;
      pages++;
    } while (next !== null);
    expect(seen).toEqual(items.map((h) => h.hubId));
    expect(pages).toBeGreaterThanOrEqual(10);
    const search = await admin(2, 'GET', `/v1/admin/hubs?prefix=${p}f-09&home=${p}home-3&model=h2&limit=1000`);
    expect(search.body.hubs.map((h: { hubId: string }) => h.hubId)).toEqual(items.filter((h, i) => h.hubId.startsWith(`${p}f-09`) && i % 10 === 3 && i % 4 !== 0).map((h) => h.hubId));
    expect(search.body.next).toBeNull();
  });

  // the close is awaited, not timed: no timer closes a session for being disabled, only the
  // fleet's notice does, so the close code and reason say the notice arrived
  it('disables a hub held by another node: its session closes on the notice, commands to it are refused on every node', async () => {
    const id = `${p}f-0001`;
    const c = hub(1, id);
    await c.connect();
    expect((await admin(2, 'GET', `/v1/hubs/${id}`)).body).toMatchObject({ online: true });
    const bye = new Promise<{ e?: string }>((r) => c.once('bye', r));
    expect((await admin(0, 'PATCH', `/v1/admin/hubs/${id}`, { enabled: false })).status).toBe(200);
    const closed = await c.closed;
    expect(closed.code).toBe(4006);
    expect((await bye).e).toBe('hub_disabled');
    for (let i = 0; i < nodes().length; i++) {
      const cmd = await admin(i, 'POST', `/v1/hubs/${id}/devices/d1/commands`, { set: { on: true } });
      expect(cmd, `node ${i}`).toMatchObject({ status: 403, body: { code: 'hub_disabled' } });
    }
    await expect(hub(2, id).connect()).rejects.toMatchObject({ code: 'hub_disabled' });
    expect((await admin(1, 'GET', `/v1/admin/hubs?prefix=${id}&enabled=false`)).body.hubs.map((h: { hubId: string }) => h.hubId)).toEqual([id]);
  });

  it('moves a hub: the old home’s users lose it and the new home’s gain it on every node; its session reconnects into the new home', async () => {
    const id = `${p}f-0002`;
    const from = `${p}home-2`;
    const c = hub(2, id);
    await c.connect();
    const oldUser = await token(`${p}old`, [from]);
    const newUser = await token(`${p}new`, [`${p}moved-to`]);
    for (let i = 0; i < nodes().length; i++) {
      expect((await api(at(i).httpUrl, 'GET', `/v1/hubs/${id}`, oldUser)).status, `node ${i}`).toBe(200);
      expect((await api(at(i).httpUrl, 'GET', `/v1/hubs/${id}`, newUser)).status, `node ${i}`).toBe(403);
    }
    const moved = await admin(0, 'POST', `/v1/admin/hubs/${id}/move`, { homeId: `${p}moved-to` });
    expect(moved.body).toMatchObject({ from, hub: { homeId: `${p}moved-to` }, rules: [], scenes: [] });
    expect((await c.closed).code).toBe(4008);
    for (let i = 0; i < nodes().length; i++) {
      expect((await api(at(i).httpUrl, 'GET', `/v1/hubs/${id}`, oldUser)).status, `node ${i}`).toBe(403);
      expect((await api(at(i).httpUrl, 'GET', `/v1/hubs/${id}`, newUser)).status, `node ${i}`).toBe(200);
      expect((await api(at(i).httpUrl, 'GET', `/v1/homes/${p}moved-to/hubs`, newUser)).body.hubs.map((h: { hubId: string }) => h.hubId), `node ${i}`).toEqual([id]);
    }
    await c.connect(at(1).wsUrl);
    expect((await api(at(2).httpUrl, 'GET', `/v1/homes/${p}moved-to/hubs`, newUser)).body.hubs).toEqual([{ hubId: id, model: 'h2', enabled: true, online: true, devices: 0 }]);
  });

  it('rotates a secret: the old one works during the grace period and fails after, on every node', async () => {
    const id = `${p}f-0003`;
    const old = secrets.get(id)!;
    const res = await admin(1, 'POST', `/v1/admin/hubs/${id}/secret`, { graceS: 2 });
    expect(res.body).toMatchObject({ hubId: id, secretVersion: 2 });
    const fresh = res.body.secret as string;
    secrets.set(`${id}:new`, fresh);
    for (let i = 0; i < nodes().length; i++) {
      const c = hub(i, id, old);
      await c.connect();
      await c.terminate();
    }
    await until(async () => Date.now() > Date.parse(res.body.previousValidUntil));
    for (let i = 0; i < nodes().length; i++) {
      await expect(hub(i, id, old).connect(), `node ${i}`).rejects.toMatchObject({ code: 'bad_signature' });
      const c = hub(i, id, fresh);
      await c.connect();
      await c.terminate();
    }
  });

  it('a rotation retried with its idempotencyKey on another node (the first answer lost) rotates nothing: the secret the hub holds keeps its grace on every node', async () => {
    const id = `${p}f-0005`;
    const held = secrets.get(id)!;
    const body = { graceS: 86_400, idempotencyKey: `${p}rot-0005` };
    const first = await admin(0, 'POST', `/v1/admin/hubs/${id}/secret`, body);
    const retry = await admin(1, 'POST', `/v1/admin/hubs/${id}/secret`, body);
    expect(retry.status).toBe(200);
    expect(retry.body).toEqual({ ...first.body, repeated: true });
    expect(first.body).toMatchObject({ secretVersion: 2, previousVersion: 1, repeated: false });
    for (let i = 0; i < nodes().length; i++) {
      for (const secret of [held, first.body.secret as string]) {
        const c = hub(i, id, secret);
        await c.connect();
        await c.terminate();
      }
    }
  });

  // awaited, not timed: only the revocation notice closes a socket with token_revoked
  it('revokes a token: its open app socket is closed on the notice and its next request refused on every node', async () => {
    const user = await token(`${p}carol`, [`${p}home-4`]);
    const { jti } = JSON.parse(Buffer.from(user.split('.')[1]!, 'base64url').toString()) as { jti: string };
    const app = new AppSocket(`${at(1).wsUrl}/app/v1?token=${user}`);
    await app.opened();
    expect((await app.request({ op: 'sub', home: `${p}home-4` })).op).toBe('ok');
    expect((await admin(0, 'POST', '/v1/admin/tokens/revoke', { jti })).status).toBe(200);
    expect(await app.closed).toEqual({ code: 4007, reason: 'token_revoked' });
    for (let i = 0; i < nodes().length; i++) {
      expect((await api(at(i).httpUrl, 'GET', `/v1/homes/${p}home-4/hubs`, user)).body, `node ${i}`).toMatchObject({ code: 'unauthorized', message: 'token revoked' });
    }
  });

  it('deletes a hub: gone from the registry and the listing, its handshake refused', async () => {
    const id = `${p}f-0004`;
    const c = hub(0, id);
    await c.connect();
    expect((await admin(1, 'DELETE', `/v1/admin/hubs/${id}`)).body).toEqual({ ok: true, hubId: id, closed: true, rules: [], scenes: [] });
    expect((await c.closed).code).toBe(4006);
    expect((await admin(2, 'GET', `/v1/admin/hubs?prefix=${id}`)).body.hubs).toEqual([]);
    // as a wrong secret is: ids cannot be probed
    await expect(hub(2, id).connect()).rejects.toMatchObject({ code: 'bad_signature' });
  });

  it('the raw store holds no hub secret in clear', async () => {
    const raw = await rawStore();
    expect(raw.length).toBeGreaterThan(10_000);
    // the store does hold the hubs: their ids are there, their secrets are not
    expect(raw).toContain(`${p}f-0999`);
    const found = [...secrets.values()].filter((s) => raw.includes(s));
    expect(found).toEqual([]);
    expect(secrets.size).toBeGreaterThanOrEqual(FLEET);
  });
}

describe('fleet, embedded default (one node, LMDB on disk)', { timeout: 60_000 }, () => {
  let node: ServerProcess;
  beforeAll(async () => {
    node = await startServerProcess({ ADMIN_TOKEN: ADMIN, JWT_SECRET: JWT });
  }, 60_000);
  afterAll(async () => {
    await node?.stop();
  });

  fleetSteps('embedded', () => [node], async () => {
    // LMDB writes committed pages into the file: read every byte of it
    const text = readFileSync(join(node.dataDir, 'hubtier.mdb')).toString('latin1');
    // the sealing key is beside the store, not in it, and only the owner may read it
    expect(statSync(join(node.dataDir, 'secret.key')).mode & 0o777).toBe(0o600);
    return text;
  });
});

describe('fleet, cluster mode (three nodes, NATS, Redis)', { timeout: 60_000 }, () => {
  let nats: Backend;
  let redis: Backend;
  let nodes: ServerProcess[] = [];
  const prefix = uniquePrefix();
  beforeAll(async () => {
    [nats, redis] = await Promise.all([startNats(), startRedis()]);
    const env = { ADMIN_TOKEN: ADMIN, JWT_SECRET: JWT, NATS_URL: nats.url, REDIS_URL: redis.url, TIER_REDIS_PREFIX: prefix };
    nodes = await Promise.all(['a', 'b', 'c'].map((n) => startServerProcess({ ...env, NODE_ID: `fleet-${n}` })));
  }, 60_000);
  afterAll(async () => {
    await Promise.allSettled(nodes.map((n) => n.stop()));
    await Promise.allSettled([nats?.stop(), redis?.stop()]);
  });

  fleetSteps('cluster', () => nodes, async () => {
    // every key of the deployment's prefix and every value in it, whatever its type
    const client = new Redis(redis.url, { lazyConnect: true });
    await client.connect();
    try {
      const parts: string[] = [];
      let cursor = '0';
      do {
        const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1_000);
        cursor = next;
        for (const key of keys) {
          const type = await client.type(key);
          parts.push(key);
          if (type === 'string') parts.push((await client.get(key)) ?? '');
          else if (type === 'hash') parts.push(JSON.stringify(await client.hgetall(key)));
          else if (type === 'set') parts.push(JSON.stringify(await client.smembers(key)));
          else if (type === 'zset') parts.push(JSON.stringify(await client.zrange(key, 0, -1)));
          else if (type === 'list') parts.push(JSON.stringify(await client.lrange(key, 0, -1)));
        }
      } while (cursor !== '0');
      return parts.join('\n');
    } finally {
      client.disconnect();
    }
  });

  it('a node started after a revocation refuses the revoked token, and the revoked home of another, from its first request', async () => {
    const user = (await api(nodes[0]!.httpUrl, 'POST', '/v1/admin/tokens', ADMIN, { sub: 'late-dave', homes: ['h'] })).body.token as string;
    const member = (await api(nodes[0]!.httpUrl, 'POST', '/v1/admin/tokens', ADMIN, { sub: 'late-erin', homes: ['h', 'late-home'] })).body.token as string;
    expect((await api(nodes[0]!.httpUrl, 'POST', '/v1/admin/tokens/revoke', ADMIN, { sub: 'late-dave' })).status).toBe(200);
    expect((await api(nodes[0]!.httpUrl, 'POST', '/v1/admin/tokens/revoke', ADMIN, { home: 'late-home' })).status).toBe(200);
    const late = await startServerProcess({ ADMIN_TOKEN: ADMIN, JWT_SECRET: JWT, NATS_URL: nats.url, REDIS_URL: redis.url, TIER_REDIS_PREFIX: prefix, NODE_ID: 'fleet-d' });
    nodes.push(late);
    expect((await api(late.httpUrl, 'GET', '/v1/homes/h/hubs', user)).body).toMatchObject({ code: 'unauthorized', message: 'token revoked' });
    expect((await api(late.httpUrl, 'GET', '/v1/homes/late-home/hubs', member)).body).toMatchObject({ code: 'forbidden' });
    expect((await api(late.httpUrl, 'GET', '/v1/homes/h/hubs', member)).status).toBe(200);
  });
});
