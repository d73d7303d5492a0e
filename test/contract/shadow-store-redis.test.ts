import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Attrs } from '../../proto/frames.js';
import { RedisDirectory } from '../../src/ports/directory/directory-redis.js';
import { RedisHubRegistry } from '../../src/ports/hub-registry/hub-registry-redis.js';
import { connectRedis, RedisKeys } from '../../src/ports/redis.js';
import { emptyDevice, type DeviceShadow } from '../../src/ports/shadow-store/shadow-store.js';
import { RedisShadowStore, type RedisShadowStoreOptions } from '../../src/ports/shadow-store/shadow-store-redis.js';
import { createLogger } from '../../src/log/logger.js';
import { startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';

/**
 * Promises of the Redis shadow store beyond the shared contract: batching, surviving a Redis
 * outage without losing or reordering writes, and key names that fit Redis Cluster.
 */

const log = createLogger('silent');
/**
 * The ceiling for anything that should happen: only reached when the implementation is broken.
 * Below the test timeout (30 s) only so that the failure names what did not happen.
 */
const WITHIN_MS = 20_000;
/** A command timeout beyond the test's: what settles did not wait for it. */
const BEYOND_TEST_MS = 600_000;

let redis: Backend;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

let prefix: string;
let keys: RedisKeys;
let hub: string;
/** everything a test opened, closed after it */
let opened: Array<{ close(): Promise<void> }>;

beforeEach(() => {
  prefix = uniquePrefix();
  keys = new RedisKeys(prefix);
  hub = `hub-${prefix.slice(1, 13)}`;
  opened = [];
});

afterEach(async () => {
  redis.resume();
  if (!redis.running) await redis.restart();
  await Promise.all(opened.map((o) => o.close()));
});

/** A client that reconnects quickly (backoff capped at 100 ms), so outage tests stay short. */
function client(name: string, commandTimeoutMs?: number): Promise<Redis> {
  return connectRedis(redis.url, { name, log, maxBackoffMs: 100, ...(commandTimeoutMs === undefined ? {} : { commandTimeoutMs }) });
}

async function store(options: Partial<RedisShadowStoreOptions> = {}, commandTimeoutMs?: number): Promise<RedisShadowStore> {
  const s = new RedisShadowStore(await client('test-shadows', commandTimeoutMs), { log, keys, ...options });
  opened.push(s);
  return s;
}

/** A second client on the same Redis, to look at what is really stored. */
async function inspector(): Promise<Redis> {
  const c = await client('test-inspector');
  opened.push({ close: async () => void c.disconnect() });
  return c;
}

function device(reported: Attrs, version: number, at = 1_700_000_000_000 + version): DeviceShadow {
  return { ...emptyDevice(), reported, reportedVersion: version, reportedAt: at };
}

/** Polls a condition the test has caused; fails after WITHIN_MS. */
async function until(what: string, cond: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + WITHIN_MS;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`not within ${WITHIN_MS} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('RedisShadowStore batching', () => {
  it('holds writes for the batch window, coalesced per device; flush makes them durable for another store', async () => {
    const s = await store({ batchWindowMs: 60_000 });
    const raw = await inspector();
    for (let v = 1; v <= 100; v++) s.writeReported(hub, 'd1', device({ level: v }, v));
    s.writeReported(hub, 'd2', device({ on: true }, 1));
    s.writeCursor(hub, { boot: 'b1', seq: 7 });
    s.writeCursor(hub, { boot: 'b1', seq: 8 });
    // nothing written yet (the window is a minute), but this process sees its own writes
    expect(await raw.exists(keys.hub(hub, 'shadow'))).toBe(0);
    expect(s.pendingWrites).toBe(3);
    expect((await s.load(hub)).d1).toMatchObject({ reported: { level: 100 }, reportedVersion: 100 });

    await s.flush();
    expect(s.pendingWrites).toBe(0);
    const other = await store();
    const shadow = await other.load(hub);
    expect(shadow.d1).toMatchObject({ reported: { level: 100 }, reportedVersion: 100, reportedAt: 1_700_000_000_100 });
    expect(shadow.d2).toMatchObject({ reported: { on: true }, reportedVersion: 1 });
    expect(await other.loadCursor(hub)).toEqual({ boot: 'b1', seq: 8 });
  });

  it('writes a batch by itself once the window has passed, without flush', async () => {
    const s = await store({ batchWindowMs: 20 });
    const other = await store();
    const started = Date.now();
    s.writeReported(hub, 'd1', device({ on: true }, 1));
    await until('the batch reached redis', async () => (await other.load(hub)).d1 !== undefined);
    expect(Date.now() - started).toBeGreaterThanOrEqual(15);
    // redis may show the write before this store has read the pipeline's reply
    await until('the store saw the batch acknowledged', async () => s.pendingWrites === 0);
    expect(s.healthy).toBe(true);
  });

  it('a write made while flush waits is not lost and flush still resolves', async () => {
    const s = await store({ batchWindowMs: 5 });
    const other = await store();
    s.writeReported(hub, 'd1', device({ n: 1 }, 1));
    const flushed = s.flush();
    s.writeReported(hub, 'd1', device({ n: 2 }, 2));
    await flushed;
    await s.flush();
    expect((await other.load(hub)).d1).toMatchObject({ reported: { n: 2 }, reportedVersion: 2 });
  });
});

describe('RedisShadowStore epoch fence', () => {
  it("refuses a stale holder's late batch after a newer session of the hub has written", async () => {
    const newer = await store({ batchWindowMs: 5 });
    const stale = await store({ batchWindowMs: 5 });
    newer.writeReported(hub, 'd1', device({ temperature: 22 }, 7), 2);
    newer.writeCursor(hub, { boot: 'b', seq: 40 }, 2);
    await newer.flush();
    // the old node comes back from a partition and sends what it had queued under epoch 1
    stale.writeReported(hub, 'd1', device({ temperature: 19 }, 3), 1);
    stale.writeCursor(hub, { boot: 'b', seq: 12 }, 1);
    await stale.flush();
    expect(stale.staleBatches).toBe(1);
    const reader = await store();
    expect((await reader.load(hub)).d1).toMatchObject({ reported: { temperature: 22 }, reportedVersion: 7 });
    expect(await reader.loadCursor(hub)).toEqual({ boot: 'b', seq: 40 });
    // the same or a newer epoch writes as before
    newer.writeReported(hub, 'd1', device({ temperature: 23 }, 8), 2);
    await newer.flush();
    expect((await reader.load(hub)).d1?.reported).toEqual({ temperature: 23 });
    expect(newer.staleBatches).toBe(0);
  });

  it("a node's writes queued by a session another node took over are neither read by its next session nor written under that session's epoch", async () => {
    // node B's writes wait (its shadows connection stalled, here a long batch window); the hub moves to node A
    const b = await store({ batchWindowMs: 600_000 });
    const a = await store({ batchWindowMs: 5 });
    const heard: string[] = [];
    b.writeReported(hub, 'lamp', device({ x: 1 }, 3), 1);
    b.writeCursor(hub, { boot: 'b', seq: 3 }, 1, { cursorStored: (_h, seq) => heard.push(`B1 ${seq}`) });
    await a.loadSession(hub, 2);
    a.writeReported(hub, 'lamp', device({ x: 2 }, 4), 2);
    a.writeCursor(hub, { boot: 'b', seq: 4 }, 2, { cursorStored: (_h, seq) => heard.push(`A ${seq}`) });
    await a.flush();
    expect(heard).toEqual(['A 4']);
    // B's reads see what A stored, not its own older session's writes
    expect((await b.load(hub)).lamp?.reported).toEqual({ x: 2 });
    expect(await b.loadCursor(hub)).toEqual({ boot: 'b', seq: 4 });
    // the hub comes back to B: its new session starts from what A acknowledged
    const start = await b.loadSession(hub, 3);
    expect(start.shadow.lamp?.reported).toEqual({ x: 2 });
    expect(start.cursor).toEqual({ boot: 'b', seq: 4 });
    // and its first write (another device) does not carry the old session's lamp past the fence
    b.writeReported(hub, 'plug', device({ on: true }, 1), 3);
    b.writeCursor(hub, { boot: 'b', seq: 5 }, 3, { cursorStored: (_h, seq) => heard.push(`B2 ${seq}`) });
    await b.flush();
    const reader = await store();
    expect((await reader.load(hub)).lamp?.reported).toEqual({ x: 2 });
    expect((await reader.load(hub)).plug?.reported).toEqual({ on: true });
    expect(await reader.loadCursor(hub)).toEqual({ boot: 'b', seq: 5 });
    expect(heard).toEqual(['A 4', 'B2 5']);
  });

  it('writes unfenced batches (epoch 0) whatever the stored epoch', async () => {
    const s = await store({ batchWindowMs: 5 });
    s.writeReported(hub, 'd1', device({ n: 1 }, 1), 5);
    await s.flush();
    s.writeReported(hub, 'd1', device({ n: 2 }, 2));
    await s.flush();
    expect((await s.load(hub)).d1?.reported).toEqual({ n: 2 });
  });
});

describe('RedisShadowStore during a Redis outage', () => {
  it('keeps writes while Redis is down, reports unhealthy, and writes the latest values after a restart', async () => {
    // commands never time out within the test: whatever fails while Redis is down fails because it is down
    const s = await store({ batchWindowMs: 10, flushTimeoutMs: 300 }, BEYOND_TEST_MS);
    s.writeReported(hub, 'd1', device({ level: 1 }, 1));
    await s.flush();
    expect(s.healthy).toBe(true);

    await redis.stop();
    s.writeReported(hub, 'd1', device({ level: 2 }, 2));
    s.writeCursor(hub, { boot: 'b1', seq: 2 });
    await until('the store notices the outage', () => !s.healthy);
    // a batch has failed and was kept; these writes come after it and must win over its retry
    await until('a batch failed', () => s.pendingWrites > 0);
    for (let v = 3; v <= 6; v++) s.writeReported(hub, 'd1', device({ level: v }, v));
    s.writeReported(hub, 'd2', device({ open: true }, 1));
    s.writeCursor(hub, { boot: 'b1', seq: 6 });
    expect(s.pendingWrites).toBe(3);
    // this process still answers with its own writes; flush cannot succeed and says so in time
    expect((await s.loadCursor(hub))).toEqual({ boot: 'b1', seq: 6 });
    await expect(s.flush()).rejects.toMatchObject({ code: 'unavailable' });
    expect(s.pendingWrites).toBe(3);
    // a read-modify-write cannot be durable now: it fails at once instead of hanging (Redis comes
    // back only after this, and the client's command timeout is beyond the test's)
    await expect(s.setDesired(hub, 'd1', { level: 9 })).rejects.toThrow();

    await redis.restart(); // same port, empty (no persistence): only the retried writes are there
    await s.flush();
    expect(s.pendingWrites).toBe(0);
    await until('healthy again', () => s.healthy);
    const fresh = await store();
    const shadow = await fresh.load(hub);
    expect(shadow.d1).toMatchObject({ reported: { level: 6 }, reportedVersion: 6 });
    expect(shadow.d2).toMatchObject({ reported: { open: true }, reportedVersion: 1 });
    expect(await fresh.loadCursor(hub)).toEqual({ boot: 'b1', seq: 6 });
  });

  it('a batch that times out on a hung Redis is retried without overwriting the writes made meanwhile', async () => {
    const s = await store({ batchWindowMs: 10, flushTimeoutMs: 200 }, 300);
    s.writeReported(hub, 'd1', device({ level: 1 }, 1));
    await s.flush();

    redis.pause();
    s.writeReported(hub, 'd1', device({ level: 2 }, 2));
    s.writeCursor(hub, { boot: 'b1', seq: 2 });
    // the batch with version 2 goes out and hangs; newer writes queue behind it
    await until('the batch is on the wire', () => s.inFlightWrites === 2);
    s.writeReported(hub, 'd1', device({ level: 3 }, 3));
    s.writeCursor(hub, { boot: 'b1', seq: 3 });
    await until('the hung batch timed out', () => !s.healthy);
    expect(s.pendingWrites).toBe(2);
    // (load would time out on the hung Redis; the cursor of this process is answered locally)
    expect(await s.loadCursor(hub)).toEqual({ boot: 'b1', seq: 3 });

    redis.resume();
    await s.flush();
    const fresh = await store();
    expect((await fresh.load(hub)).d1).toMatchObject({ reported: { level: 3 }, reportedVersion: 3 });
    expect(await fresh.loadCursor(hub)).toEqual({ boot: 'b1', seq: 3 });
  });

  it('retries by itself: queued writes reach Redis after it is back, without a flush', async () => {
    const s = await store({ batchWindowMs: 10 });
    await redis.kill();
    s.writeReported(hub, 'd1', device({ on: false }, 4));
    await until('the store notices the outage', () => !s.healthy && s.pendingWrites === 1);
    await redis.restart();
    const fresh = await store();
    await until('the retried write is in redis', async () => (await fresh.load(hub)).d1?.reportedVersion === 4);
    await until('the store is healthy', () => s.healthy && s.pendingWrites === 0);
  });
});

describe('Redis Cluster compatibility', () => {
  /** The part of a key Redis Cluster hashes: the first non-empty `{...}`, else the whole key. */
  function hashTagOf(key: string): string {
    const open = key.indexOf('{');
    if (open < 0) return key;
    const close = key.indexOf('}', open + 1);
    if (close < 0 || close === open + 1) return key;
    return key.slice(open + 1, close);
  }

  it('every key of one hub carries the same hash tag; a node\'s liveness key its own', async () => {
    const raw = await inspector();
    const s = await store();
    const directory = new RedisDirectory(await client('test-directory'), { keys, ttlMs: 60_000 });
    const registry = new RedisHubRegistry(await client('test-registry'), { keys });
    opened.push(directory, registry);
    const node = `node-${prefix.slice(1, 9)}`;

    s.writeReported(hub, 'd1', device({ on: true }, 1));
    s.writeCursor(hub, { boot: 'b', seq: 1 });
    await s.setDesired(hub, 'd2', { on: true });
    await s.writeDevices(hub, [{ d: 'd1', k: 'switch', m: 'SW' }], [], false);
    await s.flush();
    const { epoch } = await directory.claim(hub, node);
    expect(await directory.holds(hub, node, epoch)).toBe(true);
    await registry.create({ hubId: hub, homeId: 'home-1', model: undefined, secret: 's', enabled: true, createdAt: 1 });

    const found: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await raw.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      found.push(...batch);
    } while (cursor !== '0');

    const hubKeys = found.filter((k) => k.includes(hub)).sort();
    expect(hubKeys).toEqual([keys.hub(hub, 'epoch'), keys.hub(hub, 'hub'), keys.hub(hub, 'loc'), keys.hub(hub, 'shadow')].sort());
    for (const k of hubKeys) {
      expect(k.startsWith(prefix), k).toBe(true);
      expect(hashTagOf(k), k).toBe(`h:${hub}`);
    }
    // the registry's indexes: of every hub (any slot) and of the home (the home's tag)
    const otherKeys = found.filter((k) => !k.includes(hub)).sort();
    // the node's list of the sessions it holds, in its own slot (the directory's takeOrphans)
    expect(otherKeys).toEqual([keys.node(node, 'alive'), keys.node(node, 'held'), keys.single('hubs'), keys.home('home-1', 'hubs')].sort());
    expect(hashTagOf(keys.node(node, 'alive'))).toBe(`n:${node}`);
    expect(hashTagOf(keys.node(node, 'held'))).toBe(`n:${node}`);
    expect(hashTagOf(keys.home('home-1', 'hubs'))).toBe('home:home-1');
  });

  it('refuses a key prefix or an id that would change the hash tag', () => {
    expect(() => new RedisKeys('a{b}:')).toThrow(TypeError);
    expect(() => new RedisKeys('x:').hub('a}b', 'shadow')).toThrow(TypeError);
    expect(() => new RedisKeys('x:').hub('', 'shadow')).toThrow(TypeError);
  });
});

describe('RedisShadowStore checked desired writes', () => {
  it('reads the whole hub only for a write that adds a device or desired bytes (review cluster-cost): the device alone answers the others, limits held', async () => {
    const s = await store();
    const limits = { devices: 3, attrsPerDevice: 2, valueBytes: 8, desiredBytes: 30 };
    for (const id of ['d1', 'd2']) s.writeReported(hub, id, device({ on: true }, 1));
    await s.flush();
    const client = (s as unknown as { client: Redis }).client;
    const wholeReads = vi.spyOn(client, 'hgetall');
    await s.setDesired(hub, 'd1', { level: 5 }, limits); // grows: the hub's total is read
    expect(wholeReads).toHaveBeenCalledTimes(1);
    await s.setDesired(hub, 'd1', { level: 7 }, limits); // a number for a number: the device alone
    await s.setDesired(hub, 'd1', { level: null }, limits); // shrinks
    expect(wholeReads).toHaveBeenCalledTimes(1);
    // refusals the device alone answers, as before
    await expect(s.setDesired(hub, 'd2', { name: 'x'.repeat(9) }, limits)).rejects.toMatchObject({ code: 'limit_exceeded' });
    await s.setDesired(hub, 'd1', { a: 1, b: 2 }, limits);
    await expect(s.setDesired(hub, 'd1', { a: null, c: 'x' }, limits)).resolves.toMatchObject({ desired: { b: 2, c: 'x' } });
    await expect(s.setDesired(hub, 'd1', { d: 1 }, limits)).rejects.toMatchObject({ code: 'limit_exceeded', field: 'desired' });
    // growth past the hub's bytes and a new device past the count: read whole, refused
    await expect(s.setDesired(hub, 'd2', { long: 'abcdefgh', more: 'abcdefgh' }, limits)).rejects.toMatchObject({ code: 'limit_exceeded' });
    await s.setDesired(hub, 'd3', { on: true }, limits);
    await expect(s.setDesired(hub, 'd4', { on: true }, limits)).rejects.toMatchObject({ code: 'limit_exceeded', field: 'deviceId' });
    wholeReads.mockRestore();
  });
});
