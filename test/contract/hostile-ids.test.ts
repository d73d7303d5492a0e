/**
 * Hostile ids: every implementation of every store port, with the names of Object.prototype's
 * members (`toString`, `valueOf`, `constructor`, `__proto__`, ...) as hub, home, device, node,
 * rule, scene, alias, attribute, lease, nonce, dedup and subject names.
 *
 * What a user would see is asserted: an id never written reads as absent (null, empty, undefined:
 * never a function or another built-in), what is written reads back exactly (own keys and values),
 * listing gives exactly what was written, and nothing of one id is seen under another (home A's
 * device `toString` is not home B's device `toString`). After every test, Object.prototype and the
 * built-ins reachable from it must be as they were: a store that writes through a hostile key
 * pollutes the whole process, and the test says so (and cleans up, so later tests are unaffected).
 *
 * The implementation lists are those of the port's own contract file (`<port>.test.ts`), with the
 * same backends: one redis-server and one nats-server for this file, a fresh key prefix per test.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Attrs } from '../../proto/frames.js';
import { ID_PATTERN, isValidId } from '../../proto/subjects.js';
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import { NoRespondersError, type Bus, type BusMessage } from '../../src/ports/bus/bus.js';
import { MemoryBus } from '../../src/ports/bus/bus-memory.js';
import { NatsBus } from '../../src/ports/bus/bus-nats.js';
import { MemoryDirectory } from '../../src/ports/directory/directory-memory.js';
import { RedisDirectory } from '../../src/ports/directory/directory-redis.js';
import { CachingHubRegistry } from '../../src/ports/hub-registry/hub-registry-cache.js';
import type { HubRecord } from '../../src/ports/hub-registry/hub-registry.js';
import { MemoryHubRegistry, MemoryNonceStore } from '../../src/ports/hub-registry/hub-registry-memory.js';
import { RedisHubRegistry, RedisNonceStore } from '../../src/ports/hub-registry/hub-registry-redis.js';
import { LmdbHubRegistry, LmdbNonceStore } from '../../src/ports/hub-registry/hub-registry-lmdb.js';
import { connectRedis, RedisKeys } from '../../src/ports/redis.js';
import { emptyDevice, type DeviceShadow } from '../../src/ports/shadow-store/shadow-store.js';
import { MemoryShadowStore } from '../../src/ports/shadow-store/shadow-store-memory.js';
import { RedisShadowStore } from '../../src/ports/shadow-store/shadow-store-redis.js';
import { LmdbShadowStore } from '../../src/ports/shadow-store/shadow-store-lmdb.js';
import { tempDataStore } from './fixtures/data-store.js';
import { TierError } from '../../src/errors.js';
import type { PushDelivery, PushNotification } from '../../src/ports/push-queue/push-queue.js';
import { BullMqPushQueue } from '../../src/ports/push-queue/push-queue-bullmq.js';
import { MemoryPushQueue } from '../../src/ports/push-queue/push-queue-memory.js';
import { createLogger } from '../../src/log/logger.js';
import { MemoryLease } from '../../src/ports/lease/lease-memory.js';
import { RedisLease } from '../../src/ports/lease/lease-redis.js';
import type { RuleSpec, SceneSpec } from '../../src/rules/model.js';
import { MemoryRuleStore } from '../../src/ports/rule-store/rule-store-memory.js';
import { RedisRuleStore } from '../../src/ports/rule-store/rule-store-redis.js';
import { startNats, startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import type { BusFactory } from './bus.contract.js';
import { lmdbPushQueue, lmdbRuleStore } from './lmdb-fixture.js';
import type { DirectoryFactory } from './directory.contract.js';
import type { HubRegistryFactory, NonceStoreFactory } from './hub-registry.contract.js';
import type { LeaseFactory } from './lease.contract.js';
import type { PushQueueFactory } from './push-queue.contract.js';
import type { RuleStoreFactory } from './rule-store.contract.js';
import type { ShadowStoreFactory } from './shadow-store.contract.js';

/** Members of Object.prototype whose names pass the id pattern. */
const PROTO_NAMES = Object.getOwnPropertyNames(Object.prototype).filter((n) => ID_PATTERN.test(n));
/** The ports take any string: the names a plain object treats specially come along too. */
const HOSTILE = [...new Set([...PROTO_NAMES, 'prototype', 'constructor', '__proto__'])];

const log = createLogger('silent');
const uid = (): string => randomUUID().replaceAll('-', '').slice(0, 12);
const q = (s: string): string => `"${s}"`;

