/**
 * A Redis that restarted (or a replica promoted) may have come back without its last writes: a
 * snapshot, an AOF fsynced each second. Each home's hash came back with its old epoch and an older
 * offset, and new events were given offsets already delivered, in the same epoch: apps' feeds
 * dropped them as duplicates and services kept their stale positions (a service team's review,
 * 2026-12-06: 818 offsets given twice after an RDB restore). The first append after a restart now
 * starts a new epoch. Real redis-server with its append-only file, restarted.
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
  it('the first append after Redis restarted starts a new epoch at offset 1; a position of the old epoch is told epoch_changed', async () => {
    redis = await startRedis({ persist: true });
    const keys = new RedisKeys(uniquePrefix());
    const client = await connectRedis(redis.url, { name: 'test-history-restart', log });
    const history = new RedisEventHistory(client, { maxEvents: 100, maxAgeMs: 3_600_000 }, { keys, log, eventStreamMaxLen: 100 });
    try {
      const before = [];
      for (let i = 1; i <= 3; i++) before.push(await history.append('h', new Uint8Array([i])));
      expect(before.map((p) => p.offset)).toEqual([1, 2, 3]);
      const old = before[0]!.epoch;
      // an unrelated home that has no event after the restart keeps what it had
      const quiet = await history.append('q', new Uint8Array([9]));

      await redis.restart();
      while (client.status !== 'ready') await new Promise((r) => setTimeout(r, 20));
      // the data came back whole here (the AOF); whether it did, the node cannot tell
      const after = await history.append('h', new Uint8Array([4]));
      expect(after.epoch).not.toBe(old);
      expect(after.offset).toBe(1);
      expect(await history.read('h', { epoch: old, offset: 3 }, 10, 10)).toMatchObject({ ok: false, reason: 'epoch_changed', pos: { epoch: after.epoch, offset: 1 } });
      // once: the next appends go on in the new epoch
      expect(await history.append('h', new Uint8Array([5]))).toEqual({ epoch: after.epoch, offset: 2 });
      expect(await history.read('h', { epoch: after.epoch, offset: 0 }, 10, 10)).toMatchObject({ ok: true, entries: [{ offset: 1 }, { offset: 2 }] });
      expect(await history.position('q')).toEqual(quiet);
      // services see the new epoch in the stream
      const entries = (await client.xrange(keys.single('events'), '-', '+')).map(([, f]) => `${f[1]}:${f[3]}:${f[5]}`);
      expect(entries).toEqual([`h:${old}:1`, `h:${old}:2`, `h:${old}:3`, `q:${quiet.epoch}:1`, `h:${after.epoch}:1`, `h:${after.epoch}:2`]);
    } finally {
      await history.close();
    }
  });
});
