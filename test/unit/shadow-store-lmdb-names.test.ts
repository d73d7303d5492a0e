/**
 * The embedded shadow store numbers attribute key lists, kinds and models store-wide, so that a
 * record keeps the values alone. The numbers outlive the process, stay bounded, and a record
 * naming a list the store lost reads as no attributes instead of failing the hub.
 */
import type { Database } from 'lmdb';
import { describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../src/log/logger.js';
import { openDataStore } from '../../src/ports/lmdb.js';
import { emptyDevice, type DeviceShadow } from '../../src/ports/shadow-store/shadow-store.js';
import { LmdbShadowStore, NAMES_DB } from '../../src/ports/shadow-store/shadow-store-lmdb.js';
import { StoredNames } from '../../src/ports/shadow-store/shadow-store-lmdb-names.js';
import { shadowKey, shadowKinds, tempDataStoresPerTest } from '../contract/lmdb-fixture.js';

const log = createLogger('silent');
const { temp, cleanups } = tempDataStoresPerTest();

function reported(attrs: DeviceShadow['reported'], at = 5): DeviceShadow {
  return { ...emptyDevice(), reported: attrs, reportedVersion: 1, reportedAt: at };
}

describe('LmdbShadowStore numbered names', () => {
  it('keeps values alone in records, and reads them back after a restart', async () => {
    const { dir, data } = await temp();
    const store = new LmdbShadowStore(data, { log });
    await store.writeDevices('h', [{ d: 't1', k: 'sensor.temperature', m: 'TH-200' }, { d: 't2', k: 'sensor.temperature', m: 'TH-200' }], [], true);
    store.writeReported('h', 't1', reported({ temperature: 21.5, battery: 80 }));
    store.writeReported('h', 't2', reported({ temperature: 19, battery: 75 }));
    await store.close();
    const raw = data.db<unknown>('shadows');
    const t1 = raw.get(shadowKey(data, 'h', 't1')) as unknown[];
    expect(t1, 'the key list by number, its values in order').toEqual([expect.any(Number), [21.5, 80], 1, 5]);
    expect(raw.get(shadowKey(data, 'h', 't2'))).toEqual([t1[0], [19, 75], 1, 5]);
    expect(shadowKinds(data, 'h'), 'kind and model by number, in the hub kinds record').toEqual(['t1', expect.any(Number), 't2', expect.any(Number)]);
    expect(data.db<unknown>(NAMES_DB).get(t1[0] as number)).toEqual(['temperature', 'battery']);
    await data.close();

    const again = openDataStore(dir, { owner: 'test' });
    cleanups.unshift(() => again.close());
    const reopened = new LmdbShadowStore(again, { log });
    const shadow = await reopened.load('h');
    expect(shadow.t1).toEqual({ kind: 'sensor.temperature', model: 'TH-200', reported: { temperature: 21.5, battery: 80 }, reportedVersion: 1, reportedAt: 5, desired: {}, desiredVersion: 0 });
    expect(shadow.t2?.reported).toEqual({ temperature: 19, battery: 75 });
    // a number given before the restart is the one given after it
    reopened.writeReported('h', 't3', reported({ temperature: 1, battery: 2 }));
    await reopened.flush();
    expect((again.db<unknown>('shadows').get(shadowKey(again, 'h', 't3')) as unknown[])[0]).toBe(t1[0]);
    await reopened.close();
  });

  it('numbers a bounded count of lists and keeps the names of any beyond, which read back alike', async () => {
    const { data } = await temp();
    const names = new StoredNames(data.db<string[]>(NAMES_DB) as unknown as Database<string[], number>, log, 2, 40);
    const values: unknown[] = [];
    expect(names.numberAttrs({ a: 1 }, values)).toBe(0);
    expect(values).toEqual([1]);
    expect(names.numberList(['switch', 'SW-1'])).toBe(1);
    values.length = 0;
    expect(names.numberAttrs({ b: 2, c: 3 }, values), 'full').toBe(-1);
    expect(values, 'flat: key, value').toEqual(['b', 2, 'c', 3]);
    expect(names.numberAttrs({ a: 9 }, (values.length = 0, values)), 'a known list still is').toBe(0);
    const wide = new StoredNames(data.db<string[]>('wide') as unknown as Database<string[], number>, log, 100, 40);
    expect(wide.numberAttrs({ ['k'.repeat(41)]: 1 }, (values.length = 0, values)), 'too long').toBe(-1);
    expect(names.size).toBe(2);
    // many lists that begin alike: each still found, also past the few kept by their first name
    const alike = new StoredNames(data.db<string[]>('alike') as unknown as Database<string[], number>, log);
    const given = Array.from({ length: 20 }, (_, i) => alike.numberAttrs({ on: true, [`k${i}`]: i }, (values.length = 0, values)));
    expect(new Set(given).size).toBe(20);
    expect(Array.from({ length: 20 }, (_, i) => alike.numberAttrs({ on: false, [`k${i}`]: 0 }, (values.length = 0, values)))).toEqual(given);
    expect(values).toEqual([false, 0]);

    const store = new LmdbShadowStore(data, { log });
    // the store's own table is not full: fill it through a store whose lists exceed its bound
    store.writeReported('h', 'd', reported({ ['x'.repeat(600)]: true }));
    await store.flush();
    expect(data.db<unknown>('shadows').get(shadowKey(data, 'h', 'd')), 'a list past maxChars keeps its names').toEqual([['x'.repeat(600), true], 1, 5]);
    expect((await store.load('h')).d?.reported).toEqual({ ['x'.repeat(600)]: true });
    await store.close();
  });

  it('reads a `__proto__` key back as data, never as the prototype', async () => {
    const { data } = await temp();
    const store = new LmdbShadowStore(data, { log });
    const attrs: DeviceShadow['reported'] = {};
    Object.defineProperty(attrs, '__proto__', { value: { polluted: true }, writable: true, enumerable: true, configurable: true });
    attrs.on = true;
    store.writeReported('h', 'd', reported(attrs));
    await store.flush();
    const back = (await store.load('h')).d!.reported;
    expect(Object.getPrototypeOf(back)).toBe(Object.prototype);
    expect(Object.keys(back)).toEqual(['__proto__', 'on']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    await store.close();
  });

  it('reads a record whose list the store lost as no attributes, and writes it whole at the next report', async () => {
    const { dir, data } = await temp();
    const store = new LmdbShadowStore(data, { log });
    await store.writeDevices('h', [{ d: 'lamp', k: 'switch' }], [], true);
    store.writeReported('h', 'lamp', reported({ on: true }));
    await store.close();
    await data.db<unknown>(NAMES_DB).clearAsync();
    await data.close();

    const again = openDataStore(dir, { owner: 'test' });
    cleanups.unshift(() => again.close());
    const reopened = new LmdbShadowStore(again, { log });
    const lamp = (await reopened.load('h')).lamp;
    expect(lamp).toMatchObject({ kind: undefined, reported: {}, reportedVersion: 1 });
    reopened.writeReported('h', 'lamp', reported({ on: false }, 6));
    await reopened.flush();
    expect((await reopened.load('h')).lamp?.reported).toEqual({ on: false });
    await reopened.close();
  });

  it('puts a list again when its put failed', async () => {
    const { data } = await temp();
    const db = data.db<string[]>(NAMES_DB) as unknown as Database<string[], number>;
    const names = new StoredNames(db, log);
    const put = vi.spyOn(db, 'put').mockReturnValueOnce(Promise.reject(new Error('disk full')));
    const values: unknown[] = [];
    expect(names.numberAttrs({ on: true }, values)).toBe(0);
    await vi.waitFor(() => expect(put).toHaveBeenCalledTimes(1));
    await new Promise((r) => setImmediate(r));
    expect(names.numberAttrs({ on: false }, (values.length = 0, values))).toBe(0);
    expect(put).toHaveBeenCalledTimes(2);
    await db.flushed;
    await new Promise((r) => setImmediate(r));
    expect(db.get(0)).toEqual(['on']);
    // once stored, never put again
    names.numberAttrs({ on: true }, (values.length = 0, values));
    expect(put).toHaveBeenCalledTimes(2);
    put.mockRestore();
  });

  it('after a failed write transaction, puts again a list that read as stored but was not', async () => {
    const { data } = await temp();
    const store = new LmdbShadowStore(data, { log });
    const names = data.db<string[]>(NAMES_DB);
    const shadows = data.db('shadows');
    // a put in a transaction resolves before its commit: here it resolves and the commit fails
    const put = vi.spyOn(names, 'put').mockReturnValueOnce(Promise.resolve(true));
    const transaction = shadows.transaction;
    const failed = Promise.reject(new Error('ENOSPC: no space left on device'));
    failed.catch(() => undefined);
    // the body runs, and nothing it puts is kept
    shadows.transaction = ((body: () => unknown) => {
      const write = shadows.put;
      shadows.put = (() => Promise.resolve(true)) as typeof shadows.put;
      body();
      shadows.put = write;
      return failed;
    }) as typeof shadows.transaction;
    await expect(store.writeDevices('h', [{ d: 'lamp', k: 'switch', m: 'SW-9' }], [], true)).rejects.toThrow('ENOSPC');
    shadows.transaction = transaction;
    expect(names.get(0), 'not in the store').toBeUndefined();
    await store.writeDevices('h', [{ d: 'lamp', k: 'switch', m: 'SW-9' }], [], true);
    expect(put).toHaveBeenCalledTimes(2);
    expect(names.get(0)).toEqual(['switch', 'SW-9']);
    expect((await store.load('h')).lamp).toMatchObject({ kind: 'switch', model: 'SW-9' });
    put.mockRestore();
    await store.close();
  });
});

describe('LmdbShadowStore and hubs that come and go', () => {
  it('a hub removed before its session wrote leaves nothing of that session in memory (a churn review: one entry per such hub, for the life of the process)', async () => {
    const { data } = await temp();
    const store = new LmdbShadowStore(data, { log });
    const opened = () => (store as unknown as { hubs: { openedEpoch(hubId: string): number } }).hubs;
    for (let i = 0; i < 3; i++) await store.loadSession(`gone-${i}`, 7);
    expect(opened().openedEpoch('gone-1')).toBe(7);
    for (let i = 0; i < 3; i++) await store.remove(`gone-${i}`);
    expect([0, 1, 2].map((i) => opened().openedEpoch(`gone-${i}`))).toEqual([0, 0, 0]);
    // a new session of a removed hub opens and writes as any
    await store.loadSession('gone-0', 8);
    store.writeReported('gone-0', 'd', reported({ on: true }));
    await store.flush();
    expect((await store.load('gone-0')).d?.reported).toEqual({ on: true });
    await store.close();
  });
});