/** `[[key, value]]` as own properties (an object literal would turn `__proto__` into the prototype). */
function own<T>(entries: Array<[string, T]>): Record<string, T> {
  return Object.fromEntries(entries);
}

/**
 * A value as its own data: objects become their own keys, sorted, with their values; a prototype
 * other than Object.prototype or null shows. Comparing two of these compares exactly what a
 * client would read, and no inherited member can pass for stored data.
 */
function canon(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canon);
  if (typeof v === 'function') return `<function ${v.name}>`;
  if (typeof v !== 'object' || v === null) return v;
  const proto = Object.getPrototypeOf(v) as unknown;
  const out: unknown[] = Object.keys(v)
    .sort()
    .map((k) => [k, canon((v as Record<string, unknown>)[k])]);
  if (proto !== Object.prototype && proto !== null) out.push(['<prototype>', canon(proto)]);
  return out;
}

// ---- backends ---------------------------------------------------------------------------------

let redis: Backend;
let nats: Backend;
beforeAll(async () => {
  [redis, nats] = await Promise.all([startRedis(), startNats()]);
});
afterAll(async () => {
  await Promise.all([redis?.stop(), nats?.stop()]);
});

const redisClient = (name: string) => connectRedis(redis.url, { name, log });

// ---- Object.prototype stays untouched -----------------------------------------------------------

/** Object.prototype, and every object reachable as one of its members (Object, the methods, __proto__'s accessors). */
function guardedObjects(): Array<[label: string, target: object]> {
  const out: Array<[string, object]> = [['Object.prototype', Object.prototype]];
  for (const name of Object.getOwnPropertyNames(Object.prototype)) {
    const d = Object.getOwnPropertyDescriptor(Object.prototype, name)!;
    for (const [part, v] of [['', d.value], [' getter', d.get], [' setter', d.set]] as const) {
      if (typeof v === 'function') out.push([`Object.prototype.${name}${part}`, v as object]);
    }
  }
  return out;
}
const GUARDED = guardedObjects();
let ownKeysBefore: Array<Set<string | symbol>> = [];

beforeEach(() => {
  ownKeysBefore = GUARDED.map(([, target]) => new Set(Reflect.ownKeys(target)));
});

afterEach(() => {
  const added: string[] = [];
  GUARDED.forEach(([label, target], i) => {
    for (const key of Reflect.ownKeys(target)) {
      if (ownKeysBefore[i]!.has(key)) continue;
      added.push(`${label}.${String(key)}`);
      delete (target as Record<string | symbol, unknown>)[key];
    }
  });
  if (added.length > 0) throw new Error(`the store wrote onto shared built-ins (removed again): ${added.join(', ')}`);
});

// ---- HubRegistry, NonceStore -------------------------------------------------------------------

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
      const registry = new RedisHubRegistry(await redisClient('hostile-registry'), { keys: new RedisKeys(uniquePrefix()) });
      return { registry, close: () => registry.close() };
    },
  ],
  [
    'CachingHubRegistry over RedisHubRegistry',
    async () => {
      const registry = new CachingHubRegistry(new RedisHubRegistry(await redisClient('hostile-registry'), { keys: new RedisKeys(uniquePrefix()) }));
      return { registry, close: () => registry.close() };
    },
  ],  [
    'LmdbHubRegistry',
    async () => {
      const tmp = await tempDataStore();
      const registry = new LmdbHubRegistry(tmp.data);
      return { registry, close: () => registry.close().then(tmp.remove) };
    },
  ],
];

