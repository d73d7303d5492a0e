/**
 * The app client library against a real node at the moment its socket's token expires: the node
 * answers every request `err unauthorized` and closes with 4007 within a second. A `sub` and a
 * command sent just after `exp` must carry on over the token function's fresh token (they were
 * not run). Also the command refusals the library makes itself: `set` with `method` (as the node
 * does, invalid_field method) and a command never written to a socket (`sent: false`).
 */
import net from 'node:net';
import WebSocket from 'ws';
import { SignJWT, decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HubClient } from '../../load/wire/hub-client.js';
import { ClientError, HubtierClient, type ClientOptions, type CommandBody } from '../../src/client/index.js';
import { api, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

const HOME = 'home-x';
const LATER = 'home-x2';

describe('app client library across a token expiry, against a real node', () => {
  let server: ServerProcess;
  const hubs: HubClient[] = [];
  const clients: HubtierClient[] = [];

  const mint = (lifetime: string) =>
    new SignJWT({ homes: [HOME, LATER] }).setProtectedHeader({ alg: 'HS256' }).setSubject('dave').setExpirationTime(lifetime).sign(new TextEncoder().encode(server.jwtSecret));

  async function onlineHub(name: string): Promise<string> {
    const hubId = `cx-${name}`;
    const res = await api(server.httpUrl, 'POST', '/v1/admin/hubs', server.adminToken, { hubId, homeId: HOME });
    expect(res.status).toBe(201);
    const hub = new HubClient({ url: server.wsUrl, hubId, secret: res.body.secret });
    hubs.push(hub);
    await hub.connect();
    return hubId;
  }

  function client(extra: Partial<ClientOptions>): HubtierClient {
    const c = new HubtierClient({ url: server.wsUrl, token: () => mint('1h'), WebSocket, backoff: { initialMs: 50, maxMs: 400 }, ...extra });
    clients.push(c);
    return c;
  }

  beforeAll(async () => {
    server = await startServerProcess();
  });

  afterAll(async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    await Promise.allSettled(hubs.map((h) => h.terminate()));
    expect(await server.stop()).toBe(0);
  });

  /**
   * A client whose first token lives 2 s (the next ones an hour) and which counts the node's
   * `err unauthorized` answers; `atExp()` resolves just after that token's exp, inside the window.
   */
  function expiringClient() {
    let exp = 0;
    let minted = 0;
    const token = async () => {
      const t = await mint(minted++ === 0 ? '2s' : '1h');
      if (minted === 1) exp = decodeJwt(t).exp! * 1000;
      return t;
    };
    const refusals: string[] = [];
    class Watched extends WebSocket {
      constructor(url: string, protocols?: string | string[]) {
        super(url, protocols);
        this.on('message', (data) => {
          const m = JSON.parse(data.toString());
          if (m.op === 'err' && m.code === 'unauthorized') refusals.push(m.msg);
        });
      }
    }
    const c = client({ token, WebSocket: Watched });
    // a wait on the clock: the window opens at exp and lasts until the node's timer closes the socket
    const atExp = () => new Promise((resolve) => setTimeout(resolve, exp + 2 - Date.now()));
    return { c, refusals, atExp, minted: () => minted };
  }

  it('a sub sent just after exp is refused unauthorized, kept, and subscribed over the fresh token', async () => {
    // the window (exp until the node's timer closes the socket, up to a second) is missed when this
    // process's timer fires late on a busy machine: then the sub simply goes over the next socket,
    // and the scenario is tried again, on a new client, until the node has refused one
    for (let attempt = 1; ; attempt++) {
      const { c, refusals, atExp, minted } = expiringClient();
      const errors: ClientError[] = [];
      await c.subscribe(HOME, { onEvent() {}, onError: (e) => errors.push(e) }).ready;
      await atExp();
      const later = c.subscribe(LATER, { onEvent() {}, onError: (e) => errors.push(e) });
      const answer = await later.ready.catch((e: unknown) => e);
      expect(answer).toMatchObject({ home: LATER });
      expect(errors).toEqual([]);
      expect(later.position).not.toBeNull();
      if (refusals.length === 0 && attempt < 5) continue;
      expect(refusals).toEqual(['token expired']);
      expect(minted()).toBe(2);
      return;
    }
  });

  it('a command sent just after exp is refused unauthorized (not run), sent again over the fresh token and answered', async () => {
    const hubId = await onlineHub('expiry');
    // tried again when the window was missed, as above
    for (let attempt = 1; ; attempt++) {
      const { c, refusals, atExp, minted } = expiringClient();
      await c.command(hubId, 'lamp', { set: { on: false } });
      await atExp();
      const result = await c.command(hubId, 'lamp', { set: { on: true } }).catch((e: unknown) => e);
      if (refusals.length === 0 && attempt < 5) continue;
      expect(refusals).toEqual(['token expired']);
      expect(result).toEqual({ on: true });
      expect(minted()).toBe(2);
      return;
    }
  });

  it('refuses set with method (invalid_field method, as the node does) without sending it', async () => {
    const hubId = await onlineHub('both');
    const c = client({});
    // plain JavaScript: CommandBody keeps TypeScript callers from writing it
    const both = { set: { on: true }, method: 'unlock' } as unknown as CommandBody;
    expect(await c.command(hubId, 'lamp', both).catch((e: unknown) => e)).toMatchObject({ code: 'invalid_field', num: 103, field: 'method' });
    const http = await api(server.httpUrl, 'POST', `/v1/hubs/${hubId}/devices/lamp/commands`, server.adminToken, { set: { on: true }, method: 'unlock' });
    expect(http.body).toMatchObject({ code: 'invalid_field', field: 'method' });
  });

  it('a command never written to a socket (no node to reach) rejects command_timeout with sent: false', async () => {
    // a port with nothing listening: every attempt is refused
    const free = net.createServer();
    await new Promise<void>((resolve) => free.listen(0, '127.0.0.1', resolve));
    const port = (free.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => free.close(() => resolve()));
    const c = client({ url: `ws://127.0.0.1:${port}`, commandTimeoutMs: 200, commandMarginMs: 100 });
    const err = await c.command('hub-1', 'lamp', { method: 'unlock' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'command_timeout', num: 401, temporary: true, sent: false });
  });
});
