/**
 * The Redis history refuses an append that reaches Redis late (a hung Redis, resumed): its deadline
 * is on Redis's clock, from the node's reading of it. That reading is kept against the node's
 * monotonic clock: against the wall clock, a step back of the node's clock (an NTP correction) put
 * the next deadline in the past, and a batch of acknowledged reports was refused as "late" and
 * missing from the history (the clocks team's run: one press in seven, after a 5 s step). Real redis-server.
 */
import { afterAll, describe, expect, it, vi } from 'vitest';
import { startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import { createLogger } from '../../src/log/logger.js';
import { RedisEventHistory } from '../../src/ports/history/history-redis.js';
import { connectRedis, RedisKeys } from '../../src/ports/redis.js';

const log = createLogger('silent');
let redis: Backend;
afterAll(async () => {
  vi.restoreAllMocks();
  await redis?.stop();
});

describe('Redis history appends across a step of the node’s wall clock', () => {
  it.each([-5_000, 60_000])('stores the append after the wall clock moved by %i ms', async (step) => {
    redis ??= await startRedis();
    const client = await connectRedis(redis.url, { name: 'test-history-clock', log });
    const history = new RedisEventHistory(client, { maxEvents: 100, maxAgeMs: 3_600_000 }, { keys: new RedisKeys(uniquePrefix()), log, eventStreamMaxLen: 0 });
    try {
      // the first reply gives the node its reading of Redis's clock (a local round trip is quick)
      expect((await history.append('h', new Uint8Array([1]))).offset).toBe(1);
      expect((await history.append('h', new Uint8Array([2]))).offset).toBe(2);
      const wall = Date.now;
      const spy = vi.spyOn(Date, 'now').mockImplementation(() => wall.call(Date) + step);
      try {
        expect((await history.append('h', new Uint8Array([3]))).offset).toBe(3);
      } finally {
        spy.mockRestore();
      }
    } finally {
      await history.close();
    }
  });
});