describe('HubRegistry', () => {
  for (const [impl, make] of registries) {
    describe(impl, () => {
      for (const id of HOSTILE) {
        it(`hub id and home id ${q(id)}: unknown until created, then exactly its record; other such hubs stay unknown`, async () => {
          const fx = await make();
          try {
            const reg = fx.registry;
            expect(await reg.get(id)).toBeNull();
            expect(await reg.setEnabled(id, false)).toBe(false);
            expect(await reg.get(id)).toBeNull();
            const record: HubRecord = { hubId: id, homeId: id, model: id, secret: `secret-${id}`, enabled: true, createdAt: 1_700_000_000_000 };
            await reg.create(record);
            expect(await reg.get(id)).toEqual(record);
            await expect(reg.create({ ...record, homeId: 'home-other', secret: 'other' })).rejects.toMatchObject({ code: 'already_exists' });
            expect(await reg.setEnabled(id, false)).toBe(true);
            expect(await reg.get(id)).toEqual({ ...record, enabled: false });
            for (const other of HOSTILE) if (other !== id) expect(await reg.get(other), other).toBeNull();
            // the fleet's reads and writes: the home's index, the id listing, labels named like built-ins
            const moved = { ...record, enabled: false, labels: own([[id, id]]) };
            expect(await reg.update(id, { labels: own([[id, id]]) })).toEqual(moved);
            expect(await reg.listHome(id, 10)).toEqual([moved]);
            expect(await reg.listHome(`${id}-other`, 10)).toEqual([]);
            expect((await reg.list({ prefix: id, limit: 10 })).hubs.filter((h) => h.hubId === id)).toEqual([moved]);
            expect(await reg.update(id, { homeId: 'home-other' })).toEqual({ ...moved, homeId: 'home-other' });
            expect(await reg.listHome(id, 10)).toEqual([]);
            expect(await reg.remove(id)).toBe(true);
            expect(await reg.get(id)).toBeNull();
            expect(await reg.listHome('home-other', 10)).toEqual([]);
          } finally {
            await fx.close();
          }
        });
      }
    });
  }
});

const nonceStores: Array<[name: string, make: NonceStoreFactory]> = [
  [
    'MemoryNonceStore',
    async () => {
      const nonces = new MemoryNonceStore();
      return { nonces, close: () => nonces.close() };
    },
  ],
  [
    'RedisNonceStore',
    async () => {
      const nonces = new RedisNonceStore(await redisClient('hostile-nonces'), { keys: new RedisKeys(uniquePrefix()) });
      return { nonces, close: () => nonces.close() };
    },
  ],  [
    'LmdbNonceStore',
    async () => {
      const tmp = await tempDataStore();
      const nonces = new LmdbNonceStore(tmp.data);
      return { nonces, close: () => nonces.close().then(tmp.remove) };
    },
  ],
];

describe('NonceStore', () => {
  for (const [impl, make] of nonceStores) {
    describe(impl, () => {
      for (const id of HOSTILE) {
        it(`nonce ${q(id)}: the first claim wins, the repeat is refused, other such nonces are free`, async () => {
          const fx = await make();
          try {
            expect(await fx.nonces.claim(id, 60_000)).toBe(true);
            expect(await fx.nonces.claim(id, 60_000)).toBe(false);
            for (const other of HOSTILE) if (other !== id) expect(await fx.nonces.claim(other, 60_000), other).toBe(true);
          } finally {
            await fx.close();
          }
        });
      }
    });
  }
});

// ---- Directory ---------------------------------------------------------------------------------

const directories: Array<[name: string, make: DirectoryFactory]> = [
  [
    'MemoryDirectory',
    async ({ ttlMs }) => {
      const directory = new MemoryDirectory(ttlMs);
      return { directory, close: () => directory.close() };
    },
  ],
  [
    'RedisDirectory',
    async ({ ttlMs }) => {
      const directory = new RedisDirectory(await redisClient('hostile-directory'), { keys: new RedisKeys(uniquePrefix()), ttlMs });
      return { directory, close: () => directory.close() };
    },
  ],
];

describe('Directory', () => {
  for (const [impl, make] of directories) {
    describe(impl, () => {
      for (const id of HOSTILE) {
        it(`hub id and node id ${q(id)}: no entry until claimed, then exactly the claim; other such hubs stay offline`, async () => {
          const fx = await make({ ttlMs: 60_000 });
          try {
            const dir = fx.directory;
            expect(await dir.lookup(id)).toBeNull();
            expect(await dir.holds(id, id, 1)).toBe(false);
            const loc = await dir.claim(id, id);
            expect({ ...(await dir.lookup(id)), displaced: false }).toEqual(loc);
            expect(loc.node).toBe(id);
            expect(await dir.holds(id, id, loc.epoch)).toBe(true);
            expect(await dir.holds(id, 'node-other', loc.epoch)).toBe(false);
            for (const other of HOSTILE) if (other !== id) expect(await dir.lookup(other), other).toBeNull();
            // the node's liveness is its own: a plain hub on the hostile node, a hostile hub on a plain node
            const plain = await dir.claim(`hub-${uid()}`, id);
            expect(await dir.holds(`hub-other-${uid()}`, id, plain.epoch)).toBe(false);
            await dir.refreshNode(id);
            const again = await dir.claim(id, 'node-plain');
            expect(again.epoch).toBeGreaterThan(loc.epoch);
            expect(await dir.holds(id, id, loc.epoch)).toBe(false);
            await dir.release(id, 'node-plain', again.epoch);
            expect(await dir.lookup(id)).toBeNull();
          } finally {
            await fx.close();
          }
        });
      }
    });
  }
});

