import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { eventually } from '../helpers/eventually.js';
import { startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import { createLogger } from '../../src/log/logger.js';
import { LmdbEventHistory } from '../../src/ports/history/history-lmdb.js';
import { MemoryEventHistory } from '../../src/ports/history/history-memory.js';
import { RedisEventHistory, type RedisHistoryOptions } from '../../src/ports/history/history-redis.js';
import type { HistoryRetention } from '../../src/ports/history/history.js';
import { openDataStore, type DataStore } from '../../src/ports/lmdb.js';
import type { Redis } from 'ioredis';
import { connectRedis, RedisKeys } from '../../src/ports/redis.js';
import { historyContract, type HistoryFactory } from './history.contract.js';
import { RedisProxy } from '../helpers/redis-proxy.js';

/** one redis-server for the file, started by the first test that needs it */
let redis: Promise<Backend> | null = null;
afterAll(async () => {
  if (redis) await (await redis).stop();
});

async function redisHistory(retention: HistoryRetention, keys: RedisKeys, eventStreamMaxLen = 0, stream: Partial<RedisHistoryOptions> = {}): Promise<RedisEventHistory> {
  const backend = await (redis ??= startRedis());
  const log = createLogger('silent');
  // with rules marks, as a cluster node runs it: the append script writes them in the same call
  return new RedisEventHistory(await connectRedis(backend.url, { name: 'test-history', log }), retention, { keys, log, eventStreamMaxLen, nodeId: 'contract-node', ...stream });
}

/** Every EventHistory adapter runs the same contract; a new backend is one more line here. */
const implementations: Array<[name: string, make: HistoryFactory]> = [
  [
    'MemoryEventHistory (fake clock)',
    async (retention) => {
      let now = 1_700_000_000_000;
      const history = new MemoryEventHistory(retention, () => now);
      return {
        history,
        advanceTime: (ms) => {
          now += ms;
        },
        reset: async () => new MemoryEventHistory(retention, () => now),
        close: () => history.close(),
      };
    },
  ],
  [
    // reset: the process died without a clean stop (its lock file left behind)
    'LmdbEventHistory (fake clock)',
    async (retention) => {
      let now = 1_700_000_000_000;
      const dir = mkdtempSync(join(tmpdir(), 'hubtier-history-'));
      let store: DataStore = openDataStore(dir, { sync: 'os' });
      let history: LmdbEventHistory;
      const open = async () => (history = await LmdbEventHistory.open(store, retention, { now: () => now, sweepMs: 0 }));
      return {
        history: await open(),
        advanceTime: (ms) => {
          now += ms;
        },
        // a clean stop closes the history (its last appends written) before the store
        async reopen() {
          await history.close();
          await store.close();
          store = openDataStore(dir, { sync: 'os' });
          return open();
        },
        async reset() {
          await history.close();
          await store.close();
          // a lock naming a process that is gone: what kill -9 leaves
          writeFileSync(join(dir, 'node.lock'), '999999999\ncrashed\n');
          store = openDataStore(dir, { sync: 'os' });
          return open();
        },
        async close() {
          await history.close();
          await store.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  ],
  [
    // on Redis' clock: the age test waits; reset deletes the home's keys as a flushed Redis would
    'RedisEventHistory',
    async (retention) => {
      const keys = new RedisKeys(uniquePrefix());
      let history = await redisHistory(retention, keys);
      return {
        history,
        async reopen() {
          await history.close();
          history = await redisHistory(retention, keys);
          return history;
        },
        async reset() {
          const backend = await redis!;
          const client = await connectRedis(backend.url, { name: 'test-history-reset', log: createLogger('silent') });
          const found = await client.keys(`${keys.prefix}*`);
          if (found.length > 0) await client.del(...found);
          await client.quit();
          return history;
        },
        close: () => history.close(),
      };
    },
  ],
];

for (const [name, make] of implementations) historyContract(name, make);

describe('RedisEventHistory services stream', () => {
  it('adds every event to <prefix>events with its home, epoch and offset, the event bytes as given', async () => {
    const keys = new RedisKeys(uniquePrefix());
    const history = await redisHistory({ maxEvents: 10, maxAgeMs: 60_000 }, keys, 1000);
    const a = await history.append('home-a', Uint8Array.from([1, 2, 0xff]));
    await history.append('home-b', Uint8Array.from([3]));
    const client = await connectRedis((await redis!).url, { name: 'test-events', log: createLogger('silent') });
    // the stream write follows the append without being awaited: poll until both are there
    let rows: Array<[Buffer, Buffer[]]> = [];
    for (let i = 0; i < 2_000 && rows.length < 2; i++) {
      rows = (await client.xrangeBuffer(keys.single('events'), '-', '+')) as Array<[Buffer, Buffer[]]>;
      if (rows.length < 2) await new Promise((r) => setTimeout(r, 10));
    }
    const fields = rows.map(([, f]) => Object.fromEntries(Array.from({ length: f.length / 2 }, (_, i) => [f[2 * i]!.toString(), f[2 * i + 1]!])));
    expect(fields.map((f) => [f.home!.toString(), f.epoch!.toString(), f.offset!.toString()])).toEqual([
      ['home-a', a.epoch, '1'],
      ['home-b', expect.any(String), '1'],
    ]);
    expect(Array.from(fields[0]!.event!)).toEqual([1, 2, 0xff]);
    await client.quit();
    await history.close();
  });
});

describe('RedisEventHistory services stream retention', () => {
  const homesIn = async (client: Redis, keys: RedisKeys) => ((await client.xrange(keys.single('events'), '-', '+')) as Array<[string, string[]]>).map(([, f]) => f[1]);

  it("keeps no entry older than its max age, a removed home's included, though few enough share the stream's newest node", async () => {
    const keys = new RedisKeys(uniquePrefix());
    // a short history age too: the home's own stream goes, and the services' copy must go with its own age
    const history = await redisHistory({ maxEvents: 100, maxAgeMs: 200 }, keys, 100_000, { eventStreamMaxAgeMs: 300, eventStreamTrimMs: 0 });
    const client = await connectRedis((await redis!).url, { name: 'test-events-age', log: createLogger('silent') });
    await Promise.all([1, 2, 3].map((i) => history.append('home-deleted', Uint8Array.from([i]))));
    await history.append('home-kept', Uint8Array.from([4]));
    await history.remove('home-deleted');
    // Redis' clock: the age passes in real time
    await new Promise((r) => setTimeout(r, 400));
    await history.append('home-kept', Uint8Array.from([5]));
    expect(await homesIn(client, keys)).toEqual(['home-kept']);
    await client.quit();
    await history.close();
  });

  it('trims entries past the age while no event comes (a quiet fleet)', async ({ signal }) => {
    const keys = new RedisKeys(uniquePrefix());
    const history = await redisHistory({ maxEvents: 100, maxAgeMs: 60_000 }, keys, 100_000, { eventStreamMaxAgeMs: 300, eventStreamTrimMs: 50 });
    const client = await connectRedis((await redis!).url, { name: 'test-events-quiet', log: createLogger('silent') });
    await history.append('home-q', Uint8Array.from([1]));
    expect(await homesIn(client, keys)).toEqual(['home-q']);
    await eventually(signal, 'the quiet stream trimmed', async () => ((await client.xlen(keys.single('events'))) === 0 ? true : undefined));
    // the stream itself stays, with its consumer groups: only entries go
    expect(await client.exists(keys.single('events'))).toBe(1);
    await client.quit();
    await history.close();
  });
});

describe('RedisEventHistory of a home without events', () => {
  it('keeps the key a look made for the max age only (a sub to a mistyped home left one for good); the first event keeps it', async () => {
    const keys = new RedisKeys(uniquePrefix());
    const history = await redisHistory({ maxEvents: 10, maxAgeMs: 60_000 }, keys);
    const client = await connectRedis((await redis!).url, { name: 'test-meta-ttl', log: createLogger('silent') });
    const meta = (home: string) => keys.home(home, 'hist-meta');
    const looked = await history.position('never-used');
    await history.read('read-only', { epoch: 'e0', offset: 0 }, 10, 10);
    for (const home of ['never-used', 'read-only']) {
      const ttl = await client.pttl(meta(home));
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(60_000);
    }
    // the first event: same epoch as the look gave, and the hash stays
    const first = await history.append('never-used', Uint8Array.from([1]));
    expect(first).toEqual({ epoch: looked.epoch, offset: 1 });
    expect(await client.pttl(meta('never-used'))).toBe(-1);
    // a hash with events and the look's expiry (a release before 2026-12-06 appended to a home a newer
    // node had looked at first: it expired while the hub reported, every app reloaded): the next event keeps it
    await client.pexpire(meta('never-used'), 60_000);
    expect(await history.append('never-used', Uint8Array.from([2]))).toEqual({ epoch: looked.epoch, offset: 2 });
    expect(await client.pttl(meta('never-used'))).toBe(-1);
    await client.quit();
    await history.close();
  });
});

describe('RedisEventHistory reads from far back', () => {
  it("starts at the indexed entry before `since` (every 256th offset's id in the meta hash) and answers as the read from the newest does: every page, a trimmed start, a stale or missing index", async ({ signal }) => {
    const keys = new RedisKeys(uniquePrefix());
    const history = await redisHistory({ maxEvents: 500, maxAgeMs: 600_000 }, keys);
    const client = await connectRedis((await redis!).url, { name: 'test-history-index', log: createLogger('silent') });
    const meta = keys.home('far', 'hist-meta');
    let epoch = '';
    for (let o = 1; o <= 2_000; o++) {
      const pos = history.append('far', Buffer.from(`e${o}`));
      if (o % 256 === 0 || o === 2_000) epoch = (await pos).epoch;
    }
    const pages = async () => {
      const seen: string[] = [];
      for (const since of [0, 1, 255, 256, 1_279, 1_280, 1_300, 1_450, 1_499, 1_500, 1_535, 1_536, 1_700, 1_999, 2_000]) {
        const read = await history.read('far', { epoch, offset: since }, since + 300, 3_000);
        if (!read.ok) {
          seen.push(`${since}: ${read.reason}`);
          continue;
        }
        const want = Array.from({ length: Math.min(300, 2_000 - since) }, (_, i) => since + 1 + i);
        expect(read.entries.map((e) => e.offset), `since ${since}`).toEqual(want);
        expect(read.entries.map((e) => Buffer.from(e.data).toString()), `since ${since}`).toEqual(want.map((o) => `e${o}`));
        seen.push(`${since}: ok`);
      }
      return seen;
    };
    // a field per 256 offsets within a retention and two blocks back, the older ones removed as new ones came
    const fields = await client.hgetall(meta);
    const index = Object.keys(fields).filter((f) => f.startsWith('i:'));
    expect(index.map((f) => Number(f.slice(2))).sort((a, b) => a - b)).toEqual([1_280, 1_536, 1_792]);
    const indexed = await pages();
    // about 500 kept (MAXLEN ~): the oldest pages are too old (1,280's entry among them: the index points before the stream), the rest served
    expect(indexed.slice(0, 6)).toEqual(['0: too_old', '1: too_old', '255: too_old', '256: too_old', '1279: too_old', '1280: too_old']);
    expect(indexed.slice(-4)).toEqual(['1536: ok', '1700: ok', '1999: ok', '2000: ok']);
    // a page from far back walks from the indexed entry, not from the newest back (Redis shows a script's calls to MONITOR)
    const monitor = await client.monitor();
    const calls: string[] = [];
    monitor.on('monitor', (_time: string, args: string[]) => void calls.push(args[0]!.toLowerCase()));
    expect((await history.read('far', { epoch, offset: 1_536 }, 1_600, 3_000)).ok).toBe(true);
    await eventually(signal, 'the read seen by MONITOR', async () => (calls.includes('xrange') ? true : undefined));
    expect(calls).not.toContain('xrevrange');
    monitor.disconnect();
    // the same answers as the read from the newest entry back (no index: a stream appended to before it)
    await client.hdel(meta, ...index);
    expect(await pages()).toEqual(indexed);
    // and with an index gone stale (ids of a stream since expired, or of nothing)
    await client.hset(meta, ...index.flatMap((f) => [f, '1-0']));
    expect(await pages()).toEqual(indexed);
    await client.quit();
    await history.close();
  });
});

/** The services' stream's entries as field maps, `event` in hex. */
async function streamEntries(client: Redis, keys: RedisKeys): Promise<Array<Record<string, string>>> {
  const rows = (await client.xrangeBuffer(keys.single('events'), '-', '+')) as Array<[Buffer, Buffer[]]>;
  return rows.map(([, f]) => Object.fromEntries(f.flatMap((v, i) => (i % 2 ? [] : [[v.toString(), v.toString() === 'event' ? f[i + 1]!.toString('hex') : f[i + 1]!.toString()]]))));
}

describe('RedisEventHistory through a hung Redis', () => {
  it('stores no append that reached Redis after the node gave up on it: offsets go on without a hole, and a read has no event the node was told failed', async () => {
    const own = await startRedis();
    const log = createLogger('silent');
    const keys = new RedisKeys(uniquePrefix());
    const history = new RedisEventHistory(await connectRedis(own.url, { name: 'test-history-hang', log }), { maxEvents: 100, maxAgeMs: 60_000 }, { keys, log, eventStreamMaxLen: 1000 });
    try {
      const before = await history.append('home-h', Uint8Array.from([1]));
      await history.append('home-h', Uint8Array.from([2])); // a second quick round trip: the clocks are compared
      own.pause();
      const during = [history.append('home-h', Uint8Array.from([3])), history.append('home-h', Uint8Array.from([4]))];
      const outcomes = await Promise.allSettled(during); // the client's 2 s command timeout
      own.resume();
      expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected']);
      const after = await history.append('home-h', Uint8Array.from([5]));
      expect(after).toEqual({ epoch: before.epoch, offset: before.offset + 2 });
      const read = await history.read('home-h', before, after.offset, 100);
      expect(read.ok && read.entries.map((e) => Array.from(e.data))).toEqual([[2], [5]]);
      // the late call noted the home's events lost where its history stood (3 and 4 went out without a position)
      expect(await history.position('home-h')).toEqual({ ...after, lost: before.offset + 1 });
      // and told the services' stream where, since 3 and 4 left no hole in its offsets
      const client = await connectRedis(own.url, { name: 'test-history-hang-stream', log });
      expect(await streamEntries(client, keys)).toEqual([
        { home: 'home-h', epoch: before.epoch, offset: '1', event: '01' },
        { home: 'home-h', epoch: before.epoch, offset: '2', event: '02' },
        { home: 'home-h', epoch: before.epoch, offset: '2', lost: '1' },
        { home: 'home-h', epoch: before.epoch, offset: '3', event: '05' },
      ]);
      await client.quit();
    } finally {
      own.resume();
      await history.close();
      await own.stop();
    }
  });
});

describe('RedisEventHistory lost notes', () => {
  it('notes a home\'s events lost at its newest offset, only in an epoch an app may hold; a note Redis did not take is made once it is back', async () => {
    const backend = await (redis ??= startRedis());
    const proxy = await RedisProxy.start(backend.port);
    const log = createLogger('silent');
    const keys = new RedisKeys(uniquePrefix());
    const history = new RedisEventHistory(await connectRedis(proxy.url, { name: 'test-history-lost', log }), { maxEvents: 100, maxAgeMs: 60_000 }, { keys, log, eventStreamMaxLen: 1000 });
    try {
      await history.noteLost('home-none'); // no epoch: no app holds a position of it
      expect((await history.position('home-none')).lost).toBeUndefined();
      const first = await history.append('home-o', Uint8Array.from([1]));
      await history.noteLost('home-o');
      // again at the same offset (a hung Redis resumed runs every late call at once): one entry in the stream
      await history.noteLost('home-o');
      expect(await history.position('home-o')).toEqual({ ...first, lost: 1 });
      // Redis ran the next append and died before answering: stored or not, the node cannot tell
      proxy.afterAppendOf('home-o', 'die');
      await expect(history.append('home-o', Uint8Array.from([2]))).rejects.toThrow();
      await expect(history.noteLost('home-o')).rejects.toThrow();
      proxy.revive();
      await expect.poll(async () => (await history.position('home-o').catch(() => null))?.lost, { timeout: 10_000 }).toBe(2);
      // each note is in the services' stream too; the home without an epoch has none
      const client = await connectRedis(backend.url, { name: 'test-history-lost-stream', log });
      const lost = (await streamEntries(client, keys)).filter((e) => e.lost !== undefined);
      expect(lost).toEqual([
        { home: 'home-o', epoch: first.epoch, offset: '1', lost: '1' },
        { home: 'home-o', epoch: first.epoch, offset: '2', lost: '1' },
      ]);
      await client.quit();
    } finally {
      await history.close();
      await proxy.close();
    }
  });
});

describe('RedisEventHistory and sessions taken over', () => {
  it("refuses, storing nothing, an event of a hub's session older than one it holds an event of; other hubs' and unsourced events go on", async () => {
    const history = await redisHistory({ maxEvents: 100, maxAgeMs: 60_000 }, new RedisKeys(uniquePrefix()));
    const first = await history.append('home-s', Uint8Array.from([1]), { hub: 'h1', epoch: 10 });
    await history.append('home-s', Uint8Array.from([2]), { hub: 'h1', epoch: 11 }); // the hub's next session
    // one script call: a refusal in the middle of a batch leaves no hole in the offsets after it
    const outcomes = await Promise.allSettled([
      history.append('home-s', Uint8Array.from([3]), { hub: 'h2', epoch: 3 }),
      history.append('home-s', Uint8Array.from([4]), { hub: 'h1', epoch: 10 }), // the old session, its node resumed
      history.append('home-s', Uint8Array.from([5]), { hub: 'h1', epoch: 11 }),
      history.append('home-s', Uint8Array.from([6])),
    ]);
    expect(outcomes.map((o) => (o.status === 'fulfilled' ? o.value.offset : (o.reason as Error).name))).toEqual([3, 'StaleSessionError', 4, 5]);
    const read = await history.read('home-s', first, 100, 100);
    expect(read.ok && read.entries.map((e) => [e.offset, ...e.data])).toEqual([[2, 2], [3, 3], [4, 5], [5, 6]]);
    await history.close();
  });
});
