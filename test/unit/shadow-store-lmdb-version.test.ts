/**
 * The data layout version tells a release whether it can read a store: the shadow records' rewrite
 * raises it to 2 in the same transaction as the records it writes, so a release before 2026-12-05
 * (which reads version 1 alone) refuses a store holding records it cannot read instead of opening
 * it with every device's state gone; a store rewritten by the releases that left it at 1 is raised
 * at open; a newer version or marker is refused, never opened or rewritten (red team, 2026-12-05).
 */
import { describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../src/log/logger.js';
import { DATA_LAYOUT_VERSION, DataStoreError, openDataStore, storedLayout, type DataStore } from '../../src/ports/lmdb.js';
import { LmdbShadowStore } from '../../src/ports/shadow-store/shadow-store-lmdb.js';
import { tempDataStoresPerTest } from '../contract/lmdb-fixture.js';

const stores = tempDataStoresPerTest();
const silent = createLogger('silent');

/** A logger keeping its lines. */
function capturing(): { log: ReturnType<typeof createLogger>; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  return { log: createLogger('info', {}, { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) }), lines };
}

const setVersion = (data: DataStore, layout: number) => data.root.openDB({ name: 'meta' }).putSync('layout', { layout, createdAt: 0 });
const setMarker = (data: DataStore, layout: number) => data.db<number>('layouts').putSync('shadows', layout);
const records = (data: DataStore) => [...data.db<unknown>('shadows').getRange({})].map(({ key, value }) => JSON.stringify([key, value]));

/** A store as releases before 2026-12-03 wrote it: version 1, no marker, a hub's entry and a device of the first layout (both sides in one). */
function releasedBefore(data: DataStore): void {
  setVersion(data, 1);
  const raw = data.db<unknown>('shadows');
  raw.putSync('h1', [1, 'boot', 3]);
  raw.putSync(['h1', 'lock'], ['lock', 'L-1', ['locked', true], 4, 1_700_000_000_000, ['pin', '4711'], 2]);
  raw.putSync(['h2', 'lamp'], [null, null, ['on', true], 1, 5, [], 0]);
}

describe('data layout version (embedded shadows)', () => {
  it('a store rewritten by the releases of 2026-12-03/04 (marker set, version 1) is raised to version 2 at open, its state kept, in one info line', async () => {
    const { data, dir } = await stores.temp();
    const first = new LmdbShadowStore(data, { log: silent });
    first.writeReported('h1', 'lock', { kind: 'lock', reported: { locked: true }, reportedVersion: 4, reportedAt: 9, desired: {}, desiredVersion: 0 });
    await first.setDesired('h1', 'lock', { pin: '4711' });
    await first.close();
    // as those releases left it, and a record an older release wrote after them (a rollback)
    setVersion(data, 1);
    data.db<unknown>('shadows').putSync(['h1', 'd2'], [null, null, [], 0, 0, ['level', 5], 1]);
    await data.close();

    const reopened = openDataStore(dir, { owner: 'test' });
    stores.cleanups.push(() => reopened.close());
    expect(storedLayout(reopened.root), 'version 1 is opened').toBe(1);
    const { log, lines } = capturing();
    const store = new LmdbShadowStore(reopened, { log });
    expect(storedLayout(reopened.root)).toBe(DATA_LAYOUT_VERSION);
    expect(DATA_LAYOUT_VERSION).toBe(2);
    expect((await store.load('h1')).lock).toMatchObject({ reported: { locked: true }, reportedVersion: 4, desired: { pin: '4711' } });
    expect(lines.filter((l) => l.level === 30)).toEqual([expect.objectContaining({ records: 0, fromLayout: 4, toLayout: 4, fromVersion: 1, toVersion: 2, msg: 'data store: shadow records already in layout 4, data layout version 1 to 2' })]);
    expect(lines.filter((l) => l.level === 40), 'the rollback\'s record: not read, but told').toEqual([expect.objectContaining({ records: 1, msg: expect.stringMatching(/an older version ran on this store after it was rewritten/) })]);
    await store.close();
  });

  it('rewrites a store of the first layout with the marker and version 2 committed together: stopped at any transaction, the store is unchanged or at version 2', async () => {
    for (let stopAt = 1; ; stopAt++) {
      const { data } = await stores.temp();
      releasedBefore(data);
      const before = records(data);
      const raw = data.db<unknown>('shadows');
      const transaction = raw.transactionSync.bind(raw);
      let calls = 0;
      const stop = vi.spyOn(raw, 'transactionSync').mockImplementation(((body: () => unknown) => {
        if (++calls === stopAt) throw new Error('killed');
        return transaction(body);
      }) as typeof raw.transactionSync);
      let store: LmdbShadowStore | undefined;
      try {
        store = new LmdbShadowStore(data, { log: silent });
      } catch (err) {
        expect((err as Error).message).toBe('killed');
      }
      stop.mockRestore();
      const marker = data.db<number>('layouts').get('shadows');
      if (records(data).join() !== before.join() || marker !== undefined) {
        expect(storedLayout(data.root), `stopped at transaction ${stopAt}: records rewritten or a marker, so version 2 (an older release refuses the store)`).toBe(2);
      } else {
        expect(storedLayout(data.root), `stopped at transaction ${stopAt}: nothing rewritten`).toBe(1);
      }
      if (store) {
        expect(marker).toBe(4);
        expect((await store.load('h1')).lock).toMatchObject({ kind: 'lock', model: 'L-1', reported: { locked: true }, reportedVersion: 4, desired: { pin: '4711' }, desiredVersion: 2 });
        await store.close();
        expect(stopAt, 'the rewrite takes transactions').toBeGreaterThan(1);
        break;
      }
    }
  });

  it('logs one info line for a rewrite: the records, the layouts and the versions', async () => {
    const { data } = await stores.temp();
    releasedBefore(data);
    const { log, lines } = capturing();
    const store = new LmdbShadowStore(data, { log });
    expect(lines).toEqual([expect.objectContaining({ level: 30, records: 3, fromLayout: 0, toLayout: 4, fromVersion: 1, toVersion: 2, msg: expect.stringMatching(/shadow records of layout 0 rewritten to layout 4 \(3 records\), data layout version 1 to 2/) })]);
    await store.close();
    // a store of this layout and version: nothing written, nothing logged
    lines.length = 0;
    const again = new LmdbShadowStore(data, { log });
    expect(lines).toEqual([]);
    await again.close();
  });

  it('refuses a store of a newer data layout version, and one whose shadow marker is newer, changing nothing', async () => {
    const { data, dir } = await stores.temp();
    const first = new LmdbShadowStore(data, { log: silent });
    first.writeCursor('h1', { boot: 'b', seq: 1 });
    await first.close();
    setMarker(data, 5);
    const before = records(data);
    expect(() => new LmdbShadowStore(data, { log: silent })).toThrow(DataStoreError);
    expect(() => new LmdbShadowStore(data, { log: silent })).toThrow(/shadow records of layout 5; this version reads layouts up to 4\. Nothing was changed: a newer version wrote it; run the version that wrote it, or roll back by importing the backup taken before the upgrade into an empty DATA_DIR \(npm run data -- import FILE\)/);
    expect(records(data)).toEqual(before);
    expect(data.db<number>('layouts').get('shadows')).toBe(5);

    setMarker(data, 4);
    setVersion(data, 3);
    await data.close();
    expect(() => openDataStore(dir, { owner: 'test' })).toThrow(/has data layout 3; this version reads layouts 1 to 2\. Nothing was changed: a newer version wrote it.*backup taken before the upgrade/);
  });
});