// ---- ShadowStore -------------------------------------------------------------------------------

const shadowStores: Array<[name: string, make: ShadowStoreFactory]> = [
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
      const store = new RedisShadowStore(await redisClient('hostile-shadows'), { log, keys: new RedisKeys(uniquePrefix()) });
      return { store, close: () => store.close() };
    },
  ],  [
    'LmdbShadowStore',
    async () => {
      const tmp = await tempDataStore();
      const store = new LmdbShadowStore(tmp.data, { log });
      return { store, close: () => store.close().then(tmp.remove) };
    },
  ],
];

function reportedDevice(reported: Attrs, version: number): DeviceShadow {
  return { ...emptyDevice(), reported, reportedVersion: version, reportedAt: 1_700_000_000_000 + version };
}

describe('ShadowStore', () => {
  for (const [impl, make] of shadowStores) {
    describe(impl, () => {
      for (const id of HOSTILE) {
        it(`hub ${q(id)} and device ${q(id)} never written read as absent, not as a built-in`, async () => {
          const fx = await make();
          try {
            const store = fx.store;
            const shadow = await store.load(id);
            expect(Object.keys(shadow)).toEqual([]);
            expect(shadow[id]).toBeUndefined();
            expect((await store.load(`hub-${uid()}`))[id]).toBeUndefined();
            expect(await store.loadCursor(id)).toBeNull();
          } finally {
            await fx.close();
          }
        });

        it(`device ${q(id)}: the desired state set on home A's hub is not seen on home B's hub`, async () => {
          const fx = await make();
          try {
            const store = fx.store;
            const hubA = `hub-a-${uid()}`;
            const hubB = `hub-b-${uid()}`;
            const a = await store.setDesired(hubA, id, { doorCode: '1234' });
            // home B reads its hub: nothing of home A's door code, neither loaded nor merged into its own write
            const seenByB = await store.load(hubB);
            expect(canon(seenByB[id]?.desired)).toBeUndefined();
            expect(seenByB[id]).toBeUndefined();
            expect(Object.keys(seenByB)).toEqual([]);
            const b = await store.setDesired(hubB, id, { on: true });
            expect(canon(b.desired)).toEqual(canon({ on: true }));
            expect(b.desiredVersion).toBe(1);
            expect(canon(a.desired)).toEqual(canon({ doorCode: '1234' }));
            expect(a.desiredVersion).toBe(1);
            await store.flush();
            expect(canon((await store.load(hubB))[id]?.desired)).toEqual(canon({ on: true }));
            expect(canon((await store.load(hubA))[id]?.desired)).toEqual(canon({ doorCode: '1234' }));
          } finally {
            await fx.close();
          }
        });

        it(`hub ${q(id)}, device ${q(id)}, attribute ${q(id)}: reported state and cursor round-trip exactly; hubs stay apart`, async () => {
          const fx = await make();
          try {
            const store = fx.store;
            const reported = own<Attrs[string]>([[id, 21], ['plain', true]]);
            store.writeReported(id, id, reportedDevice(reported, 3));
            store.writeCursor(id, { boot: id, seq: 7 });
            await store.flush();
            const shadow = await store.load(id);
            expect(Object.keys(shadow)).toEqual([id]);
            expect(canon(shadow[id]?.reported)).toEqual(canon(reported));
            expect(shadow[id]).toMatchObject({ reportedVersion: 3, reportedAt: 1_700_000_000_003, desiredVersion: 0 });
            expect(canon(shadow[id]?.desired)).toEqual([]);
            expect(await store.loadCursor(id)).toEqual({ boot: id, seq: 7 });
            for (const other of HOSTILE) {
              if (other === id) continue;
              expect(Object.keys(await store.load(other)), other).toEqual([]);
              expect(await store.loadCursor(other), other).toBeNull();
            }
          } finally {
            await fx.close();
          }
        });

        it(`desired attribute ${q(id)}: set round-trips exactly; removing it when never set changes nothing`, async () => {
          const fx = await make();
          try {
            const store = fx.store;
            const hub = `hub-${uid()}`;
            const set = await store.setDesired(hub, 'lock', own([[id, 'x']]));
            expect(canon(set.desired)).toEqual(canon(own([[id, 'x']])));
            expect(set.desiredVersion).toBe(1);
            const untouched = await store.setDesired(hub, 'lock2', own([[id, null]]));
            expect(canon(untouched.desired)).toEqual([]);
            expect(untouched.desiredVersion).toBe(0);
            const removed = await store.setDesired(hub, 'lock', own([[id, null]]));
            expect(canon(removed.desired)).toEqual([]);
            expect(removed.desiredVersion).toBe(2);
            const shadow = await store.load(hub);
            expect(canon(shadow.lock?.desired)).toEqual([]);
            expect(shadow.lock2?.desiredVersion ?? 0).toBe(0);
          } finally {
            await fx.close();
          }
        });

        it(`device list with device ${q(id)}: listed exactly, removed by a full list without it`, async () => {
          const fx = await make();
          try {
            const store = fx.store;
            const hub = `hub-${uid()}`;
            await store.writeDevices(hub, [{ d: id, k: 'switch', m: 'SW-1' }], [], true);
            let shadow = await store.load(hub);
            expect(Object.keys(shadow)).toEqual([id]);
            expect(shadow[id]).toMatchObject({ kind: 'switch', model: 'SW-1', reportedVersion: 0 });
            await store.writeDevices(hub, [{ d: 'plain', k: 'sensor' }], [], true);
            shadow = await store.load(hub);
            expect(Object.keys(shadow)).toEqual(['plain']);
            expect(shadow[id]).toBeUndefined();
          } finally {
            await fx.close();
          }
        });
      }
    });
  }
});

