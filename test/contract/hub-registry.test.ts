import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryHubRegistry, MemoryNonceStore } from '../../src/ports/hub-registry/hub-registry-memory.js';
import { CachingHubRegistry } from '../../src/ports/hub-registry/hub-registry-cache.js';
import { RedisHubRegistry, RedisNonceStore } from '../../src/ports/hub-registry/hub-registry-redis.js';
import { LmdbHubRegistry, LmdbNonceStore } from '../../src/ports/hub-registry/hub-registry-lmdb.js';
import { tempDataStore } from './fixtures/data-store.js';
import { connectRedis, RedisKeys } from '../../src/ports/redis.js';
import { createLogger } from '../../src/log/logger.js';
import { startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import {
  hubRegistryContract,
  nonceStoreContract,
  type HubRegistryFactory,
  type NonceStoreFactory,
} from './hub-registry.contract.js';

/** One redis-server for this file; every test gets its own key prefix. */
let redis: Backend;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

const connect = () => connectRedis(redis.url, { name: 'contract-registry', log: createLogger('silent') });

/** Every implementation runs the same contract; a new backend is one more line in each list. */
const registries: Array<[name: string, make: HubRegistryFactory]> = [
  [
    'MemoryHubRegistry',
    async () => {
      const registry = new MemoryHubRegistry();
      return { registry, close: () => registry.close() };
    },
  ],
  [
    'RedisHubRegistry',
    async () => {
      const registry = new RedisHubRegistry(await connect(), { keys: new RedisKeys(uniquePrefix()) });
      return { registry, close: () => registry.close() };
    },
  ],
  [
    'CachingHubRegistry over RedisHubRegistry',
    async () => {
      const registry = new CachingHubRegistry(new RedisHubRegistry(await connect(), { keys: new RedisKeys(uniquePrefix()) }));
      return { registry, close: () => registry.close() };
    },
  ],
  [
    'LmdbHubRegistry (DATA_SYNC=commit)',
    async () => {
      const tmp = await tempDataStore('commit');
      const registry = new LmdbHubRegistry(tmp.data);
      return { registry, close: () => registry.close().then(tmp.remove) };
    },
  ],
];

/** A wall clock and a monotonic one: time passing moves both, a step moves the wall clock alone. */
function fakeClocks() {
  let wall = 1_700_000_000_000;
  let steady = 5_000;
  return {
    now: () => wall,
    monotonic: () => steady,
    moves: {
      advanceTime: (ms: number) => {
        wall += ms;
        steady += ms;
      },
      stepWall: (ms: number) => {
        wall += ms;
      },
    },
  };
}

const nonceStores: Array<[name: string, make: NonceStoreFactory]> = [
  [
    'MemoryNonceStore (fake clocks)',
    async () => {
      const clock = fakeClocks();
      const nonces = new MemoryNonceStore(clock.now, clock.monotonic);
      return { nonces, ...clock.moves, close: () => nonces.close() };
    },
  ],
  // the same implementation on real time: exercises the suite's polling path a backend without an
  // injectable clock (Redis) takes
  [
    'MemoryNonceStore (real clock)',
    async () => {
      const nonces = new MemoryNonceStore();
      return { nonces, close: () => nonces.close() };
    },
  ],
  [
    'RedisNonceStore',
    async () => {
      const nonces = new RedisNonceStore(await connect(), { keys: new RedisKeys(uniquePrefix()) });
      return { nonces, close: () => nonces.close() };
    },
  ],
  [
    'LmdbNonceStore (fake clocks)',
    async () => {
      const clock = fakeClocks();
      const tmp = await tempDataStore();
      const nonces = new LmdbNonceStore(tmp.data, { now: clock.now, monotonic: clock.monotonic });
      return { nonces, ...clock.moves, sweep: () => nonces.written().then(() => nonces.sweep()), close: () => nonces.close().then(tmp.remove) };
    },
  ],
  [
    'LmdbNonceStore (real clock)',
    async () => {
      const tmp = await tempDataStore();
      const nonces = new LmdbNonceStore(tmp.data);
      return { nonces, close: () => nonces.close().then(tmp.remove) };
    },
  ],
];

for (const [name, make] of registries) hubRegistryContract(name, make);

describe('RedisHubRegistry.reindex', () => {
  it('puts records written without the indexes (earlier versions) into them, so they are listed', async () => {
    const keys = new RedisKeys(uniquePrefix());
    const client = await connect();
    const registry = new RedisHubRegistry(client, { keys });
    try {
      // as an earlier version wrote it: the hash alone
      await client.hset(keys.hub('old-1', 'hub'), 'homeId', 'home-old', 'secret', 's', 'enabled', '1', 'createdAt', '1');
      await registry.create({ hubId: 'new-1', homeId: 'home-old', model: undefined, secret: 's', enabled: true, createdAt: 1 });
      expect((await registry.list({ limit: 10 })).hubs.map((h) => h.hubId)).toEqual(['new-1']);
      expect(await registry.reindex()).toBe(2);
      expect((await registry.list({ limit: 10 })).hubs.map((h) => h.hubId)).toEqual(['new-1', 'old-1']);
      expect((await registry.listHome('home-old', 10)).map((h) => h.hubId)).toEqual(['new-1', 'old-1']);
    } finally {
      await registry.close();
    }
  });
});
for (const [name, make] of nonceStores) nonceStoreContract(name, make);
