/**
 * A push queue whose Redis refuses for now (full: `maxmemory` with `noeviction`): the worker says
 * so, sampled. Such errors count as the backend away (503), and the queue had dropped every such
 * error unsaid: a full Redis left the worker silent while deliveries failed (review diff9).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import { createLogger } from '../../src/log/logger.js';
import { BullMqPushQueue } from '../../src/ports/push-queue/push-queue-bullmq.js';
import { connectRedis, RedisKeys } from '../../src/ports/redis.js';
import { enqueueRetrying } from '../../src/rules/push-retry.js';
import { TierError } from '../../src/errors.js';

let redis: Backend;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

it('a Redis that refuses writes is logged by the push worker (sampled), not dropped as a lost connection', { timeout: 30_000 }, async () => {
  const lines: Array<{ level: number; msg: string; err?: unknown }> = [];
  const log = createLogger('info', {}, { write: (s: string) => void lines.push(JSON.parse(s) as { level: number; msg: string }) });
  const admin = await connectRedis(redis.url, { name: 'test-admin', log: createLogger('silent') });
  const sender = Object.assign(async () => {
    throw new Error('push service said no');
  }, { timeoutMs: 1_000 });
  const queue = await BullMqPushQueue.connect(redis.url, { name: 'refusal', log, sender, attempts: 50, backoffMs: 100, maxBackoffMs: 200, keys: new RedisKeys(uniquePrefix()) });
  try {
    await queue.enqueue({ homeId: 'home1', title: 'Water leak', body: 'x', dedupKey: `rule:r1:${randomUUID()}` });
    await admin.config('SET', 'maxmemory-policy', 'noeviction');
    await admin.config('SET', 'maxmemory', '1');
    await expect.poll(() => lines.filter((l) => l.msg === 'push worker: redis error' || l.msg === 'push queue: redis error').length, { timeout: 20_000 }).toBeGreaterThan(0);
    expect(lines.find((l) => /redis error/.test(l.msg))!.err).toMatch(/^OOM /);
  } finally {
    await admin.config('SET', 'maxmemory', '0');
    await queue.close();
    admin.disconnect();
  }
});

it("a rule's notification refused by a full Redis is `unavailable`, and waits for room instead of being dropped (review \"diskfull\")", { timeout: 30_000 }, async () => {
  const admin = await connectRedis(redis.url, { name: 'test-admin-2', log: createLogger('silent') });
  const queue = await BullMqPushQueue.connect(redis.url, { name: 'refusal-2', log: createLogger('silent'), keys: new RedisKeys(uniquePrefix()) });
  try {
    await admin.config('SET', 'maxmemory-policy', 'noeviction');
    await admin.config('SET', 'maxmemory', '1');
    const leak = { homeId: 'home2', title: 'Water leak', body: 'kitchen', dedupKey: `rule:r2:${randomUUID()}` };
    const refused = await queue.enqueue(leak).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(TierError);
    expect(refused).toMatchObject({ code: 'unavailable', message: expect.stringMatching(/not queued: OOM/) });
    // as the rules send it: tried again until Redis has room (here after about a second)
    let tries = 0;
    const sent = enqueueRetrying(() => (tries++, queue.enqueue(leak)));
    await new Promise((r) => setTimeout(r, 1_000));
    expect(tries).toBeGreaterThan(1);
    await admin.config('SET', 'maxmemory', '0');
    expect(await sent).toMatchObject({ duplicate: false });
    // queued once: no worker here takes it
    expect((await queue.stats()).waiting).toBe(1);
  } finally {
    await admin.config('SET', 'maxmemory', '0');
    await queue.close();
    admin.disconnect();
  }
});

it('TIER_PUSH_MAX_QUEUED counts every node\'s jobs: a node that queued none is refused once the others filled the queue (Redis counts them at most once a second)', { timeout: 30_000 }, async () => {
  const keys = new RedisKeys(uniquePrefix());
  // a's receiver refuses: its jobs wait for a retry a minute away (delayed, not waiting: both count)
  const failing = Object.assign(async () => {
    throw new Error('push service down');
  }, { timeoutMs: 1_000 });
  const a = await BullMqPushQueue.connect(redis.url, { name: 'bound', log: createLogger('silent'), keys, maxQueued: 3, sender: failing, backoffMs: 60_000, maxBackoffMs: 60_000 });
  const b = await BullMqPushQueue.connect(redis.url, { name: 'bound', log: createLogger('silent'), keys, maxQueued: 3 });
  try {
    const note = () => ({ homeId: 'home3', title: 'Water leak', body: 'x', dedupKey: `rule:r3:${randomUUID()}` });
    for (let i = 0; i < 3; i++) await a.enqueue(note());
    await expect.poll(async () => (await b.stats()).delayed).toBe(3);
    // b's first enqueue counts Redis's jobs: a's three
    await expect(b.enqueue(note())).rejects.toMatchObject({ code: 'unavailable', message: expect.stringMatching(/^push queue full: 3/) });
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});
