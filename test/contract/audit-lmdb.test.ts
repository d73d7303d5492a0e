/**
 * The embedded audit trail opened on a store of an earlier version, whose entries no bucket index
 * holds: they are indexed at open, so fair eviction (audit-buckets.ts) counts and removes them too.
 * And a store whose entries are all past the age: the trim at open empties the trail's trees, and
 * the node opens and exports the store afterwards.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { exportStore } from '../../src/data-backup.js';
import { LmdbAuditLog } from '../../src/ports/audit/audit-lmdb.js';
import type { AuditEntry } from '../../src/ports/audit/audit.js';
import { openDataStore } from '../../src/ports/lmdb.js';
import { tempDataStore } from './fixtures/data-store.js';

let cleanup: (() => Promise<void>) | undefined;
afterEach(async () => {
  await cleanup?.();
  cleanup = undefined;
});

it('indexes entries written before buckets at open: past the count the largest bucket goes first, those entries included', async () => {
  const tmp = await tempDataStore('commit');
  cleanup = tmp.remove;
  const base = Date.now() - 60_000;
  const entry = (i: number, sub: string, homeId: string): AuditEntry => ({ id: `e-${String(i).padStart(4, '0')}`, at: base + i, actor: { kind: 'user', sub }, from: { node: 'n' }, action: 'command', homeId, outcome: 'ok' });
  const old = Array.from({ length: 300 }, (_, i) => entry(i, 'bob', 'busy'));
  const quiet = Array.from({ length: 10 }, (_, i) => entry(300 + i, 'alice', 'quiet'));
  // as the version before buckets wrote them: the trail and the home index only
  const db = tmp.data.db<AuditEntry>('audit');
  const byHome = tmp.data.db<1>('audit-home');
  for (const e of [...old, ...quiet]) {
    void db.put([e.at, e.id], e);
    void byHome.put([e.homeId!, e.at, e.id], 1);
  }
  await tmp.data.flushed();
  const log = new LmdbAuditLog(tmp.data, { maxAgeMs: 86_400_000, maxEntries: 100 });
  await log.flushed();
  const kept = (await log.list({ limit: 500 })).entries;
  expect(kept).toHaveLength(100);
  expect(kept).toEqual([...quiet].reverse().concat([...old.slice(210)].reverse()));
  await log.close();
});

const DAY = 86_400_000;
const retention = { maxAgeMs: 90 * DAY, maxEntries: 100_000 };

/** A closed store in a new directory (removed after the test) holding `aged` entries 100 days old and `fresh` a minute old, with the indexes the trail keeps. */
async function storeWith(aged: number, fresh: number): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'hubtier-lmdb-'));
  cleanup = () => rm(dir, { recursive: true, force: true });
  const data = openDataStore(dir);
  for (const [n, ageMs, prefix] of [[aged, 100 * DAY, 'aged'], [fresh, 60_000, 'fresh']] as const) {
    const base = Date.now() - ageMs;
    for (let i = 0; i < n; i++) {
      const e: AuditEntry = { id: `${prefix}-${i}`, at: base + i, actor: { kind: 'user', sub: 'bob' }, from: { node: 'n' }, action: 'command', homeId: 'h', outcome: 'ok' };
      void data.db<AuditEntry>('audit').put([e.at, e.id], e);
      void data.db<1>('audit-home').put(['h', e.at, e.id], 1);
      void data.db<1>('audit-bucket').put(['user:bob', e.at, e.id], 1);
    }
  }
  await data.close();
  return dir;
}

it('reopens and exports a store after the trim at open removed every entry past the age (the file is shorter than its meta page\'s last page)', async () => {
  const dir = await storeWith(300, 3);
  let data = openDataStore(dir);
  const log = new LmdbAuditLog(data, retention);
  await log.flushed();
  expect((await log.list({ limit: 500 })).entries.map((e) => e.id)).toEqual(['fresh-2', 'fresh-1', 'fresh-0']);
  await log.close();
  await data.close();

  // as `npm start` and `npm run data -- export` open it afterwards
  data = openDataStore(dir);
  try {
    expect(data.db('audit').getCount()).toBe(3);
    const counts = await exportStore(data, join(dir, 'backup.jsonl'));
    expect(counts.audit).toBe(3);
    expect((await readFile(join(dir, 'backup.jsonl'), 'utf8')).match(/"db":"audit"/g)).toHaveLength(3);
  } finally {
    await data.close();
  }
});

it('leaves no trim running after close while more entries are past the age than one turn removes', async () => {
  const dir = await storeWith(10_000, 0);
  let data = openDataStore(dir);
  const log = new LmdbAuditLog(data, retention);
  // the first turn's trim runs and leaves the rest to later turns; a stop comes now
  await new Promise<void>((resolve) => setImmediate(resolve));
  await log.close();
  await data.close();

  // a trim after the close threw from lmdb-js (an uncaught error, the stop's exit code not 0)
  data = openDataStore(dir);
  try {
    expect(data.db('audit').getCount()).toBeGreaterThan(0);
    const again = new LmdbAuditLog(data, retention);
    while (data.db('audit').getCount() > 0) await again.flushed();
    await again.close();
  } finally {
    await data.close();
  }
});

it("an erasure an earlier release wrote (no record of its time) is found in the home's entries, once: its users read from it on (review diff7)", async () => {
  const tmp = await tempDataStore('commit');
  cleanup = tmp.remove;
  const base = Date.now() - 60_000;
  const entry = (i: number, more: Partial<AuditEntry> = {}): AuditEntry => ({ id: `e-${String(i).padStart(4, '0')}`, at: base + i, actor: { kind: 'user', sub: 'alice' }, from: { node: 'n' }, action: 'command', homeId: 'h', outcome: 'ok', ...more });
  const before = entry(1, { deviceId: 'front-door' });
  const erased = entry(2, { action: 'home.erase', actor: { kind: 'admin' } });
  const after = entry(3, { actor: { kind: 'user', sub: 'bob' } });
  // as the release before wrote them: the trail and the home index, no erasure record
  const db = tmp.data.db<AuditEntry>('audit');
  const byHome = tmp.data.db<1>('audit-home');
  for (const e of [before, erased, after]) {
    void db.put([e.at, e.id], e);
    void byHome.put([e.homeId!, e.at, e.id], 1);
  }
  void byHome.put(['never-erased', base, 'x'], 1);
  await tmp.data.flushed();
  const log = new LmdbAuditLog(tmp.data, { maxAgeMs: 86_400_000, maxEntries: 1_000 });
  expect((await log.list({ limit: 10, homeId: 'h', afterErasure: true })).entries).toEqual([after]);
  expect((await log.list({ limit: 10, homeId: 'h', afterErasure: true, until: base + 2 })).entries).toEqual([]);
  expect((await log.list({ limit: 10, homeId: 'h' })).entries).toEqual([after, erased, before]);
  // recorded: the home's index holds it, and a home never erased is recorded as such
  await log.list({ limit: 10, homeId: 'never-erased', afterErasure: true });
  await tmp.data.flushed();
  expect([...byHome.getKeys({ start: ['h', 0], end: ['h', 1] })]).toEqual([['h', 0, String(erased.at)]]);
  expect([...byHome.getKeys({ start: ['never-erased', 0], end: ['never-erased', 1] })]).toEqual([['never-erased', 0, '0']]);
  await log.close();
});
