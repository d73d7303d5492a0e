import { afterAll, beforeAll, describe } from 'vitest';
import { connectRedis, RedisKeys } from '../../src/ports/redis.js';
import { MemoryShadowStore } from '../../src/ports/shadow-store/shadow-store-memory.js';
import { RedisShadowStore } from '../../src/ports/shadow-store/shadow-store-redis.js';
import { LmdbShadowStore } from '../../src/ports/shadow-store/shadow-store-lmdb.js';
import { tempDataStore } from './fixtures/data-store.js';
import { createLogger } from '../../src/log/logger.js';
import { startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import { desiredLimitsContract } from './shadow-store-desired.contract.js';
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
      const keys = new RedisKeys(uniquePrefix());
      const open = () => connectRedis(redis.url, { name: 'contract-shadows', log }).then((client) => new RedisShadowStore(client, { log, keys }));
      // other nodes' stores on the same keys: desired writes of several nodes race
      const [store, ...peers] = await Promise.all([open(), open(), open(), open(), open()]);
      return { store: store!, peers, close: () => Promise.all([store!, ...peers].map((s) => s.close())).then(() => {}) };
    },
  ],
  ...(['commit', 'os'] as const).map((sync): [string, ShadowStoreFactory] => [
    `LmdbShadowStore (DATA_SYNC=${sync})`,
    async () => {
      const tmp = await tempDataStore(sync);
      const store = new LmdbShadowStore(tmp.data, { log: createLogger('silent') });
      return { store, close: () => store.close().then(tmp.remove) };
    },
  ]),
];

for (const [name, make] of implementations) {
  shadowStoreContract(name, make);
  desiredLimitsContract(name, make);
}

describe('shadow delta helpers', shadowDeltaSpec);
