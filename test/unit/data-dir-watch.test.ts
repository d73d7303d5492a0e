/**
 * A DATA_DIR deleted or replaced under a running node: the store notices (the lock and store files
 * it opened are gone, or other files took their names) and calls its failure handler, by default
 * a `data error` and exit 1, so the node stops acknowledging what its next start would not find.
 * Before 2026-12-05 it wrote on into the deleted files and stayed ready.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openDataStore, type DataStore, type DataStoreError } from '../../src/ports/lmdb.js';

const stores: DataStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close().catch(() => undefined);
});

/** A store that watches its directory every 10 ms; resolves with the first failure it reports. */
function watched(dir: string): Promise<DataStoreError> {
  return new Promise((resolve) => stores.push(openDataStore(dir, { sync: 'os', watchDirMs: 10, onCommitFailure: resolve })));
}

describe('DATA_DIR watched while the store is open', () => {
  it('stops on the directory deleted', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hubtier-dirwatch-'));
    const lost = watched(dir);
    rmSync(dir, { recursive: true, force: true });
    expect((await lost).message).toMatch(/^DATA_DIR .*: (node\.lock|hubtier\.mdb) is gone while the node runs .* so it stops\. Put DATA_DIR back/);
  });

  it('stops on the store file replaced by another of the same name', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hubtier-dirwatch-'));
    const lost = watched(dir);
    rmSync(join(dir, 'hubtier.mdb'));
    writeFileSync(join(dir, 'hubtier.mdb'), 'not the store');
    expect((await lost).message).toMatch(/hubtier\.mdb is replaced by another file/);
    rmSync(dir, { recursive: true, force: true });
  });

  it('stops on a side file (the event history) deleted, as on the store file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hubtier-dirwatch-'));
    let store!: DataStore;
    const lost = new Promise<DataStoreError>((resolve) => stores.push((store = openDataStore(dir, { sync: 'os', watchDirMs: 10, onCommitFailure: resolve }))));
    store.side('history');
    rmSync(join(dir, 'history.mdb'));
    expect((await lost).message).toMatch(/history\.mdb is gone while the node runs/);
    rmSync(dir, { recursive: true, force: true });
  });

  it('stops watching when the store closes (a directory removed after a clean stop is no failure)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hubtier-dirwatch-'));
    let failed = false;
    const store = openDataStore(dir, { sync: 'os', watchDirMs: 10, onCommitFailure: () => (failed = true) });
    await store.close();
    rmSync(dir, { recursive: true, force: true });
    await new Promise((r) => setTimeout(r, 50));
    expect(failed).toBe(false);
  });
});
