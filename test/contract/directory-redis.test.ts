import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
