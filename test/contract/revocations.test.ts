import { afterAll, beforeAll } from 'vitest';
import { MemoryRevocationStore } from '../../src/ports/revocations/revocations-memory.js';
import { LmdbRevocationStore } from '../../src/ports/revocations/revocations-lmdb.js';
import { RedisRevocationStore } from '../../src/ports/revocations/revocations-redis.js';
import { closeRedis, connectRedis, RedisKeys } from '../../src/ports/redis.js';
import { createLogger } from '../../src/log/logger.js';
import { startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import { tempDataStore } from './fixtures/data-store.js';
import { revocationStoreContract, type RevocationStoreFactory } from './revocations.contract.js';

/** One redis-server for this file; every test gets its own key prefix. */
let redis: Backend;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

const stores: Array<[name: string, make: RevocationStoreFactory]> = [
  ['MemoryRevocationStore', async () => ({ store: new MemoryRevocationStore(), close: async () => {} })],
  [
    'LmdbRevocationStore (DATA_SYNC=commit)',
    async () => {
      const tmp = await tempDataStore('commit');
      const store = new LmdbRevocationStore(tmp.data);
      return { store, close: () => store.close().then(tmp.remove) };
    },
  ],
  [
    'RedisRevocationStore',
    async () => {
      const client = await connectRedis(redis.url, { name: 'contract-revocations', log: createLogger('silent') });
      const store = new RedisRevocationStore(client, { keys: new RedisKeys(uniquePrefix()) });
      return { store, close: () => store.close().then(() => closeRedis(client)) };
    },
  ],
];

for (const [name, make] of stores) revocationStoreContract(name, make);
