/**
 * The app client library against a real node process: a JWT as the bearer subprotocol (one of
 * 30 KB too), commands answered by a simulated hub (results, hub refusals, offline, timeout), events,
 * resuming from a stored position, and reconnecting after the node restarts on the same port and
 * data, after the node closed it at its token's exp or took a home from its token, or after
 * attempts that hung (the network's or the token function's).
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_SUBPROTOCOL, type AppEventMessage, type Position } from '../../proto/app.js';
import { FrameType } from '../../proto/frames.js';
import { HubClient } from '../../load/wire/hub-client.js';
import { CONNECT_TIMEOUT_CLOSE, ClientError, HubtierClient, type ClientOptions, type ConnectionState, type ReloadInfo, type SubResult } from '../../src/client/index.js';
import { Inbox } from '../helpers/fake-app-server.js';
import { api, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

const HOME = 'home-c';

/**
 * A TCP port that accepts connections and never answers them (a black-holed network, a frozen
 * node) until `heal()`; from then on new connections are piped to `target`.
 */
async function blackHole(target: number) {
  const held: net.Socket[] = [];
  const released = new Inbox<net.Socket>();
  let healed = false;
  const server = net.createServer((c) => {
    c.on('error', () => {});
    if (!healed) {
      held.push(c);
      // read (and drop) the upgrade request: a paused socket would not see the client's close
      c.resume();
      c.on('close', () => released.push(c));
      return;
    }
    const up = net.connect(target, '127.0.0.1');
    up.on('error', () => c.destroy());
    c.on('close', () => up.destroy());
    c.pipe(up).pipe(c);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `ws://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    held,
    released,
    heal: () => (healed = true),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Every positioned event one after the other in one epoch: nothing missed, nothing twice. */
function expectContiguous(events: AppEventMessage[]): void {
  const positions = events.flatMap((e) => (e.pos ? [e.pos] : []));
  expect(positions.length).toBeGreaterThan(1);
  positions.forEach((p, i) => i > 0 && expect(p).toEqual({ epoch: positions[0]!.epoch, offset: positions[i - 1]!.offset + 1 }));
}

describe('app client library against a real node', () => {
  let server: ServerProcess;
  const hubs: HubClient[] = [];
  const clients: HubtierClient[] = [];
  const secrets = new Map<string, string>();
  let count = 0;

  const mint = (secret: string, homes = [HOME], lifetime = '1h') =>
    new SignJWT({ homes }).setProtectedHeader({ alg: 'HS256' }).setSubject('carol').setExpirationTime(lifetime).sign(new TextEncoder().encode(secret));

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

  /** A client whose sockets the test can see (the subprotocol the node answered with). */
  function trackedClient(extra: Partial<ClientOptions> = {}) {
    const sockets: WebSocket[] = [];
    class Tracked extends WebSocket {
      constructor(url: string, protocols?: string | string[]) {
        super(url, protocols);
        sockets.push(this);
      }
    }
    return { ...client({ WebSocket: Tracked, ...extra }), sockets };
  }

  /**
   * A client whose socket the test can cut as a network would (`cut`: the client sees 1006 and
   * waits for a token), and whose next token is held back until `back()`, so that events happen
   * while it is away.
   */
  function awayClient() {
    let back: () => void = () => {};
    const held = new Promise<void>((resolve) => (back = resolve));
    let attempts = 0;
    const token = async () => {
      if (attempts++ > 0) await held;
      return mint(server.jwtSecret);
    };
    const { c, states, sockets } = trackedClient({ token });
    return {
      c,
      states,
      sockets,
      async cut() {
        sockets[sockets.length - 1]!.terminate();
        await states.next((s) => s.state === 'connecting', 2);
      },
      back: () => back(),
    };
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
    expect((err as ClientError).hubTemporary).toBeUndefined();
    // an error frame the hub marks temporary (busy): the caller learns it may send the same again
    hub.onCommand(() => new Promise(() => {}));
    hub.on('frame', (f) => {
      if (f.t === FrameType.command && f.m === 'calibrate') hub.sendFrame({ t: FrameType.error, c: 503, e: 'busy', tmp: true, ref: f.id });
    });
    const busy = await c.command(hubId, 'lamp', { method: 'calibrate', params: { steps: 3 } }).catch((e: unknown) => e);
    expect(busy).toMatchObject({ code: 'command_failed', temporary: false, hubCode: 'busy', hubTemporary: true });
    hub.onCommand((cmd) => hub.defaultHandler(cmd));
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

  it('recovers exactly the events it missed while its socket was down, in order, then live ones', async () => {
    const hubId = await provision('recover');
    const hub = await online(hubId);
    const away = awayClient();
    const { c } = away;
    const events = new Inbox<AppEventMessage>();
    const reloads = new Inbox<ReloadInfo>();
    const answers = new Inbox<SubResult>();
    await c.subscribe(HOME, { onEvent: events.push, onReload: reloads.push, onSubscribed: answers.push }).ready;
    const mine = () => events.items.filter((e) => e.hub === hubId && e.kind === 'state').map((e) => (e.kind === 'state' ? e.attrs.n : null));
    await hub.report({ s1: { n: 1 } });
    await events.next((e) => e.kind === 'state' && e.hub === hubId && e.attrs.n === 1);
    const before = events.items.length;

    await away.cut();
    for (let n = 2; n <= 4; n++) await hub.report({ s1: { n } }); // acknowledged: stored in the history
    expect(events.items.length).toBe(before);
    away.back();

    const answer = await answers.next(() => true, 2);
    expect(answer).toMatchObject({ home: HOME, recovered: true });
    await events.next((e) => e.kind === 'state' && e.hub === hubId && e.attrs.n === 4);
    await hub.report({ s1: { n: 5 } });
    await events.next((e) => e.kind === 'state' && e.hub === hubId && e.attrs.n === 5);
    expect(mine()).toEqual([1, 2, 3, 4, 5]);
    expect(reloads.items).toEqual([]);
    expectContiguous(events.items);
    expect(away.sockets).toHaveLength(2);
  });

  it('when its token expires (4007 token_expired) asks the function for a fresh one and recovers what it missed meanwhile', async () => {
    const hubId = await provision('expiry');
    const hub = await online(hubId);
    let back: () => void = () => {};
    const held = new Promise<void>((resolve) => (back = resolve));
    let minted = 0;
    // a token of 2 s first; the next one is held back until the test has reported while the app was away
    const token = async () => {
      if (minted++ === 0) return mint(server.jwtSecret, [HOME], '2s');
      await held;
      return mint(server.jwtSecret);
    };
    const { c, states } = client({ token });
    const events = new Inbox<AppEventMessage>();
    const answers = new Inbox<SubResult>();
    await c.subscribe(HOME, { onEvent: events.push, onSubscribed: answers.push }).ready;
    await hub.report({ s1: { n: 1 } });
    await events.next((e) => e.kind === 'state' && e.hub === hubId && e.attrs.n === 1);

    expect(await states.next((s) => s.state === 'closed')).toMatchObject({ code: 4007, reason: 'token_expired', unauthorized: true });
    await states.next((s) => s.state === 'connecting', 2);
    await hub.report({ s1: { n: 2 } });
    back();

    await states.next((s) => s.state === 'open', 2);
    expect(minted).toBe(2);
    expect(await answers.next(() => true, 2)).toMatchObject({ home: HOME, recovered: true });
    await hub.report({ s1: { n: 3 } });
    await events.next((e) => e.kind === 'state' && e.hub === hubId && e.attrs.n === 3);
    expect(events.items.filter((e) => e.hub === hubId && e.kind === 'state').map((e) => (e.kind === 'state' ? e.attrs.n : null))).toEqual([1, 2, 3]);
    expectContiguous(events.items);
  });

  it('when a home is taken from its token (a revocation by home) ends that subscription forbidden and keeps the socket and the other home', async () => {
    // tokens without iat count as issued at 0: the revocation covers each of them
    const { c, states } = client({ token: () => mint(server.jwtSecret, ['home-kept-c', 'home-taken-c']) });
    const keptAnswers = new Inbox<SubResult>();
    const takenErrors = new Inbox<unknown>();
    const kept = c.subscribe('home-kept-c', { onEvent() {}, onSubscribed: keptAnswers.push });
    const taken = c.subscribe('home-taken-c', { onEvent() {}, onError: takenErrors.push });
    await Promise.all([kept.ready, taken.ready]);
    await states.next((s) => s.state === 'open');
    expect((await api(server.httpUrl, 'POST', '/v1/admin/tokens/revoke', server.adminToken, { home: 'home-taken-c' })).status).toBe(200);
    // the server's `end`: the subscription ends as a refused one does, on the same socket
    expect(await takenErrors.next(() => true)).toMatchObject({ code: 'forbidden', temporary: false });
    await expect(taken.ready).resolves.toMatchObject({ home: 'home-taken-c' });
    await expect(c.subscribe('home-taken-c', { onEvent() {} }).ready).rejects.toMatchObject({ code: 'forbidden' });
    expect(await c.subscribe('home-kept-c', { onEvent() {} }).ready).toMatchObject({ home: 'home-kept-c' });
    expect(states.items.filter((s) => s.state === 'closed')).toEqual([]);
    expect(keptAnswers.items).toHaveLength(1);
  });

  it('tells the app to reload when it missed more than the history keeps, and goes on from the position given', async () => {
    const hubId = await provision('too-old');
    const hub = await online(hubId);
    const away = awayClient();
    const events = new Inbox<AppEventMessage>();
    const reloads = new Inbox<ReloadInfo>();
    await away.c.subscribe(HOME, { onEvent: events.push, onReload: reloads.push }).ready;
    await hub.report({ s1: { n: 0 } });
    await events.next((e) => e.kind === 'state' && e.hub === hubId && e.attrs.n === 0);

    await away.cut();
    // the node keeps 100 events per home (TIER_HISTORY_SIZE's default)
    for (let n = 1; n <= 110; n++) await hub.report({ s1: { n } });
    away.back();

    const reload = await reloads.next(() => true);
    expect(reload).toMatchObject({ reason: 'too_old', pos: { epoch: expect.any(String), offset: expect.any(Number) } });
    await hub.report({ s1: { n: 111 } });
    const live = await events.next((e) => e.kind === 'state' && e.hub === hubId && e.attrs.n === 111);
    // none of the missed events was delivered; the next one continues right after the reload's position
    expect(events.items.filter((e) => e.hub === hubId && e.kind === 'state').map((e) => (e.kind === 'state' ? e.attrs.n : null))).toEqual([0, 111]);
    expect(live.pos).toEqual({ epoch: reload.pos!.epoch, offset: reload.pos!.offset + 1 });
  });

  it('connects with a token of 2,000 homes (30 KB): the node answers with the fixed subprotocol, not the token', async () => {
    const homes = [HOME, ...Array.from({ length: 1_999 }, (_, i) => `home-${i}`)];
    const minted = await api(server.httpUrl, 'POST', '/v1/admin/tokens', server.adminToken, { sub: 'big-carol', homes });
    expect(minted.status).toBe(201);
    const token = minted.body.token as string;
    // past Node's 16 KiB for a response's headers, had the node echoed the bearer subprotocol
    expect(token.length).toBeGreaterThan(30_000);
    const { c, states, sockets } = trackedClient({ token });
    expect(await states.next((s) => s.state !== 'connecting')).toEqual({ state: 'open' });
    expect(sockets[0]!.protocol).toBe(APP_SUBPROTOCOL);
    expect(await c.subscribe(HOME, { onEvent() {} }).ready).toMatchObject({ home: HOME });
  });

  it('connects with an admin token as `openssl rand -base64 32` makes them (/ + =): sent as bearer64, which a subprotocol can carry', async () => {
    // a WebSocket constructor throws on '/' or '=' in a subprotocol, with the token in its message
    const adminToken = 'q+8/ZmVkY2JhOTg3NjU0MzIxMC9hYmNkZWYrZ2hpams=';
    expect(() => new WebSocket('ws://127.0.0.1:1', [`bearer.${adminToken}`])).toThrow(/invalid/i);
    const node = await startServerProcess({ ADMIN_TOKEN: adminToken });
    try {
      const states = new Inbox<ConnectionState>();
      const c = new HubtierClient({ url: node.wsUrl, token: adminToken, WebSocket, onState: states.push });
      clients.push(c);
      expect(await states.next((s) => s.state !== 'connecting')).toEqual({ state: 'open' });
      expect(await c.subscribe(HOME, { onEvent() {} }).ready).toMatchObject({ home: HOME });
      await c.close();
    } finally {
      await node.stop();
    }
  });

  it('resumes from a stored position with subscribe(home, handlers, {since}): what was missed, then live, no reload', async () => {
    const hubId = await provision('since');
    const hub = await online(hubId);
    const first = client();
    const seen = new Inbox<AppEventMessage>();
    const sub = first.c.subscribe(HOME, { onEvent: seen.push });
    await sub.ready;
    await hub.report({ s1: { n: 1 } });
    await seen.next((e) => e.kind === 'state' && e.hub === hubId && e.attrs.n === 1);
    // a service stores where it is, stops, and starts again later: events happen meanwhile
    const stored: Position = JSON.parse(JSON.stringify(sub.position));
    await first.c.close();
    for (let n = 2; n <= 3; n++) await hub.report({ s1: { n } });

    const { c } = client();
    const events = new Inbox<AppEventMessage>();
    const reloads = new Inbox<ReloadInfo>();
    const resumed = c.subscribe(HOME, { onEvent: events.push, onReload: reloads.push }, { since: stored });
    expect(await resumed.ready).toEqual({ home: HOME, pos: stored, recovered: true });
    await events.next((e) => e.kind === 'state' && e.hub === hubId && e.attrs.n === 3);
    await hub.report({ s1: { n: 4 } });
    await events.next((e) => e.kind === 'state' && e.hub === hubId && e.attrs.n === 4);
    expect(events.items.filter((e) => e.hub === hubId && e.kind === 'state').map((e) => (e.kind === 'state' ? e.attrs.n : null))).toEqual([2, 3, 4]);
    expect(events.items[0]!.pos).toEqual({ epoch: stored.epoch, offset: stored.offset + 1 });
    expectContiguous(events.items);
    expect(reloads.items).toEqual([]);
  });

  it('tells the app to reload when the stored position is of another history (epoch_changed), then goes on live', async () => {
    const hubId = await provision('since-epoch');
    const hub = await online(hubId);
    const { c } = client();
    const events = new Inbox<AppEventMessage>();
    const reloads = new Inbox<ReloadInfo>();
    const sub = c.subscribe(HOME, { onEvent: events.push, onReload: reloads.push }, { since: { epoch: 'not-this-history', offset: 3 } });
    const answer = await sub.ready;
    expect(answer).toMatchObject({ home: HOME, recovered: false, reason: 'epoch_changed' });
    expect(reloads.items).toEqual([{ reason: 'epoch_changed', pos: answer.pos }]);
    await hub.report({ s1: { n: 1 } });
    const live = await events.next((e) => e.kind === 'state' && e.hub === hubId && e.attrs.n === 1);
    expect(live.pos?.epoch).toBe(answer.pos!.epoch);
  });

  it('gives up an attempt the network never answers (connectTimeoutMs), retries with backoff, and connects once a node is there', async () => {
    const hole = await blackHole(server.port);
    const { c, states } = client({ url: hole.url, connectTimeoutMs: 300 });
    try {
      const givenUp = (s: ConnectionState) => s.state === 'closed' && s.code === CONNECT_TIMEOUT_CLOSE;
      await states.next(givenUp, 2);
      expect(states.items.slice(0, 4)).toMatchObject([
        { state: 'connecting', attempt: 0 },
        { state: 'closed', code: CONNECT_TIMEOUT_CLOSE, unauthorized: false, reconnectInMs: expect.any(Number) },
        { state: 'connecting', attempt: 1 },
        { state: 'closed', code: CONNECT_TIMEOUT_CLOSE },
      ]);
      // each attempt given up was closed by the client, not left open on the network
      await hole.released.next(() => true, 2);

      hole.heal();
      await states.next((s) => s.state === 'open');
      expect(await c.subscribe(HOME, { onEvent() {} }).ready).toMatchObject({ home: HOME });
      const hubId = await provision('after-hole');
      await online(hubId);
      expect(await c.command(hubId, 'lamp', { set: { on: true } })).toEqual({ on: true });
    } finally {
      await c.close();
      await hole.close();
    }
  });

  it('gives up a token function that hangs (4101), connects with the next token, and the late one opens no socket', async () => {
    let release: (token: string) => void = () => {};
    const hung = new Promise<string>((resolve) => (release = resolve));
    let calls = 0;
    const { c, states, sockets } = trackedClient({ connectTimeoutMs: 5_000, token: () => (++calls === 1 ? hung : mint(server.jwtSecret)) });
    const givenUp = await states.next((s) => s.state === 'closed');
    expect(givenUp).toMatchObject({ code: CONNECT_TIMEOUT_CLOSE, reason: 'token: the token function gave none within 5000 ms (connectTimeoutMs)' });
    await states.next((s) => s.state === 'open');
    const hubId = await provision('token-hang');
    await online(hubId);
    expect(await c.command(hubId, 'lamp', { set: { on: true } })).toEqual({ on: true });
    // the first attempt's token comes at last (a valid one): its attempt was given up, nothing opens
    release(await mint(server.jwtSecret));
    expect(await c.command(hubId, 'lamp', { set: { on: false } })).toEqual({ on: false });
    expect(sockets).toHaveLength(1);
    expect(states.items.map((s) => s.state)).toEqual(['connecting', 'closed', 'connecting', 'open']);
    expect(calls).toBe(2);
  });

  // 60 s: a ceiling, not a measure (starting a node process takes several seconds on a busy machine)
  it('reconnects after the node restarts on the same port, resubscribes, and events flow again', async () => {
    const hubId = await provision('restart');
    const { c, states } = client();
    const events = new Inbox<AppEventMessage>();
    const reloads = new Inbox<ReloadInfo>();
    const answers = new Inbox<SubResult>();
    await c.subscribe(HOME, { onEvent: events.push, onReload: reloads.push, onSubscribed: answers.push }).ready;
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
    // a clean stop keeps the history's epoch on disk: the client resubscribed from its last event
    // and got what it missed (the hub going offline) with no reload and nothing twice
    expect(reloads.items).toEqual([]);
    expect((await answers.next(() => true, 2)).recovered).toBe(true);
    expect(events.items.filter((e) => e.hub === hubId && e.kind === 'state').map((e) => (e.kind === 'state' ? e.attrs.n : null))).toEqual([1, 2]);
    expect(events.items.some((e) => e.hub === hubId && e.kind === 'offline')).toBe(true);
    expectContiguous(events.items);
  }, 60_000);

  it("runs README's example as written: connects with ws, reports its states, gets its command's answer and the home's events", async () => {
    const hubId = await provision('readme');
    const hub = await online(hubId);
    const readme = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');
    const start = readme.indexOf("import { ClientError, HubtierClient } from 'hubtier/client';");
    const example = readme.slice(start, readme.indexOf('```', start));
    expect(example).toContain("url: 'wss://hubs.example.com'");
    // only its names of the outside world changed: this node, its home and hub, the library and ws by path
    const code = example
      .replace("'hubtier/client'", JSON.stringify(fileURLToPath(new URL('../../src/client/index.ts', import.meta.url))))
      .replace("'ws'", JSON.stringify(createRequire(import.meta.url).resolve('ws')))
      .replace("'wss://hubs.example.com'", JSON.stringify(server.wsUrl))
      .replaceAll("'home-1'", JSON.stringify(HOME))
      .replace("'hub-7'", JSON.stringify(hubId));
    const seen = { states: [] as string[], events: [] as AppEventMessage[], reloads: [] as string[] };
    const world = { fetchToken: () => mint(server.jwtSecret), render: (e: AppEventMessage) => seen.events.push(e), reloadHome: (_home: string, reason: string) => seen.reloads.push(reason), log: (s: string) => seen.states.push(s) };
    (globalThis as { readmeWorld?: unknown }).readmeWorld = world;
    const dir = mkdtempSync(join(tmpdir(), 'readme-example-'));
    const file = join(dir, 'example.ts');
    writeFileSync(file, `const { fetchToken, render, reloadHome, log } = (globalThis as any).readmeWorld;\nconst console = { log };\n${code}\nexport { client, result };\n`);
    const { client: c, result } = (await import(file)) as { client: HubtierClient; result: unknown };
    clients.push(c);
    // the hub's default handler runs `set`: the command's answer, not an error
    expect(result).not.toBeInstanceOf(ClientError);
    expect(result).toEqual({ on: true });
    expect(seen.states).toContain('open');
    await hub.report({ lamp: { on: false } });
    await expect.poll(() => seen.events.some((e) => e.kind === 'state' && e.hub === hubId)).toBe(true);
    expect(seen.reloads).toEqual([]);
  }, 60_000);
});
