import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { HubClient } from '../../load/wire/hub-client.js';
import { startNats, startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import { HubtierClient, type AppEventMessage } from '../../src/client/index.js';
import { AppSocket } from '../helpers/app-socket.js';
import { RedisProxy } from '../helpers/redis-proxy.js';
import { api, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

const until = async (pred: () => boolean) => {
  while (!pred()) await new Promise((r) => setTimeout(r, 20));
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A node that freezes (SIGSTOP: a long pause, a frozen VM) with a history append on the wire: Redis
 * stored it and answered, but the answer waits in the node's socket. When the node resumes, the
 * Redis client's command timeout (2 s) fires before the answer is read, and the append counts as
 * failed, though the hub has moved to another node meanwhile and published newer values there.
 */
describe('a node freezes with an append on the wire (cluster mode)', { timeout: 60_000 }, () => {
  let nats: Backend;
  let redis: Backend;
  let proxy: RedisProxy;
  let frozen: ServerProcess;
  let other: ServerProcess;
  const closers: Array<() => unknown> = [];

  beforeAll(async () => {
    [nats, redis] = await Promise.all([startNats(), startRedis()]);
    proxy = await RedisProxy.start(redis.port);
    const env = {
      NATS_URL: nats.url,
      TIER_REDIS_PREFIX: uniquePrefix(),
      ADMIN_TOKEN: 'freeze-admin-token-0123456789',
      JWT_SECRET: 'freeze-jwt-secret-0123456789abcdef',
    };
    [frozen, other] = await Promise.all([
      startServerProcess({ ...env, REDIS_URL: proxy.url, NODE_ID: 'node-frozen' }),
      startServerProcess({ ...env, REDIS_URL: redis.url, NODE_ID: 'node-other' }),
    ]);
  }, 60_000);
  afterAll(async () => {
    if (frozen) process.kill(frozen.pid, 'SIGCONT');
    for (const close of closers) await close();
    await Promise.allSettled([frozen?.stop(), other?.stop()]);
    await proxy?.close();
    await Promise.allSettled([nats?.stop(), redis?.stop()]);
  });

  it('does not hand apps its old value after the newer ones of the hub\'s next session', async () => {
    const homeId = 'home-freeze';
    const hubId = 'hub-freeze';
    const res = await api(frozen.httpUrl, 'POST', '/v1/admin/hubs', frozen.adminToken, { hubId, homeId });
    expect(res.status).toBe(201);
    const first = new HubClient({ url: frozen.wsUrl, hubId, secret: res.body.secret });
    closers.push(() => first.terminate());
    await first.connect();
    await first.report({ d1: { n: 0 } });

    // the app and a raw socket on the node that stays up
    const seen: AppEventMessage[] = [];
    const app = new HubtierClient({ url: other.wsUrl, token: other.adminToken, WebSocket });
    closers.push(() => app.close());
    await app.subscribe(homeId, { onEvent: (e) => seen.push(e) }).ready;
    const raw = new AppSocket(`${other.wsUrl}/app/v1?token=${other.adminToken}`);
    closers.push(() => raw.close());
    await raw.opened();
    await raw.request({ op: 'sub', home: homeId });
    const valuesOf = (events: AppEventMessage[]) => events.flatMap((e) => (e.kind === 'state' && typeof e.attrs.n === 'number' ? [{ n: e.attrs.n, pos: e.pos !== undefined }] : []));
    const rawValues = () => valuesOf(raw.messages.filter((m) => m.op === 'evt' && m.home === homeId) as AppEventMessage[]);

    // n: 1's append reaches Redis; its answer is held, and the node freezes
    proxy.afterAppendOf(homeId, 'hold');
    void first.report({ d1: { n: 1 } }).catch(() => {});
    await until(() => proxy.isHolding);
    const frozeAt = performance.now();
    process.kill(frozen.pid, 'SIGSTOP');
    try {
      // the hub gives up on the silent node and reports newer values through the other one
      await first.terminate();
      const next = new HubClient({ url: other.wsUrl, hubId, secret: res.body.secret });
      closers.push(() => next.terminate());
      await next.connect();
      for (const n of [2, 3]) await next.report({ d1: { n } });
      await until(() => valuesOf(seen).some((v) => v.n === 3));
      // the answer reaches the frozen node's socket; it resumes past the Redis client's timeout
      proxy.release();
      await sleep(Math.max(0, 2_500 - (performance.now() - frozeAt)));
    } finally {
      process.kill(frozen.pid, 'SIGCONT');
    }
    // the resumed node's append of n: 1 failed (its answer read too late), and the directory named
    // the hub's later session: the event was not published
    const notInHistory = async (outcome: string) => {
      const text = await (await fetch(`${frozen.adminUrl}/metrics`)).text();
      return Number(new RegExp(`^tier_events_not_in_history_total\\{outcome="${outcome}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
    };
    await expect.poll(() => notInHistory('stale'), { timeout: 10_000 }).toBe(1);
    expect(await notInHistory('unpositioned')).toBe(0);
    // whatever the frozen node was to publish is out: a request answered after its resume came after it
    expect((await api(frozen.httpUrl, 'GET', `/v1/admin/hubs/${hubId}`, frozen.adminToken)).status).toBe(200);
    await until(() => rawValues().length >= 3);

    // the app got each value once, in order; the raw socket, what the nodes sent: nothing after n: 3
    const handed = valuesOf(seen).map((v) => v.n);
    expect(handed).toEqual([1, 2, 3]);
    expect(rawValues().map((v) => v.n)).toEqual([1, 2, 3]);
  });
});
