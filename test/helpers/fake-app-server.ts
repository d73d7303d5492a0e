import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { APP_SUBPROTOCOL, bearerToken, isBearerProtocol } from '../../proto/app.js';
import { HubtierClient, type ClientOptions } from '../../src/client/index.js';

/** One app connection to the fake server: what it sent, and ways to answer it or drop it. */
export class FakeConnection {
  readonly received: any[] = [];
  private waiters: Array<{ pred: (m: any) => boolean; resolve: (m: any) => void }> = [];
  readonly closed: Promise<{ code: number; reason: string }>;

  constructor(
    readonly ws: WebSocket,
    /** the token of the `bearer.` subprotocol */
    readonly token: string,
  ) {
    ws.on('message', (data) => {
      const msg = JSON.parse(data.toString());
      this.received.push(msg);
      this.waiters = this.waiters.filter((w) => (w.pred(msg) ? (w.resolve(msg), false) : true));
    });
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  /** The first message (received already or still to come) that matches. */
  next(pred: (m: any) => boolean): Promise<any> {
    const seen = this.received.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => this.waiters.push({ pred, resolve }));
  }

  /** The next `sub` of a home (received after `after` of them). */
  sub(home: string, after = 0): Promise<any> {
    let n = 0;
    return this.next((m) => m.op === 'sub' && m.home === home && n++ === after);
  }

  send(msg: unknown): void {
    this.ws.send(JSON.stringify(msg));
  }

  ok(id: number, result?: unknown): void {
    this.send({ op: 'ok', id, result });
  }

  /** An event of a home at `offset` of epoch `epoch` (no position when offset is null). */
  evt(home: string, offset: number | null, extra: Record<string, unknown> = {}, epoch = 'e1'): void {
    const pos = offset === null ? {} : { pos: { epoch, offset } };
    this.send({ op: 'evt', kind: 'state', home, hub: 'hub-1', device: 'd1', attrs: { n: offset }, version: 1, ts: 0, ...pos, ...extra });
  }

  close(code = 1000, reason = ''): void {
    this.ws.close(code, reason);
  }
}

/**
 * A stand-in for a node's `/app/v1` on 127.0.0.1 and a free port, built on the `ws` package: it
 * accepts the `bearer.<token>` subprotocol as the node does, refuses tokens `accept` rejects with
 * 401 before the upgrade, and answers nothing by itself: each test plays the server's part.
 */
export class FakeAppServer {
  readonly connections: FakeConnection[] = [];
  /** tokens seen at upgrades, refused ones included */
  readonly tokens: string[] = [];
  accept: (token: string) => boolean = () => true;
  private waiters: Array<{ n: number; resolve: (c: FakeConnection) => void }> = [];

  private constructor(readonly wss: WebSocketServer) {
    wss.on('connection', (ws, req) => {
      const conn = new FakeConnection(ws, bearerOf(req.headers['sec-websocket-protocol']) ?? '');
      this.connections.push(conn);
      this.waiters = this.waiters.filter((w) => (w.n === this.connections.length ? (w.resolve(conn), false) : true));
    });
  }

  static async start(): Promise<FakeAppServer> {
    let server: FakeAppServer | null = null;
    const wss = new WebSocketServer({
      host: '127.0.0.1',
      port: 0,
      path: '/app/v1',
      verifyClient: (info, done) => {
        const token = bearerOf(info.req.headers['sec-websocket-protocol']) ?? '';
        server!.tokens.push(token);
        if (server!.accept(token)) done(true);
        else done(false, 401, 'Unauthorized');
      },
      // the node answers with the fixed subprotocol when offered, else with the bearer one
      handleProtocols: (protocols) => (protocols.has(APP_SUBPROTOCOL) ? APP_SUBPROTOCOL : ([...protocols].find(isBearerProtocol) ?? false)),
    });
    server = new FakeAppServer(wss);
    await once(wss, 'listening');
    return server;
  }

  get url(): string {
    return `ws://127.0.0.1:${(this.wss.address() as AddressInfo).port}`;
  }

  /** The n-th connection (1-based), once it is open on the server's side. */
  connection(n: number): Promise<FakeConnection> {
    const c = this.connections[n - 1];
    if (c) return Promise.resolve(c);
    return new Promise((resolve) => this.waiters.push({ n, resolve }));
  }

  async stop(): Promise<void> {
    for (const c of this.connections) c.ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}

function bearerOf(header: string | undefined): string | null {
  const p = (header ?? '').split(',').map((s) => s.trim()).find(isBearerProtocol);
  return p === undefined ? null : (bearerToken(p) ?? null);
}


/** Things a test collects (events, states), with a wait for the first one matching. */
export class Inbox<T> {
  readonly items: T[] = [];
  private waiters: Array<{ pred: (t: T) => boolean; resolve: (t: T) => void }> = [];

  readonly push = (item: T): void => {
    this.items.push(item);
    this.waiters = this.waiters.filter((w) => (w.pred(item) ? (w.resolve(item), false) : true));
  };

  /** The n-th item (1-based) that matches, collected already or still to come. */
  next(pred: (t: T) => boolean, n = 1): Promise<T> {
    const seen = this.items.filter(pred);
    if (seen.length >= n) return Promise.resolve(seen[n - 1]!);
    let count = seen.length;
    return new Promise((resolve) => this.waiters.push({ pred: (t) => pred(t) && ++count === n, resolve }));
  }
}

/**
 * Per test of a file: a fake server started before each test and stopped after it, and clients of
 * it closed after it. Clients reconnect at once: the tests are about what happens after, not when.
 */
export function fakeServerPerTest(): { readonly server: FakeAppServer; client(extra?: Partial<ClientOptions>): HubtierClient } {
  let server: FakeAppServer | undefined;
  const clients: HubtierClient[] = [];
  beforeEach(async () => {
    server = await FakeAppServer.start();
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await server?.stop();
  });
  return {
    get server() {
      return server!;
    },
    client(extra = {}) {
      const c = new HubtierClient({ url: server!.url, token: 'tok', WebSocket, backoff: { initialMs: 1, maxMs: 2 }, ...extra });
      clients.push(c);
      return c;
    },
  };
}