// ---- RuleStore ---------------------------------------------------------------------------------

const ruleStores: Array<[name: string, make: RuleStoreFactory]> = [
  [
    'MemoryRuleStore',
    async () => {
      const store = new MemoryRuleStore();
      return { store, close: () => store.close() };
    },
  ],
  ['LmdbRuleStore', lmdbRuleStore],
  [
    'RedisRuleStore',
    async () => {
      const store = new RedisRuleStore(await redisClient('hostile-rules'), { log, keys: new RedisKeys(uniquePrefix()) });
      return { store, close: () => store.close() };
    },
  ],
];

/** A rule naming `id` wherever a rule names something: hub, device, alias, attribute, event, parameter. */
function hostileRule(id: string): RuleSpec {
  return {
    name: id,
    enabled: true,
    triggers: [
      { type: 'state', hub: id, device: id, attr: id, to: id },
      { type: 'event', hub: id, device: id, event: id, params: own([[id, id]]) },
    ],
    devices: own([[id, { hub: id, device: id }]]),
    conditions: [`has(dev["${id}"]["${id}"])`],
    actions: [
      { type: 'command', hub: id, device: id, set: own([[id, true]]) },
      { type: 'command', hub: id, device: id, method: id, params: own([[id, id]]) },
      { type: 'desired', hub: id, device: id, desired: own([[id, 1]]) },
      { type: 'notify', title: id, body: `{{ dev["${id}"]["${id}"] }}` },
    ],
    cooldownMs: 0,
    limit: { maxRuns: 20, windowMs: 60_000 },
  };
}

function hostileScene(id: string): SceneSpec {
  return { name: id, enabled: true, commands: [{ hub: id, device: id, set: own([[id, true]]) }] };
}

/** The spec part of a stored rule or scene (what the client wrote). */
function specOf<T extends object>(stored: T): Omit<T, 'id' | 'homeId' | 'version' | 'createdAt' | 'updatedAt'> {
  const { id: _i, homeId: _h, version: _v, createdAt: _c, updatedAt: _u, ...rest } = stored as T & { id: unknown; homeId: unknown; version: unknown; createdAt: unknown; updatedAt: unknown };
  return rest;
}

