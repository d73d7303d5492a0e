/**
 * The watch of Redis's data (redis-data-watch.ts): the salt the node started with, gone or replaced,
 * is a loss, said once (an error line, `onLost`) until the same salt is back; a Redis that does not
 * answer says nothing of its data.
 */
import { describe, expect, it } from 'vitest';
import { RedisDataWatch } from '../../src/compose/redis-data-watch.js';
import { createLogger } from '../../src/log/logger.js';

describe('RedisDataWatch', () => {
  it('a loss is told once, whether the mark is gone or another; an outage is not a loss; the mark back clears it', async () => {
    let mark: string | undefined | Error = 'salt-1';
    let told = 0;
    const watch = new RedisDataWatch({
      readMark: async () => {
        if (mark instanceof Error) throw mark;
        return mark;
      },
      log: createLogger('silent'),
      onLost: () => told++,
      everyMs: 600_000,
    });
    await watch.start();
    await watch.check();
    expect(watch.lostSince).toBeNull();
    mark = new Error('ECONNREFUSED');
    await watch.check();
    expect(watch.lostSince).toBeNull();
    mark = undefined;
    await watch.check();
    expect(watch.lostSince).not.toBeNull();
    expect(told).toBe(1);
    // a node started since wrote a salt of its own: still not this node's data
    mark = 'salt-2';
    await watch.check();
    expect(told).toBe(1);
    expect(watch.lostSince).not.toBeNull();
    mark = 'salt-1';
    await watch.check();
    expect(watch.lostSince).toBeNull();
    mark = 'salt-3';
    await watch.check();
    expect(told).toBe(2);
    watch.stop();
  });
});
