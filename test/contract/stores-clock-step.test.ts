/**
 * Stores under a wrong wall clock. Retention is judged on a clock a step of the wall clock does not move. Until 2026-12-06 (a review
 * of clocks): the embedded audit trail and revocations were removed by the node's wall clock, so a
 * clock a month or more ahead for a moment (an NTP source gone wrong, a VM resumed) deleted the
 * whole trail, and every revocation, for good: revoked tokens worked again once the clock was
 * right. In cluster mode one node with such a clock removed every revocation of the cluster as it
 * added one; they are now removed by Redis's clock. So is the offline sweep's judgment of which
 * nodes lapsed: on each node's clock, a dead node whose clock ran an hour ahead had its hubs said
 * offline an hour late.
 */
import { afterAll, afterEach, beforeAll, expect, it, vi } from 'vitest';
import { startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import { createLogger } from '../../src/log/logger.js';
import { LmdbAuditLog } from '../../src/ports/audit/audit-lmdb.js';
import { RedisDirectory } from '../../src/ports/directory/directory-redis.js';
import { MemoryDirectory } from '../../src/ports/directory/directory-memory.js';
import { RedisAuditLog } from '../../src/ports/audit/audit-redis.js';
import { LmdbEventHistory } from '../../src/ports/history/history-lmdb.js';
import { MemoryEventHistory } from '../../src/ports/history/history-memory.js';
import { LmdbPushQueue, type LmdbPushQueueOptions } from '../../src/ports/push-queue/push-queue-lmdb.js';
import type { DataStore } from '../../src/ports/lmdb.js';
import type { PushDelivery } from '../../src/ports/push-queue/push-queue.js';
import type { AuditEntry } from '../../src/ports/audit/audit.js';
import { closeRedis, connectRedis, RedisKeys } from '../../src/ports/redis.js';
import { LmdbRevocationStore } from '../../src/ports/revocations/revocations-lmdb.js';
import { RedisRevocationStore } from '../../src/ports/revocations/revocations-redis.js';
import { tempDataStore } from './fixtures/data-store.js';

const DAY = 86_400_000;
let redis: Backend;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});
let cleanup: (() => Promise<void>) | undefined;
afterEach(async () => {
  vi.useRealTimers();
  await cleanup?.();
  cleanup = undefined;
});
/** An embedded push queue retrying three times, `backoffMs` apart, remembering keys 10 minutes. */
const retryingQueue = (data: DataStore, backoffMs: number, options: Pick<LmdbPushQueueOptions, 'sender'> & Partial<LmdbPushQueueOptions>) =>
  LmdbPushQueue.open(data, { attempts: 3, backoffMs, maxBackoffMs: backoffMs, dedupTtlMs: 600_000, ...options });
const notification = (dedupKey: string) => ({ homeId: 'home1', title: 'Leak', body: 'bath', dedupKey, data: { ruleId: 'r1' } });

/** Only Date is faked: the wall clock steps, performance (the monotonic clock) does not. */
const fakeWallClock = () => vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });

it('the embedded audit trail: an entry written while the wall clock read 100 days ahead removes none of the month before it', async () => {
  const tmp = await tempDataStore('commit');
  cleanup = tmp.remove;
  fakeWallClock();
  const now = Date.now();
  const entry = (id: string, at: number): AuditEntry => ({ id, at, actor: { kind: 'user', sub: 'alice' }, from: { node: 'n' }, action: 'command', homeId: 'home-1', outcome: 'ok' });
  const audit = new LmdbAuditLog(tmp.data, { maxAgeMs: 90 * DAY, maxEntries: 1_000_000 });
  for (let i = 0; i < 30; i++) audit.record(entry(`e-${i}`, now - i * DAY));
  await audit.flushed();
  vi.setSystemTime(now + 100 * DAY);
  audit.record(entry('ahead', Date.now()));
  await audit.flushed();
  vi.setSystemTime(now);
  expect((await audit.list({ limit: 100 })).entries).toHaveLength(31);
  await audit.close();
});