describe('RuleStore', () => {
  for (const [impl, make] of ruleStores) {
    describe(impl, () => {
      for (const id of HOSTILE) {
        it(`home ${q(id)}, rule id and scene id ${q(id)} never written: version 0, nothing stored, default settings, no cursor`, async () => {
          const fx = await make();
          try {
            const store = fx.store;
            expect(await store.homeVersion(id)).toBe(0);
            expect(await store.listRules(id)).toEqual([]);
            expect(await store.listScenes(id)).toEqual([]);
            expect(await store.getRule(id, id)).toBeNull();
            expect(await store.getScene(id, id)).toBeNull();
            expect(canon(await store.getSettings(id))).toEqual(canon({ timeZone: 'UTC' }));
            expect(await store.getCursor(id)).toBeNull();
            expect(await store.updateRule(id, id, hostileRule(id))).toBeNull();
            expect(await store.setRuleEnabled(id, id, false)).toBeNull();
            expect(await store.deleteRule(id, id)).toBe(false);
            expect(await store.updateScene(id, id, hostileScene(id))).toBeNull();
            expect(await store.setSceneEnabled(id, id, false)).toBeNull();
            expect(await store.deleteScene(id, id)).toBe(false);
            expect(await store.listScheduled()).toEqual([]);
            // none of those calls created anything
            expect(await store.homeVersion(id)).toBe(0);
          } finally {
            await fx.close();
          }
        });

        it(`home ${q(id)}: a rule naming ${q(id)} everywhere round-trips exactly; other homes see nothing`, async () => {
          const fx = await make();
          try {
            const store = fx.store;
            const spec = hostileRule(id);
            const r = await store.createRule(id, spec);
            expect(r.homeId).toBe(id);
            expect(canon(specOf(r))).toEqual(canon(spec));
            expect(canon(await store.getRule(id, r.id))).toEqual(canon(r));
            expect(canon(await store.listRules(id))).toEqual(canon([r]));
            expect(await store.getRule(id, id)).toBeNull();
            for (const other of HOSTILE) {
              if (other === id) continue;
              expect(await store.listRules(other), other).toEqual([]);
              expect(await store.getRule(other, r.id), other).toBeNull();
              expect(await store.homeVersion(other), other).toBe(0);
            }
            const renamed = { ...spec, name: `${id} 2`, enabled: false };
            const u = await store.updateRule(id, r.id, renamed);
            expect(canon(specOf(u!))).toEqual(canon(renamed));
            expect(await store.setRuleEnabled(id, r.id, true)).toMatchObject({ enabled: true, version: 3 });
            expect(await store.deleteRule(id, r.id)).toBe(true);
            expect(await store.listRules(id)).toEqual([]);
          } finally {
            await fx.close();
          }
        });

        it(`home ${q(id)}: scenes and settings round-trip exactly; other homes keep the defaults`, async () => {
          const fx = await make();
          try {
            const store = fx.store;
            const s = await store.createScene(id, hostileScene(id));
            expect(canon(specOf(s))).toEqual(canon(hostileScene(id)));
            expect(canon(await store.listScenes(id))).toEqual(canon([s]));
            expect(canon(await store.getScene(id, s.id))).toEqual(canon(s));
            expect(canon(await store.putSettings(id, { timeZone: 'Europe/Berlin' }))).toEqual(canon({ timeZone: 'Europe/Berlin' }));
            expect(canon(await store.getSettings(id))).toEqual(canon({ timeZone: 'Europe/Berlin' }));
            for (const other of HOSTILE) {
              if (other === id) continue;
              expect(await store.listScenes(other), other).toEqual([]);
              expect(canon(await store.getSettings(other)), other).toEqual(canon({ timeZone: 'UTC' }));
            }
            expect(await store.deleteScene(id, s.id)).toBe(true);
            expect(await store.listScenes(id)).toEqual([]);
          } finally {
            await fx.close();
          }
        });

        it(`home ${q(id)} and cron cursor of rule id ${q(id)}: listed for the schedulers, cursors kept apart`, async () => {
          const fx = await make();
          try {
            const store = fx.store;
            const cron: RuleSpec = { ...hostileRule(id), triggers: [{ type: 'cron', cron: '0 7 * * *' }] };
            const r = await store.createRule(id, cron);
            expect(await store.listScheduled()).toEqual([
              { homeId: id, ruleId: r.id, version: 1, updatedAt: r.updatedAt, timeZone: 'UTC', crons: [{ cron: '0 7 * * *', catchUpMs: undefined }] },
            ]);
            expect(await store.advanceCursor(id, id, 1_000)).toBe(true);
            expect(await store.advanceCursor(id, id, 1_000)).toBe(false);
            expect(await store.getCursor(id)).toBe(1_000);
            for (const other of HOSTILE) if (other !== id) expect(await store.getCursor(other), other).toBeNull();
          } finally {
            await fx.close();
          }
        });
      }
    });
  }
});

// ---- Lease -------------------------------------------------------------------------------------

