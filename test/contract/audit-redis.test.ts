/**
 * The Redis audit trail on a trail written before buckets: its entries are in no bucket, so fair
 * eviction counts the buckets' entries only (the old ones go by age and the backstop); counting
 * the trail's length, every new entry was evicted while the old ones stayed.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { RedisAuditLog } from '../../src/ports/audit/audit-redis.js';
import type { AuditEntry } from '../../src/ports/audit/audit.js';
import { closeRedis, connectRedis, RedisKeys } from '../../src/ports/redis.js';
import { createLogger } from '../../src/log/logger.js';
import { startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';

let redis: Backend;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

it('entries written before buckets do not count against the new ones: none of these is evicted while the buckets hold fewer than maxEntries', async () => {
  const client = await connectRedis(redis.url, { name: 'audit-redis', log: createLogger('silent') });
  const keys = new RedisKeys(uniquePrefix());
  const base = Date.now() - 60_000;
  const entry = (i: number, sub: string, homeId: string): AuditEntry => ({ id: `e-${i}`, at: base + i, actor: { kind: 'user', sub }, from: { node: 'n' }, action: 'command', homeId, outcome: 'ok' });
  // as the version before buckets wrote them: the trail (and home indexes, left out here)
  for (let i = 0; i < 150; i++) await client.xadd(keys.single('audit'), '*', 'e', JSON.stringify(entry(i, 'old', 'h-old')));
  const log = new RedisAuditLog(client, { maxAgeMs: 86_400_000, maxEntries: 100 }, { keys });
  const fresh = [...Array.from({ length: 20 }, (_, i) => entry(200 + i, 'alice', 'quiet')), ...Array.from({ length: 60 }, (_, i) => entry(300 + i, 'bob', 'busy'))];
  for (const e of fresh) log.record(e);
  await log.flushed();
  const kept = (await log.list({ limit: 500 })).entries;
  expect(kept.slice(0, 80)).toEqual([...fresh].reverse());
  expect(kept).toHaveLength(230);
  // past maxEntries in the buckets, the largest loses its oldest: the old entries are not counted
  const more = Array.from({ length: 40 }, (_, i) => entry(400 + i, 'bob', 'busy'));
  for (const e of more) log.record(e);
  await log.flushed();
  expect((await log.list({ limit: 500, homeId: 'quiet' })).entries).toHaveLength(20);
  expect((await log.list({ limit: 500, actor: 'bob' })).entries).toEqual([...fresh.slice(40), ...more].reverse());
  expect((await log.list({ limit: 500, actor: 'old' })).entries).toHaveLength(150);
  await log.close();
  await closeRedis(client);
});

it('entries past the age are deleted from the stream at the next write, all of them: an approximate trim kept those sharing a stream node with newer ones (review erasure)', async () => {
  const client = await connectRedis(redis.url, { name: 'audit-redis', log: createLogger('silent') });
  const keys = new RedisKeys(uniquePrefix());
  const day = 86_400_000;
  const entry = (id: string, at: number): AuditEntry => ({ id, at, actor: { kind: 'user', sub: 'carol' }, from: { node: 'n' }, action: 'command', homeId: 'h', outcome: 'ok' });
  // five entries of 100 days ago in the trail and the home's index, as a node wrote them then
  const old = Date.now() - 100 * day;
  for (let i = 0; i < 5; i++) {
    const id = await client.xadd(keys.single('audit'), `${old + i}-0`, 'e', JSON.stringify(entry(`old-${i}`, old + i)));
    await client.xadd(keys.home('h', 'audit'), id!, 'x', '');
  }
  const log = new RedisAuditLog(client, { maxAgeMs: 90 * day, maxEntries: 10_000 }, { keys });
  log.record(entry('new', Date.now()));
  await log.flushed();
  expect(await client.xlen(keys.single('audit'))).toBe(1);
  expect(await client.xlen(keys.home('h', 'audit'))).toBe(1);
  await log.close();
  await closeRedis(client);
});

it("an erasure an earlier release wrote (no record of its time) is found in the home's entries, once: its users read from it on (review diff7)", async () => {
  const client = await connectRedis(redis.url, { name: 'audit-redis', log: createLogger('silent') });
  const keys = new RedisKeys(uniquePrefix());
  const base = Date.now() - 60_000;
  const entry = (i: number, more: Partial<AuditEntry> = {}): AuditEntry => ({ id: `e-${i}`, at: base + i, actor: { kind: 'user', sub: 'alice' }, from: { node: 'n' }, action: 'command', homeId: 'h', outcome: 'ok', ...more });
  const log = new RedisAuditLog(client, { maxAgeMs: 86_400_000, maxEntries: 1_000 }, { keys });
  const [before, erased, after] = [entry(1, { deviceId: 'front-door' }), entry(2, { action: 'home.erase', actor: { kind: 'admin' } }), entry(3, { actor: { kind: 'user', sub: 'bob' } })];
  for (const e of [before, erased, after]) log.record(e);
  await log.flushed();
  // as the release before left it: no key of the erasure's time
  await client.del(keys.home('h', 'audit-erased'));
  expect((await log.list({ limit: 10, homeId: 'h', afterErasure: true })).entries).toEqual([after]);
  expect(await client.get(keys.home('h', 'audit-erased'))).toBe(String(erased.at));
  expect(await client.ttl(keys.home('h', 'audit-erased'))).toBe(-1);
  expect((await log.list({ limit: 10, homeId: 'h' })).entries).toEqual([after, erased, before]);
  await log.close();
  await closeRedis(client);
});
