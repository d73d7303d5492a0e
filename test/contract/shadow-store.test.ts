import { afterAll, beforeAll, describe } from 'vitest';
import { connectRedis, RedisKeys } from '../../src/ports/redis.js';
import { MemoryShadowStore } from '../../src/ports/shadow-store/shadow-store-memory.js';
import { RedisShadowStore } from '../../src/ports/shadow-store/shadow-store-redis.js';
import { createLogger } from '../../src/log/logger.js';
import { startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import { shadowDeltaSpec, shadowStoreContract, type ShadowStoreFactory } from './shadow-store.contract.js';

/** One redis-server for this file; every test gets its own key prefix. */
let redis: Backend;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

/** Every ShadowStore implementation runs the same contract; a new backend is one more line here. */
const implementations: Array<[name: string, make: ShadowStoreFactory]> = [
  [
    'MemoryShadowStore',
    async () => {
      const store = new MemoryShadowStore();
      return { store, close: () => store.close() };
    },
  ],
  [
    'RedisShadowStore',
    async () => {
      const log = createLogger('silent');
      const client = await connectRedis(redis.url, { name: 'contract-shadows', log });
      const store = new RedisShadowStore(client, { log, keys: new RedisKeys(uniquePrefix()) });
      return { store, close: () => store.close() };
    },
  ],
];

for (const [name, make] of implementations) shadowStoreContract(name, make);

describe('shadow delta helpers', shadowDeltaSpec);