const leases: Array<[name: string, make: LeaseFactory]> = [
  [
    'MemoryLease',
    async () => {
      const lease = new MemoryLease();
      return { lease, close: () => lease.close() };
    },
  ],
  [
    'RedisLease',
    async () => {
      const lease = new RedisLease(await redisClient('hostile-lease'), { keys: new RedisKeys(uniquePrefix()) });
      return { lease, close: () => lease.close() };
    },
  ],
];

describe('Lease', () => {
  for (const [impl, make] of leases) {
    describe(impl, () => {
      for (const id of HOSTILE) {
        it(`key and owner ${q(id)}: free until taken, then held by its owner only; other such keys stay free`, async () => {
          const fx = await make();
          try {
            const lease = fx.lease;
            expect(await lease.renew(id, id, 60_000)).toBe(false);
            expect(await lease.release(id, id)).toBe(false);
            expect(await lease.tryAcquire(id, id, 60_000)).toBe(true);
            expect(await lease.tryAcquire(id, id, 60_000)).toBe(false);
            expect(await lease.tryAcquire(id, 'node-other', 60_000)).toBe(false);
            expect(await lease.renew(id, 'node-other', 60_000)).toBe(false);
            expect(await lease.renew(id, id, 60_000)).toBe(true);
            for (const other of HOSTILE) if (other !== id) expect(await lease.tryAcquire(other, 'node-other', 60_000), other).toBe(true);
            expect(await lease.release(id, 'node-other')).toBe(false);
            expect(await lease.release(id, id)).toBe(true);
            expect(await lease.tryAcquire(id, 'node-other', 60_000)).toBe(true);
          } finally {
            await fx.close();
          }
        });
      }
    });
  }
});

// ---- PushQueue ---------------------------------------------------------------------------------

const pushQueues: Array<[name: string, make: PushQueueFactory]> = [
  [
    'MemoryPushQueue',
    async (options) => {
      const queue = new MemoryPushQueue(options);
      return { queue, close: () => queue.close() };
    },
  ],
  ['LmdbPushQueue', lmdbPushQueue],
  [
    'BullMqPushQueue',
    async (options) => {
      const queue = await BullMqPushQueue.connect(redis.url, { ...options, name: 'hostile-push', log, keys: new RedisKeys(uniquePrefix()) });
      return { queue, close: () => queue.close() };
    },
  ],
];

/** The deliveries a sender saw, and a latch for the n-th. */
function deliveries() {
  const seen: PushDelivery[] = [];
  let waiters: Array<{ n: number; resolve: () => void }> = [];
  return {
    seen,
    sender: async (d: PushDelivery) => {
      seen.push(d);
      waiters = waiters.filter((w) => (seen.length >= w.n ? (w.resolve(), false) : true));
    },
    until: (n: number): Promise<void> => (seen.length >= n ? Promise.resolve() : new Promise((resolve) => waiters.push({ n, resolve }))),
  };
}

describe('PushQueue', () => {
  for (const [impl, make] of pushQueues) {
    describe(impl, () => {
      for (const id of HOSTILE) {
        it(`dedup key and data key ${q(id)}: delivered exactly; a repeat is a duplicate, other such keys are not`, async () => {
          const rec = deliveries();
          const fx = await make({ sender: rec.sender, dedupTtlMs: 60_000 });
          try {
            const n: PushNotification = { homeId: 'home-1', title: id, body: id, dedupKey: id, data: own([[id, id], ['ruleId', 'r1']]) };
            const first = await fx.queue.enqueue(n);
            expect(first.duplicate).toBe(false);
            expect(await fx.queue.enqueue(n)).toEqual({ id: first.id, duplicate: true });
            for (const other of HOSTILE) {
              if (other === id) continue;
              expect((await fx.queue.enqueue({ ...n, dedupKey: other, data: { ruleId: other } })).duplicate, other).toBe(false);
            }
            await rec.until(HOSTILE.length);
            await fx.queue.drain();
            expect(rec.seen).toHaveLength(HOSTILE.length);
            const mine = rec.seen.find((d) => d.id === first.id)!;
            expect(canon(mine.notification)).toEqual(canon({ ...n, audience: 'home' }));
          } finally {
            await fx.close();
          }
        });

        it(`home id ${q(id)}: ${isValidId(id) ? 'delivered exactly' : 'refused as invalid_field homeId'}`, async () => {
          const rec = deliveries();
          const fx = await make({ sender: rec.sender });
          try {
            const n: PushNotification = { homeId: id, title: 'Leak', body: 'bath', dedupKey: `k-${uid()}` };
            if (!isValidId(id)) {
              const err = await fx.queue.enqueue(n).catch((e: unknown) => e);
              expect(err).toBeInstanceOf(TierError);
              expect(err).toMatchObject({ code: 'invalid_field', field: 'homeId' });
              expect(await fx.queue.stats()).toMatchObject({ waiting: 0, delayed: 0, active: 0, delivered: 0 });
              return;
            }
            await fx.queue.enqueue(n);
            await rec.until(1);
            expect(canon(rec.seen[0]!.notification)).toEqual(canon({ ...n, audience: 'home' }));
          } finally {
            await fx.close();
          }
        });
      }
    });
  }
});

