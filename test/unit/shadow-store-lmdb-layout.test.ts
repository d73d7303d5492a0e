/**
 * The embedded shadow store keeps a device's reported side apart from its model and desired side,
 * so that a report is written without reading the device first. A store written in the layout
 * before (both sides in one record) is split when it is opened, keeping everything; backups of
 * either layout decode to the same devices.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../src/log/logger.js';
import { emptyDevice } from '../../src/ports/shadow-store/shadow-store.js';
import { decodeShadowRecords, LmdbShadowStore, NAMES_DB, namesOf } from '../../src/ports/shadow-store/shadow-store-lmdb.js';
import { tempDataStore } from '../contract/lmdb-fixture.js';

const log = createLogger('silent');
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function temp() {
  const tmp = await tempDataStore();
  cleanups.push(() => tmp.remove());
  return tmp.data;
}

describe('LmdbShadowStore layout', () => {
  it('splits records of the layout before when opened: kind, model, both sides and versions kept', async () => {
    const data = await temp();
    const raw = data.db<unknown>('shadows');
    raw.putSync('h', [2, 'boot-1', 7]);
    raw.putSync(['h', 'lamp'], ['switch', 'SW-1', ['on', true], 3, 1_700_000_000_000, ['on', false, 'level', 10], 2]);
    raw.putSync(['h', 'toString'], [null, null, ['t', 21.5], 1, 5, [], 0]);
    const store = new LmdbShadowStore(data, { log });
    const shadow = await store.load('h');
    expect(shadow.lamp).toEqual({ kind: 'switch', model: 'SW-1', reported: { on: true }, reportedVersion: 3, reportedAt: 1_700_000_000_000, desired: { on: false, level: 10 }, desiredVersion: 2 });
    expect(shadow.toString).toMatchObject({ reported: { t: 21.5 }, reportedVersion: 1, desired: {}, desiredVersion: 0 });
    expect(await store.loadCursor('h')).toEqual({ boot: 'boot-1', seq: 7 });
    expect(raw.get(['h', 'lamp']), 'the reported side alone').toEqual([['on', true], 3, 1_700_000_000_000]);
    expect(raw.get(['h', 'lamp', 'x']), 'the rest').toEqual(['switch', 'SW-1', ['on', false, 'level', 10], 2]);
    expect(raw.get(['h', 'toString', 'x']), 'no extra record while kind, model and desired are unset').toBeUndefined();

    // a report written without reading the record (as sessions write: no kind) keeps the rest
    store.writeReported('h', 'lamp', { ...emptyDevice(), reported: { on: false }, reportedVersion: 4, reportedAt: 9 }, 2);
    await store.flush();
    expect((await store.load('h')).lamp).toEqual({ kind: 'switch', model: 'SW-1', reported: { on: false }, reportedVersion: 4, reportedAt: 9, desired: { on: false, level: 10 }, desiredVersion: 2 });
    await store.close();
  });

  it('splits once: a store opened again is not rewritten', async () => {
    const data = await temp();
    const first = new LmdbShadowStore(data, { log });
    await first.close();
    // written after the split in the old layout (as no code of this version does): left as it is
    const raw = data.db<unknown>('shadows');
    raw.putSync(['h', 'd'], [null, null, [], 0, 0, ['on', true], 1]);
    const second = new LmdbShadowStore(data, { log });
    expect(raw.get(['h', 'd'])).toHaveLength(7);
    await second.close();
  });

  it('a report without a kind keeps the stored kind; one with a kind sets it and keeps model and desired', async () => {
    const store = new LmdbShadowStore(await temp(), { log });
    await store.writeDevices('h', [{ d: 'door', k: 'sensor.door', m: 'D-1' }], [], true);
    await store.setDesired('h', 'door', { armed: true });
    store.writeReported('h', 'door', { ...emptyDevice(), reported: { open: true }, reportedVersion: 1, reportedAt: 5 });
    await store.flush();
    expect((await store.load('h')).door).toMatchObject({ kind: 'sensor.door', model: 'D-1', reported: { open: true }, desired: { armed: true } });
    store.writeReported('h', 'door', { ...emptyDevice(), kind: 'sensor.window', reported: { open: false }, reportedVersion: 2, reportedAt: 6 });
    await store.flush();
    expect((await store.load('h')).door).toMatchObject({ kind: 'sensor.window', model: 'D-1', reported: { open: false }, desired: { armed: true }, desiredVersion: 1 });
    await store.close();
  });

  it('a hub reconnecting with the same devices writes no record; a changed kind or model is written', async () => {
    const data = await temp();
    const store = new LmdbShadowStore(data, { log });
    const list = [{ d: 'lamp', k: 'switch', m: 'SW-1' }, { d: 'door', k: 'sensor.door' }];
    await store.writeDevices('h', list, [], true);
    await store.setDesired('h', 'lamp', { on: true });
    const puts = vi.spyOn(data.db<unknown>('shadows'), 'put');
    await store.writeDevices('h', list, [], true);
    // a model left out keeps the stored one: unchanged too
    await store.writeDevices('h', [{ d: 'lamp', k: 'switch' }], [], false);
    expect(puts).not.toHaveBeenCalled();
    await store.writeDevices('h', [{ d: 'lamp', k: 'switch', m: 'SW-2' }, { d: 'door', k: 'sensor.window' }], [], true);
    expect(puts).toHaveBeenCalledTimes(2);
    puts.mockRestore();
    expect(await store.load('h')).toMatchObject({ lamp: { kind: 'switch', model: 'SW-2', desired: { on: true }, desiredVersion: 1 }, door: { kind: 'sensor.window' } });
    // the same full list again: not even a transaction (which would end the open batch)
    const transactions = vi.spyOn(data.db<unknown>('shadows'), 'transaction');
    await store.writeDevices('h', [{ d: 'lamp', k: 'switch' }, { d: 'door', k: 'sensor.window' }], [], true);
    expect(transactions).not.toHaveBeenCalled();
    // one device fewer, a kind changed, or a device added: written
    await store.writeDevices('h', [{ d: 'lamp', k: 'switch' }], [], true);
    await store.writeDevices('h', [{ d: 'lamp', k: 'dimmer' }], [], true);
    await store.writeDevices('h', [{ d: 'lamp', k: 'dimmer' }, { d: 'fan', k: 'switch' }], [], true);
    expect(transactions).toHaveBeenCalledTimes(3);
    transactions.mockRestore();
    expect(Object.keys(await store.load('h')).sort()).toEqual(['fan', 'lamp']);
    // a device that reported before it was listed has no kind record yet: its list is written
    store.writeReported('h2', 'plug', { ...emptyDevice(), reported: { on: true }, reportedVersion: 1, reportedAt: 5 });
    await store.flush();
    await store.writeDevices('h2', [{ d: 'plug', k: 'switch' }], [], true);
    expect(await store.load('h2')).toMatchObject({ plug: { kind: 'switch', reported: { on: true } } });
    // a device that left: both its records go
    await store.writeDevices('h', [], ['fan'], false);
    expect(Object.keys(await store.load('h'))).toEqual(['lamp']);
    expect([...data.db<unknown>('shadows').getKeys({})].filter((k) => Array.isArray(k) && k[1] === 'fan')).toEqual([]);
    await store.close();
  });

  it('a reconnecting session reads its hub once: shadow and cursor in one range, its unchanged list checked against them', async () => {
    const data = await temp();
    const store = new LmdbShadowStore(data, { log });
    const list = [{ d: 'lamp', k: 'switch', m: 'SW-1' }, { d: 'door', k: 'sensor.door' }];
    await store.writeDevices('h', list, [], true);
    store.writeReported('h', 'lamp', { ...emptyDevice(), reported: { on: true }, reportedVersion: 1, reportedAt: 5 });
    store.writeCursor('h', { boot: 'b', seq: 3 });
    await store.flush();
    const db = data.db<unknown>('shadows');
    const ranges = vi.spyOn(db, 'getRange');
    const gets = vi.spyOn(db, 'get');
    const transactions = vi.spyOn(db, 'transaction');
    const start = await store.loadSession('h');
    expect(start.cursor).toEqual({ boot: 'b', seq: 3 });
    expect(start.shadow.lamp).toMatchObject({ kind: 'switch', model: 'SW-1', reported: { on: true } });
    await store.writeDevices('h', list, [], true);
    expect(ranges).toHaveBeenCalledTimes(1);
    expect(gets).not.toHaveBeenCalled();
    expect(transactions).not.toHaveBeenCalled();
    // remembered until that list only: the next one is checked against the store
    await store.writeDevices('h', list, [], true);
    expect(ranges).toHaveBeenCalledTimes(2);
    expect(transactions).not.toHaveBeenCalled();
    vi.restoreAllMocks();
    await store.close();
  });

  it('decodes a backup of either layout to the same devices, extra records joined', async () => {
    const data = await temp();
    const store = new LmdbShadowStore(data, { log });
    await store.writeDevices('h', [{ d: 'lamp', k: 'switch', m: 'SW-1' }], [], true);
    await store.setDesired('h', 'lamp', { on: true });
    store.writeReported('h', 'lamp', { ...emptyDevice(), kind: 'switch', reported: { on: false }, reportedVersion: 1, reportedAt: 7 });
    store.writeCursor('h', { boot: 'b', seq: 4 }, 1);
    await store.flush();
    const records = [...data.db<unknown>('shadows').getRange({})].map(({ key, value }) => ({ key, value }));
    const names = namesOf([...data.db<unknown>(NAMES_DB).getRange({})].map(({ key, value }) => ({ key, value })));
    const lamp = { kind: 'switch', model: 'SW-1', reported: { on: false }, reportedVersion: 1, reportedAt: 7, desired: { on: true }, desiredVersion: 1 };
    expect(records.map((r) => r.value)[1], 'names numbered: values alone').toEqual([expect.any(Number), [false], 1, 7]);
    expect([...decodeShadowRecords(records, names)]).toEqual([
      { type: 'hub', hubId: 'h', epoch: 1, cursor: { boot: 'b', seq: 4 } },
      { type: 'device', hubId: 'h', deviceId: 'lamp', device: lamp },
    ]);
    const legacy = [{ key: ['h', 'lamp'], value: ['switch', 'SW-1', ['on', false], 1, 7, ['on', true], 1] }];
    expect([...decodeShadowRecords(legacy)]).toEqual([{ type: 'device', hubId: 'h', deviceId: 'lamp', device: lamp }]);
    expect(() => [...decodeShadowRecords([{ key: ['h', 'lamp', 'x'], value: [null, [], 0] }])]).toThrow(TypeError);
    await store.close();
  });
});