it('the embedded revocations: a listing while the wall clock read 31 days ahead shows none in force, and removes none', async () => {
  const tmp = await tempDataStore('commit');
  cleanup = tmp.remove;
  const store = new LmdbRevocationStore(tmp.data);
  const nowS = Math.floor(Date.now() / 1000);
  await store.add({ jti: 'stolen', exp: nowS + 30 * 86_400 });
  await store.add({ jti: 'spent', exp: nowS - 10 });
  expect(await store.list(nowS + 31 * 86_400)).toEqual([]);
  expect((await store.list(nowS)).map((r) => r.jti)).toEqual(['stolen']);
  // the expired one is removed (its key gone), the one in force kept
  const keys = [...tmp.data.db('revocations').getKeys()].map(String);
  expect(keys.some((k) => k.includes('spent'))).toBe(false);
  expect(keys.some((k) => k.includes('stolen'))).toBe(true);
});

it("Redis's revocations: one added by a node whose clock reads 31 days ahead removes none of those in force", async () => {
  const client = await connectRedis(redis.url, { name: 'test-revocations-clock', log: createLogger('silent') });
  const keys = new RedisKeys(uniquePrefix());
  const store = new RedisRevocationStore(client, { keys });
  const nowS = Math.floor(Date.now() / 1000);
  await store.add({ jti: 'stolen', exp: nowS + 30 * 86_400 });
  await store.add({ sub: 'fired', before: nowS, exp: nowS + 30 * 86_400 });
  await store.add({ jti: 'spent', exp: nowS - 10 });
  fakeWallClock();
  vi.setSystemTime(Date.now() + 31 * DAY);
  await store.add({ jti: 'other', exp: Math.floor(Date.now() / 1000) + 30 * 86_400 });
  vi.useRealTimers();
  expect((await store.list(nowS)).map((r) => r.jti ?? r.sub).sort()).toEqual(['fired', 'other', 'stolen']);
  // the expired one removed by Redis's clock
  expect(await client.zcard(keys.single('revocations'))).toBe(3);
  await closeRedis(client);
});

it('the offline sweep: a dead node whose clock ran an hour ahead is found lapsed once its ttl passed on Redis\'s clock', async () => {
  const keys = new RedisKeys(uniquePrefix());
  const ttlMs = 300;
  const log = createLogger('silent');
  fakeWallClock();
  vi.setSystemTime(Date.now() + 3_600_000);
  const dead = new RedisDirectory(await connectRedis(redis.url, { name: 'test-dead-node', log }), { keys, ttlMs });
  await dead.claim('hub-1', 'node-a');
  await dead.refreshNode('node-a');
  vi.useRealTimers();
  await dead.close(); // killed: nothing released
  await new Promise((r) => setTimeout(r, ttlMs + 200));
  const sweeper = new RedisDirectory(await connectRedis(redis.url, { name: 'test-sweeper', log }), { keys, ttlMs });
  expect(await sweeper.lookup('hub-1')).toBeNull();
  expect((await sweeper.takeOrphans('node-b')).map((o) => o.hubId)).toEqual(['hub-1']);
  await sweeper.close();
});

// the review "clock" (2026-12-07): what was still judged on the wall clock

it('the embedded history: an append while the wall clock read 2 h ahead (retention 1 h) remove none of its events', async () => {
  const tmp = await tempDataStore('commit');
  cleanup = tmp.remove;
  const retention = { maxEvents: 100, maxAgeMs: 3_600_000 };
  // faked first: a store takes its clock when made
  fakeWallClock();
  const histories = [await LmdbEventHistory.open(tmp.data, retention, { sweepMs: 0 }), new MemoryEventHistory(retention)];
  const now = Date.now();
  for (const history of histories) for (let i = 0; i < 10; i++) await history.append('home-a', Buffer.from(`e${i}`));
  vi.setSystemTime(now + 2 * 3_600_000);
  for (const history of histories) {
    await history.append('home-a', Buffer.from('ahead'));
    const read = await history.read('home-a', { epoch: (await history.position('home-a')).epoch, offset: 0 }, 11, 100);
    expect(read).toMatchObject({ ok: true });
    expect(read.ok && read.entries.map((e) => e.offset)).toEqual(Array.from({ length: 11 }, (_, i) => i + 1));
  }
  vi.setSystemTime(now);
  const lmdb = histories[0] as LmdbEventHistory;
  await lmdb.durable('home-a');
  expect(await lmdb.read('home-a', { epoch: (await lmdb.position('home-a')).epoch, offset: 0 }, 11, 100)).toMatchObject({ ok: true });
  await lmdb.close();
});

