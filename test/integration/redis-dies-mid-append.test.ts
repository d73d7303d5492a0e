import { createServer, Socket, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { HubClient } from '../../load/wire/hub-client.js';
import { freePort, startNats, startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import { HubtierClient, type AppEventMessage } from '../../src/client/index.js';
import { AppSocket } from '../helpers/app-socket.js';
import { api, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

/**
 * A TCP proxy in front of redis-server that can play Redis dying at the worst moment: it lets the
 * history's append of a home through, holds back the replies, and drops every connection 50 ms
 * later (Redis ran the append; the node never hears so), then refuses connections until `revive`.
 */
class DyingRedis {
  private readonly sockets = new Set<Socket>();
  private refusing = false;
  private armed: string | null = null;
  private holding = false;
  private readonly server: Server;

  private constructor(
    readonly port: number,
    private readonly target: number,
  ) {
    this.server = createServer((client) => this.accept(client));
  }

  static async start(target: number): Promise<DyingRedis> {
    const proxy = new DyingRedis(await freePort(), target);
    await new Promise<void>((resolve) => proxy.server.listen(proxy.port, '127.0.0.1', resolve));
    return proxy;
  }

  /** Dies once an append to this home's history has gone through to Redis. */
  dieAfterAppendOf(homeId: string): void {
    this.armed = `{home:${homeId}}:hist`;
  }

  get dead(): boolean {
    return this.refusing;
  }

  revive(): void {
    this.refusing = false;
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    if (this.refusing) return void client.destroy();
    const upstream = new Socket();
    upstream.connect(this.target, '127.0.0.1');
    this.sockets.add(client).add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.on('data', (chunk: Buffer) => {
      upstream.write(chunk);
      if (this.armed !== null && chunk.includes(this.armed)) {
        this.armed = null;
        this.holding = true;
        setTimeout(() => {
          this.refusing = true;
          this.holding = false;
          for (const s of this.sockets) s.destroy();
          this.sockets.clear();
        }, 50);
      }
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!this.holding) client.write(chunk);
    });
  }
}

describe('Redis dies right after it stored an append (cluster mode)', { timeout: 60_000 }, () => {
  let nats: Backend;
  let redis: Backend;
  let proxy: DyingRedis;
  let node: ServerProcess;
  let hub: HubClient;
  let app: HubtierClient;
  let raw: AppSocket;

  beforeAll(async () => {
    [nats, redis] = await Promise.all([startNats(), startRedis()]);
    proxy = await DyingRedis.start(redis.port);
    node = await startServerProcess({ NATS_URL: nats.url, REDIS_URL: `redis://127.0.0.1:${proxy.port}`, TIER_REDIS_PREFIX: uniquePrefix() });
  }, 60_000);
  afterAll(async () => {
    await app?.close();
    raw?.close();
    await hub?.terminate();
    await node?.stop();
    await proxy?.close();
    await Promise.allSettled([nats?.stop(), redis?.stop()]);
  });

  it('an app is handed the event it had without a position once, not again with one after newer values', async () => {
    const homeId = 'home-dies';
    const res = await api(node.httpUrl, 'POST', '/v1/admin/hubs', node.adminToken, { hubId: 'hub-dies', homeId });
    expect(res.status).toBe(201);
    hub = new HubClient({ url: node.wsUrl, hubId: 'hub-dies', secret: res.body.secret });
    await hub.connect();
    await hub.report({ d1: { n: 0 } });

    // the client library, as an app uses it, and beside it the raw socket: what the node sent
    const seen: AppEventMessage[] = [];
    app = new HubtierClient({ url: node.wsUrl, token: node.adminToken, WebSocket });
    const sub = app.subscribe(homeId, { onEvent: (e) => seen.push(e) });
    await sub.ready;
    raw = new AppSocket(`${node.wsUrl}/app/v1?token=${node.adminToken}`);
    await raw.opened();
    await raw.request({ op: 'sub', home: homeId });
    const valuesOf = (events: AppEventMessage[]) => events.flatMap((e) => (e.kind === 'state' && typeof e.attrs.n === 'number' ? [{ n: e.attrs.n, pos: e.pos !== undefined }] : []));
    const values = () => valuesOf(seen);
    const until = async (pred: () => boolean) => {
      while (!pred()) await new Promise((r) => setTimeout(r, 20));
    };

    // n: 1 is stored in the history as Redis dies: the node publishes it without a position
    proxy.dieAfterAppendOf(homeId);
    void hub.report({ d1: { n: 1 } }).catch(() => {});
    await until(() => proxy.dead && values().some((v) => v.n === 1));
    // newer values while Redis is away: live, without a position
    for (const n of [2, 3]) void hub.report({ d1: { n } }).catch(() => {});
    await until(() => values().some((v) => v.n === 3));
    proxy.revive();
    // once the node's Redis is back, the next event's position is one past n: 1's, whose gap the
    // feed fills from the history
    for (let n = 4; !values().some((v) => v.n >= 4 && v.pos); n++) {
      void hub.report({ d1: { n } }).catch(() => {});
      await new Promise((r) => setTimeout(r, 500));
    }
    const rawValues = () => valuesOf(raw.messages.filter((m) => m.op === 'evt' && m.home === homeId) as AppEventMessage[]);
    await until(() => rawValues().some((v) => v.n >= 4 && v.pos));

    // the node sent n: 1 twice: live without a position, then from the history with one, after newer values
    const sent = rawValues();
    const ones = sent.filter((v) => v.n === 1);
    expect(ones).toEqual([{ n: 1, pos: false }, { n: 1, pos: true }]);
    expect(sent.findIndex((v) => v.n === 1 && v.pos)).toBeGreaterThan(sent.findIndex((v) => v.n === 3));
    // the app was handed each value once, never an older one after a newer
    const handed = values().map((v) => v.n);
    expect(handed.slice(0, 3)).toEqual([1, 2, 3]);
    expect(handed).toEqual([...new Set(handed)].sort((a, b) => a - b));
  });
});
