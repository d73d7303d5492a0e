import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { RedisDirectory } from '../../src/ports/directory/directory-redis.js';
import { RedisNodeReleases } from '../../src/ports/directory/node-releases-redis.js';
import { RedisKeys } from '../../src/ports/redis.js';
import { startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';

/** Which release each live node runs, read on Redis's clock, for diagnose's `releases`. */

let redis: Backend;
let client: Redis;
beforeAll(async () => {
  redis = await startRedis();
  client = new Redis(redis.url);
});
afterAll(async () => {
  client?.disconnect();
  await redis?.stop();
});

describe('RedisNodeReleases', () => {
  it('lists each live node with its release, and a node the directory holds live without one as null', async () => {
    const keys = new RedisKeys(uniquePrefix());
    const a = new RedisNodeReleases(client, { keys, nodeId: 'node-a', release: '1.2.0+aaa', ttlMs: 60_000 });
    const b = new RedisNodeReleases(client, { keys, nodeId: 'node-b', release: '1.3.0+bbb', ttlMs: 60_000 });
    await Promise.all([a.advertise(), b.advertise()]);
    // node-c refreshes its liveness in the directory but says no release (a node of an older release)
    const directory = new RedisDirectory(client.duplicate(), { keys, ttlMs: 60_000 });
    try {
      await directory.refreshNode('node-c');
      expect(await a.live()).toEqual([
        { node: 'node-a', release: '1.2.0+aaa' },
        { node: 'node-b', release: '1.3.0+bbb' },
        { node: 'node-c', release: null },
      ]);
    } finally {
      await directory.close();
    }
  });

  it('leaves out a node whose entry lapsed, forgets one a day old, and writes again every ttl/3', async () => {
    const keys = new RedisKeys(uniquePrefix());
    const reader = new RedisNodeReleases(client, { keys, nodeId: 'node-r', release: 'r', ttlMs: 1_000 });
    // written by hand on Redis's clock: a node stopped 2 s ago, and one gone for two days
    const [s] = await client.time();
    const nowMs = Number(s) * 1000;
    await client.hset(keys.single('releases'), 'stopped', `${nowMs - 2_000} r-old`, 'gone', `${nowMs - 2 * 86_400_000} r-older`);
    expect(await reader.live()).toEqual([]);
    expect(await client.hkeys(keys.single('releases'))).toEqual(['stopped']);

    const writer = new RedisNodeReleases(client, { keys, nodeId: 'node-w', release: 'r-new', ttlMs: 300 });
    writer.start();
    try {
      // past the reader's ttl: only an entry written again since is still live
      await new Promise((r) => setTimeout(r, 1_500));
      expect(await reader.live()).toEqual([{ node: 'node-w', release: 'r-new' }]);
    } finally {
      writer.stop();
    }
    await new Promise((r) => setTimeout(r, 1_100));
    expect(await reader.live()).toEqual([]);
  });

  it('a node that writes also forgets, now and then, the entries of nodes gone for a day (no diagnose needed)', async () => {
    const keys = new RedisKeys(uniquePrefix());
    const [s] = await client.time();
    await client.hset(keys.single('releases'), 'gone', `${Number(s) * 1000 - 2 * 86_400_000} r-old`);
    const writer = new RedisNodeReleases(client, { keys, nodeId: 'node-w', release: 'r', ttlMs: 300, forgetEveryWrites: 2 });
    writer.start();
    try {
      await new Promise((r) => setTimeout(r, 600));
      expect(await client.hkeys(keys.single('releases'))).toEqual(['node-w']);
    } finally {
      writer.stop();
    }
  });
});