it('the embedded push queue: a retry due in 100 ms runs on time through a 1 h step back; a key seen stays a duplicate through an 11 min step forward', async () => {
  const tmp = await tempDataStore('commit');
  cleanup = tmp.remove;
  const seen: PushDelivery[] = [];
  let fail = true;
  fakeWallClock();
  const queue = await retryingQueue(tmp.data, 100, {
    sender: async (d) => {
      seen.push(d);
      if (fail) throw new Error('receiver down');
    },
  });
  const now = Date.now();
  const note = notification('k1');
  await queue.enqueue(note);
  await expect.poll(() => seen.length).toBe(1);
  fail = false;
  vi.setSystemTime(now - 3_600_000);
  // real time passes (the monotonic clock's); the wall clock stays an hour back
  await expect.poll(() => seen.length, { timeout: 5_000 }).toBe(2);
  vi.setSystemTime(now + 11 * 60_000);
  expect(await queue.enqueue(note)).toMatchObject({ duplicate: true });
  vi.useRealTimers();
  await queue.drain();
  expect(seen).toHaveLength(2);
  await queue.close();
});

it('the embedded directory: a hub held is found through a step forward past the nodes\' liveness ttl', async () => {
  fakeWallClock();
  const directory = new MemoryDirectory(15_000);
  await directory.claim('hub-1', 'node-a');
  vi.setSystemTime(Date.now() + 60_000);
  expect(await directory.lookup('hub-1')).toMatchObject({ node: 'node-a' });
});

it("Redis's audit trail: a node whose clock reads 2 days ahead (retention 1 day) still lists the entries of the last hours", async () => {
  const client = await connectRedis(redis.url, { name: 'test-audit-clock', log: createLogger('silent') });
  const log = new RedisAuditLog(client, { maxAgeMs: DAY, maxEntries: 100 }, { keys: new RedisKeys(uniquePrefix()) });
  const now = Date.now();
  for (let i = 0; i < 3; i++) log.record({ id: `e-${i}`, at: now - i * 3_600_000, actor: { kind: 'user', sub: 'alice' }, from: { node: 'n' }, action: 'command', homeId: 'home-1', outcome: 'ok' });
  await log.flushed();
  fakeWallClock();
  vi.setSystemTime(now + 2 * DAY);
  expect((await log.list({ limit: 100 })).entries).toHaveLength(3);
  vi.useRealTimers();
  await log.close();
  await closeRedis(client);
});

// the review of those fixes (diff26): times stored on the steady clock looked a step off to the next process

it('the embedded history stores each event at the wall clock\'s time (rules replay it by that) and reads it back whole while the steady clock is 2 h behind', async () => {
  const tmp = await tempDataStore('commit');
  cleanup = tmp.remove;
  // the wall clock 2 h ahead of the clock the process started with: a node started 2 h behind, then corrected
  fakeWallClock();
  vi.setSystemTime(Date.now() + 2 * 3_600_000);
  const history = await LmdbEventHistory.open(tmp.data, { maxEvents: 100, maxAgeMs: 3_600_000 }, { sweepMs: 0 });
  const at = Date.now();
  for (let i = 0; i < 3; i++) history.appendNow('home-a', Buffer.from(`e${i}`));
  await history.durable('home-a');
  expect(history.marks.stored('home-a').map((e) => e.at)).toEqual([at, at, at]);
  expect(await history.read('home-a', { epoch: (await history.position('home-a')).epoch, offset: 0 }, 3, 100)).toMatchObject({ ok: true });
  await history.close();
});

it('the embedded push queue: after a step back of the wall clock a failed delivery waits its backoff, not nothing', async () => {
  const tmp = await tempDataStore('commit');
  cleanup = tmp.remove;
  const waits: number[] = [];
  let tries = 0;
  fakeWallClock();
  const queue = await retryingQueue(tmp.data, 5_000, {
    timer: (fn, ms) => {
      waits.push(ms);
      const t = setTimeout(fn, ms);
      return () => clearTimeout(t);
    },
    sender: async () => {
      tries++;
      throw new Error('receiver down');
    },
  });
  vi.setSystemTime(Date.now() - 3_600_000);
  await queue.enqueue(notification('k2'));
  await expect.poll(() => waits.length).toBe(1);
  expect(tries).toBe(1);
  // the backoff (±20 % jitter at most), not 0: due on the wall clock an hour back, every retry was due at once
  expect(waits[0]).toBeGreaterThanOrEqual(3_000);
  vi.useRealTimers();
  await queue.close();
});
