/**
 * The embedded store tells when its writes fail: `healthy` turns false at a failed transaction (here
 * one made to fail as a full disk or an I/O error would; lmdb-js grows a full map by itself), and
 * is true again once one commits; the disk composition's `health()` reports it as the node's own
 * (`local: false`), which readiness turns into 503 for this node alone.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log/logger.js';
import { openDataStore } from '../../src/ports/lmdb.js';
import { emptyDevice } from '../../src/ports/shadow-store/shadow-store.js';
import { LmdbShadowStore } from '../../src/ports/shadow-store/shadow-store-lmdb.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('LmdbShadowStore.healthy', () => {
  it('is true while writes commit, false once one fails, and true again at the next commit', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shadow-health-'));
    dirs.push(dir);
    const data = openDataStore(dir, { sync: 'os' });
    const store = new LmdbShadowStore(data, { log: createLogger('silent') });
    const device = (n: number) => ({ ...emptyDevice(), reported: { n }, reportedVersion: n, reportedAt: n });
    store.writeReported('hub-0', 'd', device(1));
    await store.flush();
    expect(store.healthy).toBe(true);
    // the store's sub-database (the data store hands out one object per name): its next commit fails
    // (a batch is written as puts or in a transaction: both fail, as lmdb-js's puts of one commit
    // share its promise)
    const db = data.db('shadows');
    const [transaction, put] = [db.transaction, db.put];
    const failed = Promise.reject(new Error('ENOSPC: no space left on device'));
    failed.catch(() => undefined);
    db.transaction = (() => failed) as typeof db.transaction;
    db.put = (() => failed) as typeof db.put;
    store.writeReported('hub-1', 'd', device(2));
    await store.flush().catch(() => undefined);
    expect(store.healthy).toBe(false);
    [db.transaction, db.put] = [transaction, put];
    store.writeReported('hub-2', 'd', device(3));
    await store.flush();
    expect(store.healthy).toBe(true);
    await store.close();
    await data.close();
  });
});
