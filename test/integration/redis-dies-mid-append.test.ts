import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { HubClient } from '../../load/wire/hub-client.js';
import { startNats, startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import { HubtierClient, type AppEventMessage } from '../../src/client/index.js';
import { AppSocket } from '../helpers/app-socket.js';
import { RedisProxy } from '../helpers/redis-proxy.js';
import { api, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

describe('Redis dies right after it stored an append (cluster mode)', { timeout: 60_000 }, () => {
  let nats: Backend;
  let redis: Backend;
  let proxy: RedisProxy;
  let node: ServerProcess;
  let hub: HubClient;
  let app: HubtierClient;
  let raw: AppSocket;

  beforeAll(async () => {
    [nats, redis] = await Promise.all([startNats(), startRedis()]);
    proxy = await RedisProxy.start(redis.port);
    node = await startServerProcess({ NATS_URL: nats.url, REDIS_URL: proxy.url, TIER_REDIS_PREFIX: uniquePrefix() });
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
    proxy.afterAppendOf(homeId, 'die');
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
