/**
 * deploy/nats/nats-server.conf, the NATS users README "NATS is a trust boundary" recommends, on a
 * real nats-server: a node logged in as `hubtier` does all a node does (hub sessions, cross-node
 * commands, events, audit); `reader` reads events and cannot forge a takeover or a command;
 * `commander` sends commands and cannot close a hub's session.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, PermissionViolationError, type NatsConnection } from '@nats-io/transport-node';
import { startNats, startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import { HubClient } from '../../load/wire/hub-client.js';
import { subjects } from '../../proto/subjects.js';
import { decodeCommandReply, encodeCommandRequest } from '../../src/actors/command-wire.js';
import { encodeValue } from '../../src/protocol/codec.js';
import { api, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

const CONFIG = new URL('../../deploy/nats/nats-server.conf', import.meta.url).pathname;
const PASSWORDS = { HUBTIER_NATS_PASSWORD: 'hubtier-pw-permissions-test', READER_NATS_PASSWORD: 'reader-pw-permissions-test', COMMANDER_NATS_PASSWORD: 'commander-pw-permissions-test' };
const ADMIN = 'admin-token-nats-permissions-0123456789';
const JWT = 'jwt-secret-nats-permissions-0123456789ab';

describe('the NATS users of deploy/nats/nats-server.conf', { timeout: 90_000 }, () => {
  let nats: Backend;
  let redis: Backend;
  let nodes: ServerProcess[] = [];
  const hubs: HubClient[] = [];
  const clients: NatsConnection[] = [];

  beforeAll(async () => {
    // the config reads the passwords from the server's environment
    Object.assign(process.env, PASSWORDS);
    [nats, redis] = await Promise.all([startNats({ config: CONFIG }), startRedis()]);
    const natsUrl = `nats://hubtier:${PASSWORDS.HUBTIER_NATS_PASSWORD}@127.0.0.1:${nats.port}`;
    const env = { ADMIN_TOKEN: ADMIN, JWT_SECRET: JWT, NATS_URL: natsUrl, REDIS_URL: redis.url, TIER_REDIS_PREFIX: uniquePrefix() };
    nodes = await Promise.all(['a', 'b'].map((n) => startServerProcess({ ...env, NODE_ID: `perm-${n}` })));
  }, 60_000);
  afterAll(async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    await Promise.allSettled(hubs.map((h) => h.terminate()));
    await Promise.allSettled(nodes.map((n) => n.stop()));
    await Promise.allSettled([nats?.stop(), redis?.stop()]);
    for (const key of Object.keys(PASSWORDS)) delete process.env[key];
  });

  async function as(user: 'reader' | 'commander'): Promise<{ nc: NatsConnection; refused: PermissionViolationError[] }> {
    const pass = user === 'reader' ? PASSWORDS.READER_NATS_PASSWORD : PASSWORDS.COMMANDER_NATS_PASSWORD;
    const nc = await connect({ servers: `127.0.0.1:${nats.port}`, user, pass });
    clients.push(nc);
    const refused: PermissionViolationError[] = [];
    void (async () => {
      for await (const s of nc.status()) if (s.type === 'error' && s.error instanceof PermissionViolationError) refused.push(s.error);
    })();
    return { nc, refused };
  }

  /** A hub of a new home on node B, online. */
  async function hubOnB(hubId: string): Promise<HubClient> {
    const [a, b] = nodes as [ServerProcess, ServerProcess];
    const provisioned = await api(a.httpUrl, 'POST', '/v1/admin/hubs', ADMIN, { hubId, homeId: `home-${hubId}` });
    expect(provisioned.status).toBe(201);
    const hub = new HubClient({ url: b.wsUrl, hubId, secret: provisioned.body.secret });
    hubs.push(hub);
    await hub.connect();
    return hub;
  }

  it('a node logged in as hubtier does what a node does: sessions, a command across nodes, events', async () => {
    const { nc } = await as('reader');
    const events = nc.subscribe('evt.>');
    await nc.flush();
    const hub = await hubOnB('perm-hub-1');
    const cmd = await api(nodes[0]!.httpUrl, 'POST', '/v1/hubs/perm-hub-1/devices/lamp/commands', ADMIN, { set: { on: true } });
    expect(cmd).toMatchObject({ status: 200, body: { ok: true } });
    await hub.report({ lamp: { on: true } });
    // the reader hears the hub's events
    for await (const m of events) {
      if (m.subject.endsWith('.perm-hub-1')) break;
    }
  });

  it('reader can publish nothing: a forged takeover is refused by the server and the hub stays online', async () => {
    await hubOnB('perm-hub-2');
    const { nc, refused } = await as('reader');
    nc.publish(subjects.hubTakeover('perm-hub-2'), encodeValue({ epoch: 1_000_000, node: 'forger' }));
    await expect(nc.request(subjects.hubCommand('perm-hub-2'), encodeCommandRequest({ d: 'lamp', m: 'set', p: { on: false }, to: 1_000 }), { timeout: 2_000 })).rejects.toThrow();
    await nc.flush();
    expect(refused.map((e) => e.operation)).toContain('publish');
    // the hub's session was not taken: a command through the nodes still reaches it
    const cmd = await api(nodes[0]!.httpUrl, 'POST', '/v1/hubs/perm-hub-2/devices/lamp/commands', ADMIN, { set: { on: true } });
    expect(cmd).toMatchObject({ status: 200, body: { ok: true } });
  });

  it('commander runs commands and cannot close a session nor read other commands', async () => {
    await hubOnB('perm-hub-3');
    const { nc, refused } = await as('commander');
    const reply = await nc.request(subjects.hubCommand('perm-hub-3'), encodeCommandRequest({ d: 'lamp', m: 'set', p: { on: true }, to: 5_000 }), { timeout: 10_000 });
    expect(decodeCommandReply(reply.data)).toMatchObject({ ok: true });
    nc.publish(subjects.hubClose('perm-hub-3'), encodeValue({ e: 'hub_disabled' }));
    const spy = nc.subscribe('hub.>');
    await nc.flush();
    await expect((async () => {
      for await (const _ of spy) return 'read';
      return 'ended';
    })()).rejects.toBeInstanceOf(PermissionViolationError);
    expect(refused.map((e) => e.operation)).toContain('publish');
    const cmd = await api(nodes[0]!.httpUrl, 'POST', '/v1/hubs/perm-hub-3/devices/lamp/commands', ADMIN, { set: { on: false } });
    expect(cmd).toMatchObject({ status: 200, body: { ok: true } });
  });
});
