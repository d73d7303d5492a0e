import { afterAll } from 'vitest';
import { closeRedis, connectRedis, RedisKeys } from '../../src/ports/redis.js';
import { BullMqPushQueue } from '../../src/ports/push-queue/push-queue-bullmq.js';
import { MemoryPushQueue } from '../../src/ports/push-queue/push-queue-memory.js';
import { createLogger } from '../../src/log/logger.js';
import { startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import { lmdbPushQueue } from './lmdb-fixture.js';
import { pushQueueContract, type PushQueueFactory } from './push-queue.contract.js';

/**
 * One redis-server for the file, started by the first test that needs it. Redis times out a
 * blocked worker (BullMQ's wait for a delayed retry) on its cron tick: at the default `hz 10` a
 * retry is up to 100 ms late, too coarse for the contract's 35 ms backoff cap; `hz 100` gives 10 ms.
 */
let redis: Promise<Backend> | null = null;
async function startTestRedis(): Promise<Backend> {
  const backend = await startRedis();
  const client = await connectRedis(backend.url, { name: 'test-setup', log: createLogger('silent') });
  await client.config('SET', 'hz', '100');
  await closeRedis(client);
  return backend;
}
afterAll(async () => {
  if (redis) await (await redis).stop();
});

/** Every PushQueue implementation runs the same contract; a new backend is one more line here. */
const implementations: Array<[name: string, make: PushQueueFactory]> = [
  [
    'MemoryPushQueue',
    async (options) => {
      const queue = new MemoryPushQueue(options);
      return { queue, close: () => queue.close() };
    },
  ],
  // a fresh data directory per test
  ['LmdbPushQueue', lmdbPushQueue],
  [
    // a unique key prefix per test: a fresh queue, as BullMQ's own tests do
    'BullMqPushQueue',
    async (options) => {
      const backend = await (redis ??= startTestRedis());
      const queue = await BullMqPushQueue.connect(backend.url, { ...options, name: 'test-push', log: createLogger('silent'), keys: new RedisKeys(uniquePrefix()) });
      return { queue, close: () => queue.close() };
    },
  ],
];

for (const [name, make] of implementations) pushQueueContract(name, make);
