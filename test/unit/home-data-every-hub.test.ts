/**
 * A home's export and erasure reach every hub of the home, however many: over the registry and
 * shadow store of the embedded default (LMDB) and of cluster mode (Redis, behind the node's
 * cache), a home larger than one page of its index is exported whole and erased whole (records
 * and shadows gone, the answer naming every hub), its neighbour left alone. Until 2026-12-06
 * both read one page of 1,000: a home of 1,005 hubs kept five, which could still connect.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Fleet, MAX_HOME_HUBS } from '../../src/api/fleet.js';
import { eraseHome, exportHome, type HomeDataDeps } from '../../src/api/home-data.js';
import { SecretBox } from '../../src/auth/secret-box.js';
import { createLogger } from '../../src/log/logger.js';
import { MemoryDirectory } from '../../src/ports/directory/directory-memory.js';
import { CachingHubRegistry } from '../../src/ports/hub-registry/hub-registry-cache.js';
import { LmdbHubRegistry } from '../../src/ports/hub-registry/hub-registry-lmdb.js';
import { RedisHubRegistry } from '../../src/ports/hub-registry/hub-registry-redis.js';
import type { HubRegistry } from '../../src/ports/hub-registry/hub-registry.js';
import { connectRedis, RedisKeys } from '../../src/ports/redis.js';
import { LmdbShadowStore } from '../../src/ports/shadow-store/shadow-store-lmdb.js';
import { RedisShadowStore } from '../../src/ports/shadow-store/shadow-store-redis.js';
import { emptyDevice, type ShadowStore } from '../../src/ports/shadow-store/shadow-store.js';
import { DEFAULT_SETTINGS } from '../../src/rules/model.js';
import { startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import { tempDataStore } from '../contract/fixtures/data-store.js';

const log = createLogger('silent');

let redis: Backend;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

interface Stores {
  registry: HubRegistry;
  shadows: ShadowStore;
  close(): Promise<void>;
}

const backends: Array<[name: string, open: () => Promise<Stores>]> = [
  [
    'embedded default (LMDB)',
    async () => {
      const tmp = await tempDataStore();
      const registry = new LmdbHubRegistry(tmp.data);
      const shadows = new LmdbShadowStore(tmp.data, { log });
      return { registry, shadows, close: () => Promise.all([registry.close(), shadows.close()]).then(tmp.remove) };
    },
  ],
  [
    'cluster (Redis)',
    async () => {
      const keys = new RedisKeys(uniquePrefix());
      const connect = () => connectRedis(redis.url, { name: 'test-home-data-every-hub', log });
      const registry = new CachingHubRegistry(new RedisHubRegistry(await connect(), { keys }));
      const shadows = new RedisShadowStore(await connect(), { log, keys, batchWindowMs: 0 });
      return { registry, shadows, close: () => Promise.all([registry.close(), shadows.close()]).then(() => {}) };
    },
  ],
];

const HOME = 'home-big';
const NEIGHBOUR = 'home-next';

for (const [name, open] of backends) {
  describe(`a home's export and erasure, every hub of it: ${name}`, () => {
    let stores: Stores;
    afterEach(async () => {
      await stores?.close();
    });

    /** `n` hubs in HOME (ids in a shuffled order of creation), one in NEIGHBOUR, each with a lamp in its shadow. */
    async function provision(n: number): Promise<string[]> {
      stores = await open();
      const ids = Array.from({ length: n }, (_, i) => `hub-${String(i).padStart(5, '0')}`);
      const create = async (hubId: string, homeId: string) => {
        await stores.registry.create({ hubId, homeId, model: 'HG-2', secret: `sealed-${hubId}`, enabled: true, createdAt: 1_700_000_000_000 });
        stores.shadows.writeReported(hubId, 'lamp', { ...emptyDevice(), kind: 'switch', reported: { on: true }, reportedVersion: 1, reportedAt: 1_700_000_000_000 });
      };
      const order = [...ids].sort((a, b) => (a.split('').reverse().join('') < b.split('').reverse().join('') ? -1 : 1));
      for (let i = 0; i < order.length; i += 100) await Promise.all(order.slice(i, i + 100).map((id) => create(id, HOME)));
      await create('hub-neighbour', NEIGHBOUR);
      await stores.shadows.flush();
      return ids;
    }

    function deps(hubPage?: number): HomeDataDeps {
      const fleet = new Fleet({
        registry: stores.registry,
        bus: { publish: () => {} } as never,
        directory: new MemoryDirectory(),
        shadows: stores.shadows,
        rules: {} as never,
        box: new SecretBox(SecretBox.randomKey()),
        log,
      });
      return {
        fleet,
        rules: { listRules: async () => [], listScenes: async () => [], getSettings: async () => ({ ...DEFAULT_SETTINGS }) } as never,
        shadows: stores.shadows,
        history: undefined,
        eventsSettled: async () => {},
        revokeHome: async () => 1_740_902_400,
        push: { removeHome: async () => 0 },
        ...(hubPage === undefined ? {} : { hubPage }),
      };
    }

    /** Exports HOME, then erases it: both must hold `ids`, and nothing of them may be left. */
    async function exportedAndErasedWhole(ids: string[], d: HomeDataDeps): Promise<void> {
      const doc = await exportHome(d, HOME);
      expect(doc.hubs.map((h) => h.hubId)).toEqual(ids);
      expect(doc.hubs.every((h) => h.homeId === HOME && h.devices.lamp?.reported.on === true)).toBe(true);

      const erased = await eraseHome(d, HOME);
      expect(erased.hubs).toEqual(ids);
      const left = await stores.registry.placements(ids);
      expect(left.filter((p) => p !== null)).toEqual([]);
      for (const id of [ids[0]!, ids.at(-1)!]) expect(await stores.registry.get(id)).toBeNull();
      const shadows = await Promise.all(ids.map((id) => stores.shadows.load(id)));
      expect(ids.filter((_, i) => Object.keys(shadows[i]!).length > 0)).toEqual([]);
      expect(await stores.registry.listHome(HOME, 10)).toEqual([]);
      expect((await exportHome(d, HOME)).hubs).toEqual([]);
      // the neighbour keeps its hub and shadow
      expect((await stores.registry.get('hub-neighbour'))?.homeId).toBe(NEIGHBOUR);
      expect((await stores.shadows.load('hub-neighbour')).lamp?.reported).toEqual({ on: true });
      // an erasure sent again finds nothing
      expect((await eraseHome(d, HOME)).hubs).toEqual([]);
    }

    it('over several pages of the home’s index (4 hubs a page, 11 hubs; then 8, a page boundary)', async () => {
      await exportedAndErasedWhole(await provision(11), deps(4));
      await stores.close();
      await exportedAndErasedWhole(await provision(8), deps(4));
    });

    it(`past the default page of ${MAX_HOME_HUBS} hubs: 1,005, each of them`, async () => {
      await exportedAndErasedWhole(await provision(MAX_HOME_HUBS + 5), deps());
    }, 60_000);
  });
}
