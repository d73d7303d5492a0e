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
