/**
 * A cluster node whose Redis loses its data while it runs (FLUSHALL standing in for a restart
 * without persistence or an empty replacement): it says so (an error line, `tier_redis_data_lost`,
 * `redis-data` among readiness's degraded backends), a rule gone with the data stops at once
 * instead of running from the node's cache, a hub whose record is gone is told to retry later (not
 * refused for good), and the flag clears once the data is back (a restore). Before, nothing of
 * this was said or done (review "redisloss"). Own nats-server and redis-server.
 */
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNats, startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import { HubClient, HubClientError } from '../../load/wire/hub-client.js';
import { createLogger } from '../../src/log/logger.js';
import { connectRedis } from '../../src/ports/redis.js';
import { eventually } from '../helpers/eventually.js';
import { metric } from '../helpers/metric.js';
import { api, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

const ADMIN = 'data-lost-admin-token-0123456789';
const JWT = 'data-lost-jwt-secret-0123456789abcdef';

describe('Redis losing its data under a running cluster node', { timeout: 90_000 }, () => {
  let nats: Backend;
  let redis: Backend;
  let node: ServerProcess;
  let look: Redis;
  const prefix = uniquePrefix();
  const clients: HubClient[] = [];

  beforeAll(async () => {
    [nats, redis] = await Promise.all([startNats(), startRedis()]);
    // a timed look every 10 s (ttl / 3): what is told at once comes from the looks a hub's admission makes
    node = await startServerProcess({ ADMIN_TOKEN: ADMIN, JWT_SECRET: JWT, REDIS_URL: redis.url, NATS_URL: nats.url, TIER_REDIS_PREFIX: prefix, NODE_ID: 'lost-a', TIER_DIRECTORY_TTL_MS: '30000' });
    look = await connectRedis(redis.url, { name: 'test-data-lost', log: createLogger('silent') });
  }, 60_000);
  afterAll(async () => {
    await Promise.allSettled(clients.map((h) => h.terminate()));
    await look?.quit();
    await node?.stop();
    await Promise.allSettled([nats?.stop(), redis?.stop()]);
  });

  const lost = async (on = node) => metric(await (await fetch(`${on.adminUrl}/metrics`)).text(), 'tier_redis_data_lost') === 1;

  it('is said, lets go of the rules cached, tells hubs it no longer knows to retry, and clears once restored', async ({ signal }) => {
    const secretOf = async (hubId: string) => (await api(node.httpUrl, 'POST', '/v1/admin/hubs', ADMIN, { hubId, homeId: 'lost-home' })).body.secret as string;
    const sensor = new HubClient({ url: node.wsUrl, hubId: 'lost-sensor', secret: await secretOf('lost-sensor') });
    const valveSecret = await secretOf('lost-valve');
    const valve = new HubClient({ url: node.wsUrl, hubId: 'lost-valve', secret: valveSecret });
    clients.push(sensor, valve);
    const closes: number[] = [];
    valve.onCommand(() => {
      closes.push(Date.now());
      return { ok: true };
    });
    await Promise.all([sensor.connect(), valve.connect()]);
    await valve.report({ valve: { open: true } });
    const rule = await api(node.httpUrl, 'POST', '/v1/homes/lost-home/rules', ADMIN, {
      name: 'Leak',
      triggers: [{ type: 'event', hub: 'lost-sensor', device: 'sensor', event: 'alarm' }],
      actions: [{ type: 'command', hub: 'lost-valve', device: 'valve', method: 'close', timeoutMs: 5_000 }],
    });
    expect(rule.status).toBe(201);
    await sensor.event('sensor', 'alarm', { level: 1 });
    await eventually(signal, 'the rule to close the valve', async () => (closes.length === 1 ? true : undefined));
    expect(await lost()).toBe(false);
    const salt = await look.hget(`${prefix}cluster:secrets`, 'salt');
    expect(salt).not.toBeNull();

    await look.flushall();
    // a hub reconnecting at once, before the node's next timed look: its admission looks again (review
    // "diff31"), sharing a look begun within 50 ms: one begun after the flush
    await new Promise((r) => setTimeout(r, 60));
    const atOnce = await new HubClient({ url: node.wsUrl, hubId: 'lost-valve', secret: valveSecret }).connect().then(
      () => null,
      (err: unknown) => err as HubClientError,
    );
    expect(atOnce).toMatchObject({ code: 'unavailable', temporary: true });
    await eventually(signal, 'the loss to be found', async () => ((await lost()) ? true : undefined));
    expect(node.logs.find((l) => String(l.msg).startsWith('Redis lost its data'))).toMatchObject({ level: 50 });
    const ready = await fetch(`${node.adminUrl}/readyz`).then((r) => r.json() as Promise<{ degraded: string[]; redisDataLostSince?: string }>);
    expect(ready.degraded).toContain('redis-data');
    expect(ready.redisDataLostSince).toBeDefined();

    // the rule went with the data: not run from the cache (its ttl is 10 s)
    await sensor.event('sensor', 'alarm', { level: 2 });
    await new Promise((r) => setTimeout(r, 1_500));
    expect(closes).toHaveLength(1);

    // a hub the cluster no longer knows: told to retry later, not refused for good
    const again = new HubClient({ url: node.wsUrl, hubId: 'lost-valve', secret: valveSecret });
    clients.push(again);
    const refused = await again.connect().then(
      () => null,
      (err: unknown) => err as HubClientError,
    );
    expect(refused).toMatchObject({ code: 'unavailable', temporary: true });

    // a node started during the loss (its start wrote a record of its own): told by the note the first one left (review "diff28")
    const late = await startServerProcess({ ADMIN_TOKEN: ADMIN, JWT_SECRET: JWT, REDIS_URL: redis.url, NATS_URL: nats.url, TIER_REDIS_PREFIX: prefix, NODE_ID: 'lost-b', TIER_DIRECTORY_TTL_MS: '3000' });
    try {
      expect(await lost(late)).toBe(true);
      const onLate = await new HubClient({ url: late.wsUrl, hubId: 'lost-valve', secret: valveSecret }).connect().then(
        () => null,
        (err: unknown) => err as HubClientError,
      );
      expect(onLate).toMatchObject({ code: 'unavailable', temporary: true });

      // the data back (a restore brings the record with its salt, and not the note): both clear
      await look.multi().del(`${prefix}cluster:data-lost`).hset(`${prefix}cluster:secrets`, 'salt', salt!).exec();
      await eventually(signal, 'the flags to clear', async () => (!(await lost()) && !(await lost(late)) ? true : undefined));
      expect(node.logs.some((l) => String(l.msg).startsWith("Redis holds the cluster's data again"))).toBe(true);
    } finally {
      await late.stop();
    }
  });
});
