/**
 * The embedded audit trail opened on a store of an earlier version, whose entries no bucket index
 * holds: they are indexed at open, so fair eviction (audit-buckets.ts) counts and removes them too.
 */
import { afterEach, expect, it } from 'vitest';
import { LmdbAuditLog } from '../../src/ports/audit/audit-lmdb.js';
import type { AuditEntry } from '../../src/ports/audit/audit.js';
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
