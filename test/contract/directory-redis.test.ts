import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { RedisDirectory } from '../../src/ports/directory/directory-redis.js';
import { connectRedis, RedisKeys } from '../../src/ports/redis.js';
import { createLogger } from '../../src/log/logger.js';
import { startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';

/** What RedisDirectory promises beyond the Directory contract. */

let redis: Backend;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

describe('RedisDirectory', () => {
  it('epochs keep growing after Redis lost its data (restarted without persistence)', async () => {
    const log = createLogger('silent');
    const keys = new RedisKeys(uniquePrefix());
    const before = new RedisDirectory(await connectRedis(redis.url, { name: 'test-directory', log }), { keys, ttlMs: 60_000 });
    const epochs = [];
    for (let i = 0; i < 5; i++) epochs.push((await before.claim('hub-1', 'node-a')).epoch);
    await before.close();

    await redis.restart(); // empty now: the counter is gone
    const after = new RedisDirectory(await connectRedis(redis.url, { name: 'test-directory', log }), { keys, ttlMs: 60_000 });
    try {
      expect(await after.lookup('hub-1')).toBeNull();
      const next = await after.claim('hub-1', 'node-b');
      epochs.push(next.epoch);
      for (let i = 1; i < epochs.length; i++) expect(epochs[i]!, `claim ${i}`).toBeGreaterThan(epochs[i - 1]!);
      expect(Number.isSafeInteger(next.epoch)).toBe(true);
      expect(await after.holds('hub-1', 'node-b', next.epoch)).toBe(true);
    } finally {
      await after.close();
    }
  });
});

describe("RedisDirectory: Redis's clock", () => {
  it("reads its offset to this process's clock at each refresh: about 0 here, about −10 s for a process clock 10 s ahead", async () => {
    const log = createLogger('silent');
    const dir = new RedisDirectory(await connectRedis(redis.url, { name: 'test-directory', log }), { keys: new RedisKeys(uniquePrefix()), ttlMs: 60_000 });
    try {
      expect(dir.clockOffsetMs()).toBeUndefined();
      await dir.refreshNode('node-a');
      expect(Math.abs(dir.clockOffsetMs()!)).toBeLessThan(250);
      const real = Date.now;
      const ahead = vi.spyOn(Date, 'now').mockImplementation(() => real() + 10_000);
      try {
        await dir.refreshNode('node-a');
      } finally {
        ahead.mockRestore();
      }
      expect(Math.abs(dir.clockOffsetMs()! + 10_000)).toBeLessThan(250);
    } finally {
      await dir.close();
    }
  });
});

describe('RedisDirectory: one NODE_ID in two live processes', () => {
  it('each process finds the other at its next refresh; a restarted process does not take its predecessor for one; it clears once the other stops', async () => {
    const log = createLogger('silent');
    const keys = new RedisKeys(uniquePrefix());
    const open = async () => new RedisDirectory(await connectRedis(redis.url, { name: 'test-directory', log }), { keys, ttlMs: 60_000 });
    const first = await open();
    await first.refreshNode('node-a');
    await first.refreshNode('node-a');
    expect(first.nodeIdShared()).toBe(false);
    await first.close();

    // a restart: the predecessor's refresh is found once, before this process refreshed at all
    const restarted = await open();
    await restarted.refreshNode('node-a');
    expect(restarted.nodeIdShared()).toBe(false);
    await restarted.refreshNode('node-a');
    expect(restarted.nodeIdShared()).toBe(false);

    // a second live process given the same id
    const twin = await open();
    try {
      await twin.refreshNode('node-a');
      await restarted.refreshNode('node-a');
      expect(restarted.nodeIdShared()).toBe(true);
      await twin.refreshNode('node-a');
      expect(twin.nodeIdShared()).toBe(true);
      // another node id is not affected
      await twin.refreshNode('node-b');
      await twin.refreshNode('node-b');
      await restarted.refreshNode('node-a');
      expect(restarted.nodeIdShared()).toBe(true);
      // the twin stops: said over once this process found only its own id for a few refreshes (the
      // twins' order varies from round to round: a flag following each round flipped; review diff9)
      for (let i = 0; i < 4; i++) {
        await restarted.refreshNode('node-a');
        expect(restarted.nodeIdShared(), `refresh ${i}`).toBe(true);
      }
      await restarted.refreshNode('node-a');
      expect(restarted.nodeIdShared()).toBe(false);
    } finally {
      await Promise.all([restarted.close(), twin.close()]);
    }
  });
});

describe('RedisDirectory: what a process of a node id leaves listed (review "presence")', () => {
  const log = createLogger('silent');
  const open = async (keys: RedisKeys) => new RedisDirectory(await connectRedis(redis.url, { name: 'test-directory', log }), { keys, ttlMs: 60_000 });

  it("a process restarted within the ttl releases its predecessor's sessions no later claim took, at its fifth refresh (a twin would have been seen by then), once", async () => {
    const keys = new RedisKeys(uniquePrefix());
    const dead = await open(keys);
    await dead.refreshNode('node-a');
    const gone = await dead.claim('hub-gone', 'node-a');
    await dead.claim('hub-back', 'node-a');
    await dead.claim('hub-moved', 'node-a');
    await dead.close(); // killed: nothing released, and the id's liveness has not lapsed
    const elsewhere = await open(keys);
    await elsewhere.claim('hub-moved', 'node-b');
    const restarted = await open(keys);
    try {
      await restarted.refreshNode('node-a');
      const back = await restarted.claim('hub-back', 'node-a');
      // four refreshes cannot tell a restart from a twin whose refresh came late or failed
      for (let i = 0; i < 4; i++) {
        expect(await restarted.takeOwnLeftovers('node-a', new Set(['hub-back']))).toBeNull();
        await restarted.refreshNode('node-a');
      }
      expect(await restarted.takeOwnLeftovers('node-a', new Set(['hub-back']))).toEqual([{ hubId: 'hub-gone', node: 'node-a', epoch: gone.epoch }]);
      expect(await restarted.lookup('hub-gone')).toBeNull();
      expect(await restarted.lookup('hub-back')).toMatchObject({ node: 'node-a', epoch: back.epoch });
      expect(await restarted.lookup('hub-moved')).toMatchObject({ node: 'node-b' });
      // nothing twice
      expect(await restarted.takeOwnLeftovers('node-a', new Set(['hub-back']))).toEqual([]);
    } finally {
      await Promise.all([restarted.close(), elsewhere.close()]);
    }
  });

  it("takes nothing of a twin's (another live process given the id): its sessions stay", async () => {
    const keys = new RedisKeys(uniquePrefix());
    const twin = await open(keys);
    const me = await open(keys);
    try {
      await twin.refreshNode('node-a');
      await twin.claim('hub-twin', 'node-a');
      await me.refreshNode('node-a');
      await twin.refreshNode('node-a');
      await me.refreshNode('node-a');
      // each refreshes every ttl/3: one of the twin's between any two of mine
      for (let i = 0; i < 6; i++) {
        await twin.refreshNode('node-a');
        await me.refreshNode('node-a');
      }
      expect(await me.takeOwnLeftovers('node-a', new Set())).toBeNull();
      expect(await me.lookup('hub-twin')).toMatchObject({ node: 'node-a' });
    } finally {
      await Promise.all([twin.close(), me.close()]);
    }
  });

  it('a release that failed (Redis not answering at the close) is made at the next refresh: the hub no longer reads online', async () => {
    const keys = new RedisKeys(uniquePrefix());
    const dir = await open(keys);
    const admin = await connectRedis(redis.url, { name: 'test-admin', log });
    try {
      await dir.refreshNode('node-a');
      const claim = await dir.claim('hub-1', 'node-a');
      await admin.call('CLIENT', 'PAUSE', '3000', 'WRITE');
      await expect(dir.release('hub-1', 'node-a', claim.epoch)).rejects.toThrow();
      await admin.call('CLIENT', 'UNPAUSE');
      // the call the client gave up on may still run once Redis takes writes again; one that never
      // ran (its connection dropped) leaves the entry as it was: written back so
      await new Promise((r) => setTimeout(r, 300));
      await admin.hset(keys.hub('hub-1', 'loc'), 'node', 'node-a', 'epoch', String(claim.epoch), 'since', String(claim.since));
      expect(await dir.lookup('hub-1')).toMatchObject({ node: 'node-a' });
      await dir.refreshNode('node-a');
      await expect.poll(() => dir.lookup('hub-1')).toBeNull();
    } finally {
      await admin.call('CLIENT', 'UNPAUSE').catch(() => {});
      await Promise.all([dir.close(), admin.quit()]);
    }
  });
});
