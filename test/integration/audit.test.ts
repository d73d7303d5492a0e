/**
 * The audit trail with real node processes. In a cluster (two nodes, one nats-server, one
 * redis-server): a command sent through node A to a hub held by node B is read back from node B's
 * audit API with its actor, target, address, handling node and outcome, and the home's user reads
 * it there too. In the embedded default (one node, LMDB in DATA_DIR): the entries survive a
 * SIGTERM and a start on the same directory.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDataDir, startNats, startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import { HubClient } from '../../load/wire/hub-client.js';
import type { AuditEntry } from '../../proto/subjects.js';
import { api, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

const ADMIN = `audit-admin-${randomBytes(12).toString('hex')}`;
const JWT = `audit-jwt-${randomBytes(16).toString('hex')}`;

/** Polls until `check` holds; the test's timeout is the ceiling. */
async function until(check: () => Promise<boolean>): Promise<void> {
  while (!(await check().catch(() => false))) await new Promise((r) => setTimeout(r, 20));
}

describe('audit trail, cluster mode (two nodes, NATS, Redis)', { timeout: 60_000 }, () => {
  let nats: Backend;
  let redis: Backend;
  let nodes: ServerProcess[] = [];
  const clients: HubClient[] = [];
  beforeAll(async () => {
    [nats, redis] = await Promise.all([startNats(), startRedis()]);
    const env = { ADMIN_TOKEN: ADMIN, JWT_SECRET: JWT, NATS_URL: nats.url, REDIS_URL: redis.url, TIER_REDIS_PREFIX: uniquePrefix() };
    nodes = await Promise.all(['a', 'b'].map((n) => startServerProcess({ ...env, NODE_ID: `audit-${n}` })));
  }, 60_000);
  afterAll(async () => {
    await Promise.allSettled(clients.map((c) => c.terminate()));
    await Promise.allSettled(nodes.map((n) => n.stop()));
    await Promise.allSettled([nats?.stop(), redis?.stop()]);
  });

  it('a command through node A to a hub held by node B is read back from node B, by the admin and by the home’s user', async () => {
    const [a, b] = nodes as [ServerProcess, ServerProcess];
    const provisioned = await api(a.httpUrl, 'POST', '/v1/admin/hubs', ADMIN, { hubId: 'x-hub', homeId: 'x-home' });
    expect(provisioned.status).toBe(201);
    const hub = new HubClient({ url: b.wsUrl, hubId: 'x-hub', secret: provisioned.body.secret });
    clients.push(hub);
    await hub.connect();
    expect((await api(a.httpUrl, 'GET', '/v1/hubs/x-hub', ADMIN)).body).toMatchObject({ online: true, node: 'audit-b' });
    const carol = (await api(a.httpUrl, 'POST', '/v1/admin/tokens', ADMIN, { sub: 'carol', homes: ['x-home'] })).body.token as string;

    const cmd = await api(a.httpUrl, 'POST', '/v1/hubs/x-hub/devices/lamp/commands', carol, { set: { on: true } });
    expect(cmd).toMatchObject({ status: 200, body: { ok: true } });
    const refused = await api(a.httpUrl, 'POST', '/v1/hubs/x-hub/devices/lamp/commands', carol, { method: 'blink' });
    expect(refused.body).toMatchObject({ code: 'command_failed' });

    // node A writes its entries in the turn after it answered: node B has them once that write lands
    let entries: AuditEntry[] = [];
    await until(async () => {
      const page = await api(b.httpUrl, 'GET', '/v1/admin/audit?hubId=x-hub&action=command', ADMIN);
      expect(page.status).toBe(200);
      entries = page.body.entries;
      return entries.length === 2;
    });
    expect(entries.map((e) => e.outcome)).toEqual(['command_failed', 'ok']);
    expect(entries[1]).toEqual({
      id: expect.any(String),
      at: expect.any(Number),
      actor: { kind: 'user', sub: 'carol' },
      from: { ip: expect.stringMatching(/127\.0\.0\.1|7f00:0{0,3}1$|^[0:]*1$/), node: 'audit-a' },
      action: 'command',
      homeId: 'x-home',
      hubId: 'x-hub',
      deviceId: 'lamp',
      outcome: 'ok',
      requestId: expect.any(String),
      detail: 'set on',
    });
    expect(entries[0]).toMatchObject({ actor: { sub: 'carol' }, detail: 'blink', from: { node: 'audit-a' } });
    const mine = await api(b.httpUrl, 'GET', '/v1/homes/x-home/audit?actor=carol', carol);
    expect(mine.body.entries.map((e: AuditEntry) => e.id)).toEqual(entries.map((e) => e.id));
    // the provisioning by the admin through node A, read on node B too
    const fleet = await api(b.httpUrl, 'GET', '/v1/admin/audit?action=hub.&homeId=x-home', ADMIN);
    expect(fleet.body.entries).toMatchObject([{ actor: { kind: 'admin' }, action: 'hub.provision', hubId: 'x-hub', outcome: 'ok', from: { node: 'audit-a' } }]);
    // a settings change says what it set: an alarm that moved an hour is traced to its zone
    expect((await api(a.httpUrl, 'PUT', '/v1/homes/x-home/settings', carol, { timeZone: 'America/New_York' })).status).toBe(200);
    await until(async () => (await api(b.httpUrl, 'GET', '/v1/homes/x-home/audit?action=settings.set', carol)).body.entries.length === 1);
    const set = await api(b.httpUrl, 'GET', '/v1/homes/x-home/audit?action=settings.set', carol);
    expect(set.body.entries).toMatchObject([{ actor: { sub: 'carol' }, action: 'settings.set', outcome: 'ok', detail: 'timeZone America/New_York' }]);
  });
});

describe('audit trail, embedded default (LMDB on disk)', { timeout: 60_000 }, () => {
  const dataDir = freshDataDir();
  const start = () => startServerProcess({ DATA_DIR: dataDir, ADMIN_TOKEN: ADMIN, JWT_SECRET: JWT });
  let node: ServerProcess | undefined;
  afterAll(async () => {
    await node?.stop();
  });

  it('entries survive a SIGTERM and a start on the same DATA_DIR, newest first, with the cursor', async () => {
    node = await start();
    for (let i = 0; i < 5; i++) expect((await api(node.httpUrl, 'POST', '/v1/admin/hubs', ADMIN, { hubId: `d-hub-${i}`, homeId: 'd-home' })).status).toBe(201);
    expect((await api(node.httpUrl, 'POST', '/v1/admin/hubs', ADMIN, { hubId: 'd-hub-0', homeId: 'd-home' })).body).toMatchObject({ code: 'already_exists' });
    const before = (await api(node.httpUrl, 'GET', '/v1/admin/audit?homeId=d-home', ADMIN)).body.entries as AuditEntry[];
    expect(before.map((e) => `${e.hubId} ${e.outcome}`)).toEqual(['d-hub-0 already_exists', 'd-hub-4 ok', 'd-hub-3 ok', 'd-hub-2 ok', 'd-hub-1 ok', 'd-hub-0 ok']);
    await node.stop();

    node = await start();
    const after: AuditEntry[] = [];
    let next: string | null = null;
    do {
      const page = await api(node.httpUrl, 'GET', `/v1/admin/audit?homeId=d-home&limit=4${next ? `&cursor=${encodeURIComponent(next)}` : ''}`, ADMIN);
      after.push(...page.body.entries);
      next = page.body.next;
    } while (next !== null);
    expect(after).toEqual(before);
  });
});
