/**
 * The app client library against a real node process: a JWT as the bearer subprotocol, commands
 * answered by a simulated hub (results, hub refusals, offline, timeout), events, and reconnecting
 * after the node restarts on the same port and data.
 */
import WebSocket from 'ws';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppEventMessage } from '../../proto/app.js';
import { HubClient } from '../../load/wire/hub-client.js';
import { ClientError, HubtierClient, type ClientOptions, type ConnectionState, type ReloadInfo } from '../../src/client/index.js';
import { Inbox } from '../helpers/fake-app-server.js';
import { api, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

const HOME = 'home-c';

describe('app client library against a real node', () => {
  let server: ServerProcess;
  const hubs: HubClient[] = [];
  const clients: HubtierClient[] = [];
  const secrets = new Map<string, string>();
  let count = 0;

  const mint = (secret: string, homes = [HOME]) =>
    new SignJWT({ homes }).setProtectedHeader({ alg: 'HS256' }).setSubject('carol').setExpirationTime('1h').sign(new TextEncoder().encode(secret));

  async function provision(name: string): Promise<string> {
    const hubId = `cl-${name}-${++count}`;
    const res = await api(server.httpUrl, 'POST', '/v1/admin/hubs', server.adminToken, { hubId, homeId: HOME });
    expect(res.status).toBe(201);
    secrets.set(hubId, res.body.secret);
    return hubId;
  }

  async function online(hubId: string): Promise<HubClient> {
    const hub = new HubClient({ url: server.wsUrl, hubId, secret: secrets.get(hubId)! });
    hubs.push(hub);
    await hub.connect();
    return hub;
  }

  function client(extra: Partial<ClientOptions> = {}): { c: HubtierClient; states: Inbox<ConnectionState> } {
    const states = new Inbox<ConnectionState>();
    const c = new HubtierClient({ url: server.wsUrl, token: () => mint(server.jwtSecret), WebSocket, backoff: { initialMs: 50, maxMs: 400 }, onState: states.push, ...extra });
    clients.push(c);
    return { c, states };
  }

  beforeAll(async () => {
    server = await startServerProcess();
  });

  afterAll(async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    await Promise.allSettled(hubs.map((h) => h.terminate()));
    expect(await server.stop()).toBe(0);
  });

  it('connects with a JWT as the bearer subprotocol, after a refused token asks the function again', async () => {
    const tokens = [mint('not-the-node-secret-0123456789abcdef'), mint(server.jwtSecret)];
    const { c, states } = client({ token: () => tokens.shift()! });
    const refused = await states.next((s) => s.state === 'closed');
    expect(refused).toMatchObject({ unauthorized: true });
    await states.next((s) => s.state === 'open');
    const mine = c.subscribe(HOME, { onEvent() {} });
    expect(await mine.ready).toMatchObject({ home: HOME });
    const theirs = c.subscribe('home-other', { onEvent() {} });
    expect(await theirs.ready.catch((e: unknown) => e)).toMatchObject({ code: 'forbidden', num: 201, temporary: false });
  });

  it('delivers a hub’s reports to a subscribed home as typed events', async () => {
    const hubId = await provision('events');
    const { c } = client();
    const events = new Inbox<AppEventMessage>();
    await c.subscribe(HOME, { onEvent: events.push }).ready;
    const hub = await online(hubId);
    await hub.report({ t1: { temperature: 21.5 } });
    const evt = await events.next((e) => e.kind === 'state' && e.hub === hubId);
    expect(evt).toMatchObject({ op: 'evt', kind: 'state', home: HOME, hub: hubId, device: 't1', attrs: { temperature: 21.5 } });
  });

  it('resolves a command with the hub’s result, and rejects with the hub’s refusal', async () => {
    const hubId = await provision('cmd');
    const hub = await online(hubId);
    const { c } = client();
    expect(await c.command(hubId, 'lamp', { set: { on: true, level: 40 } })).toEqual({ on: true, level: 40 });
    hub.onCommand((cmd) => (cmd.m === 'calibrate' ? { ok: false, e: 'jammed', msg: 'motor jammed' } : hub.defaultHandler(cmd)));
    const err = await c.command(hubId, 'lamp', { method: 'calibrate', params: { steps: 3 } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClientError);
    expect(err).toMatchObject({ code: 'command_failed', num: 403, temporary: false, hubCode: 'jammed' });
    const bad = await c.command(hubId, 'lamp', { set: { on: true } }, { timeoutMs: 60_001 }).catch((e: unknown) => e);
    expect(bad).toMatchObject({ code: 'invalid_field', field: 'timeoutMs' });
  });

  it('rejects a command to an offline hub with hub_offline, and one the hub never answers with command_timeout', async () => {
    const offId = await provision('off');
    const slowId = await provision('slow');
    const slow = await online(slowId);
    slow.onCommand(() => new Promise(() => {}));
    const { c } = client({ commandMarginMs: 5_000 });
    expect(await c.command(offId, 'd1', { set: { on: true } }).catch((e: unknown) => e)).toMatchObject({ code: 'hub_offline', num: 400, temporary: true });
    // the server's own timeout answers first (the margin is far longer)
    const late = await c.command(slowId, 'd1', { set: { on: true } }, { timeoutMs: 200 }).catch((e: unknown) => e);
    expect(late).toMatchObject({ code: 'command_timeout', num: 401, temporary: true });
    expect((late as Error).message).not.toMatch(/no answer within/);
  });

  it('reconnects after the node restarts on the same port, resubscribes, and events flow again', async () => {
    const hubId = await provision('restart');
    const { c, states } = client();
    const events = new Inbox<AppEventMessage>();
    const reloads = new Inbox<ReloadInfo>();
    await c.subscribe(HOME, { onEvent: events.push, onReload: reloads.push }).ready;
    const hub = await online(hubId);
    const reported = (n: number) => events.next((e) => e.kind === 'state' && e.hub === hubId && e.attrs.n === n);
    await hub.report({ s1: { n: 1 } });
    await reported(1);

    const { port, adminToken, jwtSecret, dataDir } = server;
    // hubs first: a node stopping with hubs online gives them up to 5 s to leave
    await Promise.all(hubs.map((h) => h.terminate()));
    expect(await server.stop()).toBe(0);
    // a stopped node ends app sockets with its process (no close frame): 1006
    expect(await states.next((s) => s.state === 'closed')).toMatchObject({ state: 'closed', unauthorized: false });
    server = await startServerProcess({ PORT: String(port), ADMIN_TOKEN: adminToken, JWT_SECRET: jwtSecret, DATA_DIR: dataDir });
    await states.next((s) => s.state === 'open', 2);

    await hub.connect(); // the hub, its secret kept on disk by the node, comes back too
    await hub.report({ s1: { n: 2 } });
    await reported(2);
    // this node keeps no event history: the client could not know what it missed, so it said reload
    expect(reloads.items).toEqual([{ reason: 'unavailable', pos: null }]);
    expect(events.items.filter((e) => e.hub === hubId && e.kind === 'state').map((e) => (e.kind === 'state' ? e.attrs.n : null))).toEqual([1, 2]);
  });
});
