/**
 * Who may reach a hub, on a node started in-process on the memory ports: a user's token reaches the
 * hubs of its homes only, on every hub route; a disabled hub is refused at the handshake.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { HubClient } from '../../load/wire/hub-client.js';
import type { HubRecord } from '../../src/ports/hub-registry/hub-registry.js';
import { startInProcessNode, type InProcessNode } from '../helpers/in-process-node.js';
import type { Ports } from '../../src/ports/ports.js';
import { api } from '../helpers/server-process.js';

const ADMIN = 'access-admin-token-0123456789';

let node: InProcessNode;
let ports: Ports;
let http: string;
let wsUrl: string;
const clients: HubClient[] = [];
let hubs = 0;

beforeAll(async () => {
  node = await startInProcessNode(ADMIN, 'access-jwt-secret-0123456789abcdef');
  ({ ports, http, wsUrl } = node);
});

afterAll(async () => {
  await node?.server.close();
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.terminate()));
});

/** A hub of its own for the calling test, written to the registry directly. */
async function hub(homeId: string, over: Partial<HubRecord> = {}): Promise<HubRecord> {
  const record: HubRecord = { hubId: `acc-${++hubs}`, homeId, model: undefined, secret: `secret-${hubs}-0123456789`, enabled: true, createdAt: Date.now(), ...over };
  await ports.registry.create(record);
  return record;
}

/** A user token for `homes`, issued by the admin API. */
async function userToken(homes: string[]): Promise<string> {
  const res = await api(http, 'POST', '/v1/admin/tokens', ADMIN, { sub: 'user-1', homes });
  expect(res.status).toBe(201);
  return res.body.token as string;
}

function client(record: HubRecord): HubClient {
  const c = new HubClient({ url: wsUrl, hubId: record.hubId, secret: record.secret });
  clients.push(c);
  return c;
}

describe('a user token of home A', () => {
  it('gets 403 forbidden on every hub route of a hub in home B, and changes nothing there', async () => {
    const theirs = await hub('home-b');
    const token = await userToken(['home-a']);
    const base = `/v1/hubs/${theirs.hubId}`;
    const calls: Array<[method: string, path: string, body?: unknown]> = [
      ['GET', base],
      ['GET', `${base}/shadow`],
      ['PUT', `${base}/devices/d1/desired`, { desired: { on: true } }],
      ['POST', `${base}/devices/d1/commands`, { set: { on: true } }],
    ];
    for (const [method, path, body] of calls) {
      expect(await api(http, method, path, token, body), `${method} ${path}`).toMatchObject({ status: 403, body: { ok: false, code: 'forbidden', num: 201 } });
    }
    expect(await ports.shadows.load(theirs.hubId)).toEqual({});
  });

  it('reaches the same routes of a hub in home A (the 403 above is about the home)', async () => {
    const mine = await hub('home-a');
    const token = await userToken(['home-a']);
    const base = `/v1/hubs/${mine.hubId}`;
    expect(await api(http, 'GET', base, token)).toMatchObject({ status: 200, body: { hubId: mine.hubId, homeId: 'home-a', online: false } });
    expect(await api(http, 'PUT', `${base}/devices/d1/desired`, token, { desired: { on: true } })).toMatchObject({ status: 200, body: { ok: true } });
    expect(await api(http, 'GET', `${base}/shadow`, token)).toMatchObject({ status: 200, body: { devices: { d1: { desired: { on: true } } } } });
    // offline: the command gets as far as the bus
    expect(await api(http, 'POST', `${base}/devices/d1/commands`, token, { set: { on: true } })).toMatchObject({ status: 409, body: { code: 'hub_offline' } });
  });

  it('cannot tell an unknown hub from one of another home on any hub route, while the admin gets 404', async () => {
    const theirs = await hub('home-b');
    const token = await userToken(['home-a']);
    const routes: Array<[method: string, path: string, body?: unknown]> = [
      ['GET', ''],
      ['GET', '/shadow'],
      ['PUT', '/devices/d1/desired', { desired: { on: true } }],
      ['POST', '/devices/d1/commands', { set: { on: true } }],
    ];
    for (const [method, path, body] of routes) {
      const unknown = await api(http, method, `/v1/hubs/acc-never-provisioned${path}`, token, body);
      const foreign = await api(http, method, `/v1/hubs/${theirs.hubId}${path}`, token, body);
      expect(unknown).toMatchObject({ status: 403, body: { code: 'forbidden' } });
      // the same answer but for the id the caller sent: nothing names the other home
      expect(JSON.stringify(foreign.body).replaceAll(theirs.hubId, 'ID'), `${method} ${path}`).toBe(JSON.stringify(unknown.body).replaceAll('acc-never-provisioned', 'ID'));
    }
    expect(await api(http, 'GET', '/v1/hubs/acc-never-provisioned', ADMIN)).toMatchObject({ status: 404, body: { code: 'not_found' } });
  });
});

describe('a disabled hub', () => {
  it('is refused at the handshake with 403 hub_disabled, and admitted again once re-enabled', async () => {
    const record = await hub('home-d');
    expect(await ports.registry.setEnabled(record.hubId, false)).toBe(true);
    const refused = await client(record)
      .connect()
      .then(
        () => null,
        (err: unknown) => err,
      );
    expect(refused).toMatchObject({ name: 'HubClientError', status: 403, code: 'hub_disabled' });
    expect(node.server.sessions.has(record.hubId)).toBe(false);

    expect(await ports.registry.setEnabled(record.hubId, true)).toBe(true);
    const welcome = await client(record).connect();
    expect(welcome.ep).toBeGreaterThan(0);
    expect(node.server.sessions.has(record.hubId)).toBe(true);
  });

  it('is told bad_signature, not hub_disabled, when the signature does not verify', async () => {
    const record = await hub('home-d', { enabled: false });
    const forged = client({ ...record, secret: 'not-the-secret-0123456789' });
    await expect(forged.connect()).rejects.toMatchObject({ status: 401, code: 'bad_signature' });
  });
});