// ---- Bus ---------------------------------------------------------------------------------------

const buses: Array<[name: string, make: BusFactory]> = [
  [
    'MemoryBus',
    async () => {
      const timers = new TimerWheel();
      const bus = new MemoryBus(timers, log);
      return {
        bus,
        close: async () => {
          await bus.close();
          timers.close();
        },
      };
    },
  ],
  [
    'NatsBus',
    async () => {
      const bus = await NatsBus.connect(nats.url, { name: 'hostile', log });
      return { bus, close: () => bus.close() };
    },
  ],
];

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

/** Messages of one subscription, with a latch for the n-th. */
function listen(bus: Bus, subject: string, queue?: string) {
  const got: BusMessage[] = [];
  let waiters: Array<{ n: number; resolve: () => void }> = [];
  bus.subscribe(
    subject,
    (m) => {
      got.push(m);
      waiters = waiters.filter((w) => (got.length >= w.n ? (w.resolve(), false) : true));
    },
    queue === undefined ? {} : { queue },
  );
  return {
    count: () => got.length,
    subjects: () => got.map((m) => m.subject),
    until: (n: number): Promise<void> => (got.length >= n ? Promise.resolve() : new Promise((resolve) => waiters.push({ n, resolve }))),
  };
}

describe('Bus', () => {
  for (const [impl, make] of buses) {
    describe(impl, () => {
      for (const id of HOSTILE) {
        it(`subjects with the token ${q(id)}: requests reach its responder only, events its subscribers only`, async () => {
          const fx = await make();
          try {
            const bus = fx.bus;
            const p = `t${uid()}`;
            bus.subscribe(`${p}.hub.${id}.cmd`, (m) => void m.respond(enc(`${id}:${dec(m.data)}`)));
            const exact = listen(bus, `${p}.evt.${id}.${id}`);
            const wildcard = listen(bus, `${p}.evt.*.${id}`);
            await bus.flush();
            expect(dec(await bus.request(`${p}.hub.${id}.cmd`, enc('ping'), 5_000))).toBe(`${id}:ping`);
            for (const other of HOSTILE) {
              if (other === id) continue;
              await expect(bus.request(`${p}.hub.${other}.cmd`, enc('ping'), 5_000), other).rejects.toBeInstanceOf(NoRespondersError);
              bus.publish(`${p}.evt.${other}.${other}`, enc(other));
            }
            // published after the others: once it is here, anything misrouted would be too
            bus.publish(`${p}.evt.${id}.${id}`, enc(id));
            await Promise.all([exact.until(1), wildcard.until(1)]);
            expect(exact.subjects()).toEqual([`${p}.evt.${id}.${id}`]);
            expect(wildcard.subjects()).toEqual([`${p}.evt.${id}.${id}`]);
          } finally {
            await fx.close();
          }
        });

        it(`queue group ${q(id)}: each message goes to one member of the group; another group gets its own copy`, async () => {
          const fx = await make();
          try {
            const bus = fx.bus;
            const subject = `t${uid()}.work.${id}`;
            const members = [listen(bus, subject, id), listen(bus, subject, id)];
            const others = HOSTILE.filter((o) => o !== id).map((o) => listen(bus, subject, o));
            const all = listen(bus, subject);
            const barrier = listen(bus, `${subject}.end`);
            await bus.flush();
            for (let i = 0; i < 6; i++) bus.publish(subject, enc(String(i)));
            // published last: once it is here, every delivery of the six is too
            bus.publish(`${subject}.end`, enc(''));
            await barrier.until(1);
            expect(all.count()).toBe(6);
            expect(members[0]!.count() + members[1]!.count()).toBe(6);
            for (const g of others) expect(g.count()).toBe(6);
          } finally {
            await fx.close();
          }
        });
      }
    });
  }
});
