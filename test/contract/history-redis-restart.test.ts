/**
 * A Redis that restarted (or a replica promoted) may have come back without its last writes: a
 * snapshot, an AOF fsynced each second. Each home's hash came back with its old epoch and an older
 * offset, and new events were given offsets already delivered, in the same epoch: apps' feeds
 * dropped them as duplicates and services kept their stale positions (a service team's review,
 * 2026-12-06: 818 offsets given twice after an RDB restore). A node now sends the newest position
 * it was given of a home with its next append: a Redis behind it starts a new epoch. A Redis that
 * came back whole goes on in the same epoch (no reload). Real redis-server with its append-only file.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import { createLogger } from '../../src/log/logger.js';
import { RedisEventHistory } from '../../src/ports/history/history-redis.js';
import { connectRedis, RedisKeys } from '../../src/ports/redis.js';

const log = createLogger('silent');
let redis: Backend;
afterAll(async () => {
  await redis?.stop();
});

describe('Redis history across a restart of Redis', () => {
  it('goes on in its epoch after a restart that kept everything; a Redis found behind an offset it gave starts a new epoch at 1', async () => {
    redis = await startRedis({ persist: true });
    const keys = new RedisKeys(uniquePrefix());
    const client = await connectRedis(redis.url, { name: 'test-history-restart', log });
    const history = new RedisEventHistory(client, { maxEvents: 100, maxAgeMs: 3_600_000 }, { keys, log, eventStreamMaxLen: 100 });
    try {
      const before = [];
      for (let i = 1; i <= 3; i++) before.push(await history.append('h', new Uint8Array([i])));
      expect(before.map((p) => p.offset)).toEqual([1, 2, 3]);
      const old = before[0]!.epoch;

      await redis.restart();
      while (client.status !== 'ready') await new Promise((r) => setTimeout(r, 20));
      // the append-only file kept everything: the same epoch, the next offset (apps recover, no reload)
      expect(await history.append('h', new Uint8Array([4]))).toEqual({ epoch: old, offset: 4 });

      // Redis back from an older copy: the home's newest offset 2, the entries after it gone
      const meta = keys.home('h', 'hist-meta');
      await client.hset(meta, 'o', '2');
      const entries = await client.xrange(keys.home('h', 'hist'), '-', '+');
      await client.xdel(keys.home('h', 'hist'), ...entries.slice(2).map(([id]) => id));
      const after = await history.append('h', new Uint8Array([5]));
      expect(after.epoch).not.toBe(old);
      expect(after.offset).toBe(1);
      expect(await history.read('h', { epoch: old, offset: 4 }, 10, 10)).toMatchObject({ ok: false, reason: 'epoch_changed', pos: { epoch: after.epoch, offset: 1 } });
      // once: the next appends go on in the new epoch
      expect(await history.append('h', new Uint8Array([6]))).toEqual({ epoch: after.epoch, offset: 2 });
      expect(await history.read('h', { epoch: after.epoch, offset: 0 }, 10, 10)).toMatchObject({ ok: true, entries: [{ offset: 1 }, { offset: 2 }] });
      // services see the new epoch in the stream
      const stream = (await client.xrange(keys.single('events'), '-', '+')).map(([, f]) => `${f[3]}:${f[5]}`);
      expect(stream.slice(-2)).toEqual([`${after.epoch}:1`, `${after.epoch}:2`]);
    } finally {
      await history.close();
    }
  });
});
