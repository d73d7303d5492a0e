import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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

describe('RedisRevocationStore read a page at a time', () => {
  it('lists every revocation once across pages, many of one expiry straddling the pages among them', async () => {
    const client = await connectRedis(redis.url, { name: 'contract-revocations-pages', log: createLogger('silent') });
    const store = new RedisRevocationStore(client, { keys: new RedisKeys(uniquePrefix()), pageSize: 7 });
    // on Redis's clock: an add removes what expired by it
    const now = Math.floor(Date.now() / 1000);
    const added: string[] = [];
    for (let i = 0; i < 40; i++) {
      // 25 of one expiry (more than three pages of it), the rest spread
      const exp = i < 25 ? now + 3_600 : now + 100 + i;
      await store.add({ jti: `j${i}`, exp });
      added.push(`j${i}`);
    }
    await store.add({ jti: 'gone', exp: now + 50 });
    // asked as of a time past the one that ends first
    const listed = (await store.list(now + 60)).map((r) => r.jti!);
    expect(listed.sort()).toEqual(added.sort());
    await closeRedis(client);
  });
});
