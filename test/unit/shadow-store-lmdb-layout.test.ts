/**
 * The embedded shadow store keeps a device's reported side apart from its model and desired side,
 * so that a report is written without reading the device first. A store written in the layout
 * before (both sides in one record) is split when it is opened, keeping everything; backups of
 * either layout decode to the same devices.
 */
import { describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../src/log/logger.js';
import { emptyDevice } from '../../src/ports/shadow-store/shadow-store.js';
import { decodeShadowRecords, LmdbShadowStore, NAMES_DB, namesOf } from '../../src/ports/shadow-store/shadow-store-lmdb.js';
import { tempDataStoresPerTest } from '../contract/lmdb-fixture.js';

const log = createLogger('silent');
const stores = tempDataStoresPerTest();
const temp = async () => (await stores.temp()).data;

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
    expect(raw.get(['h', '']), 'kind and model in the hub kinds record, by number; none for a device without').toEqual(['lamp', expect.any(Number)]);
    expect(raw.get(['h', 'lamp', 'x']), 'the desired side in a record of its own').toEqual([['on', false, 'level', 10], 2]);
    expect(raw.get(['h', 'toString', 'x']), 'none while unset').toBeUndefined();

    // a report written without reading the record (as sessions write: no kind) keeps the rest
    store.writeReported('h', 'lamp', { ...emptyDevice(), reported: { on: false }, reportedVersion: 4, reportedAt: 9 }, 2);
    await store.flush();
    expect((await store.load('h')).lamp).toEqual({ kind: 'switch', model: 'SW-1', reported: { on: false }, reportedVersion: 4, reportedAt: 9, desired: { on: false, level: 10 }, desiredVersion: 2 });
    await store.close();
  });

  it('gathers kinds and models of the split layout into one record a hub, desired sides into their own, over a store larger than one chunk', async () => {
    const data = await temp();
    const raw = data.db<unknown>('shadows');
    const layouts = data.db<unknown>('layouts');
    const hubs = 1_500;
    raw.transactionSync(() => {
      void layouts.put('shadows', 2);
      for (let h = 0; h < hubs; h++) {
        void raw.put(`hub-${h}`, [1, 'b', h]);
        for (let d = 0; d < 8; d++) {
          void raw.put([`hub-${h}`, `d${d}`], [['v', h * 10 + d], 1, 5]);
          // kinds on every device but d7; a desired side on d0; d1 in the form numbered before this layout (names unknown: read as none)
          if (d === 1) void raw.put([`hub-${h}`, `d${d}`, 'x'], [999_999, [], 0]);
          else if (d < 7) void raw.put([`hub-${h}`, `d${d}`, 'x'], [`kind-${d}`, d === 0 ? 'M-0' : null, d === 0 ? ['on', true] : [], d === 0 ? 3 : 0]);
        }
      }
    });
    const store = new LmdbShadowStore(data, { log });
    expect([...raw.getKeys({})].filter((k) => Array.isArray(k) && k.length === 3), 'a desired record for d0 alone').toHaveLength(hubs);
    expect(raw.getKeysCount(), 'a hub: its entry, its kinds, its 8 devices and one desired side').toBe(hubs * 11);
    for (const h of [0, 1, 777, hubs - 1]) {
      const shadow = await store.load(`hub-${h}`);
      expect(shadow.d0).toEqual({ kind: 'kind-0', model: 'M-0', reported: { v: h * 10 }, reportedVersion: 1, reportedAt: 5, desired: { on: true }, desiredVersion: 3 });
      expect(shadow.d1).toMatchObject({ kind: undefined, reported: { v: h * 10 + 1 } });
      expect(shadow.d6).toMatchObject({ kind: 'kind-6', model: undefined, reported: { v: h * 10 + 6 } });
      expect(shadow.d7).toMatchObject({ kind: undefined, desiredVersion: 0, reported: { v: h * 10 + 7 } });
      expect(await store.loadCursor(`hub-${h}`)).toEqual({ boot: 'b', seq: h });
    }
    for (let h = 0; h < hubs; h++) expect((await store.load(`hub-${h}`)).d5?.kind).toBe('kind-5');
    await store.close();
  });

  it('a rewrite stopped after its first chunk goes on at the next open, nothing lost', async () => {
    const data = await temp();
    const raw = data.db<unknown>('shadows');
    const hubs = 1_500;
    raw.transactionSync(() => {
      void data.db<unknown>('layouts').put('shadows', 2);
      for (let h = 0; h < hubs; h++) for (let d = 0; d < 8; d++) {
        void raw.put([`hub-${h}`, `d${d}`], [['v', d], 1, 5]);
        void raw.put([`hub-${h}`, `d${d}`, 'x'], ['switch', `M-${h}`, [], 0]);
      }
    });
    const chunkTransaction = raw.transactionSync.bind(raw);
    let calls = 0;
    const stop = vi.spyOn(raw, 'transactionSync').mockImplementation(((body: () => unknown) => {
      if (++calls === 2) throw new Error('killed');
      return chunkTransaction(body);
    }) as typeof raw.transactionSync);
    expect(() => new LmdbShadowStore(data, { log })).toThrow('killed');
    stop.mockRestore();
    const left = [...raw.getKeys({})].filter((k) => Array.isArray(k) && k.length === 3).length;
    expect(left, 'the first chunk rewritten, the rest not yet').toBeGreaterThan(0);
    expect(left).toBeLessThan(hubs * 8);
    const store = new LmdbShadowStore(data, { log });
    expect([...raw.getKeys({})].filter((k) => Array.isArray(k) && k.length === 3)).toEqual([]);
    for (let h = 0; h < hubs; h++) {
      const shadow = await store.load(`hub-${h}`);
      expect(Object.keys(shadow)).toHaveLength(8);
      expect(shadow.d7).toMatchObject({ kind: 'switch', model: `M-${h}`, reported: { v: 7 } });
    }
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

  it('a desired change writes the desired record of its device alone, whatever the size of the hub', async () => {
    const data = await temp();
    const store = new LmdbShadowStore(data, { log });
    await store.writeDevices('h', Array.from({ length: 100 }, (_, i) => ({ d: `d${i}`, k: 'switch', m: 'SW-1' })), [], true);
    for (let i = 0; i < 100; i++) await store.setDesired('h', `d${i}`, { on: true, level: i });
    const puts = vi.spyOn(data.db<unknown>('shadows'), 'put');
    expect(await store.setDesired('h', 'd42', { level: 1 })).toMatchObject({ kind: 'switch', model: 'SW-1', desired: { on: true, level: 1 }, desiredVersion: 2 });
    expect(puts.mock.calls.map((c) => c[0])).toEqual([['h', 'd42', 'x']]);
    puts.mockRestore();
    expect((await store.load('h')).d42).toMatchObject({ kind: 'switch', desired: { on: true, level: 1 }, desiredVersion: 2 });
    // a device that leaves takes its desired record with it
    await store.writeDevices('h', [], ['d42'], false);
    expect(data.db<unknown>('shadows').get(['h', 'd42', 'x'])).toBeUndefined();
    await store.close();
  });

  it('kinds of several devices of a hub in one batch are all kept, as puts or in a transaction', async () => {
    const store = new LmdbShadowStore(await temp(), { log });
    const device = (kind: string) => ({ ...emptyDevice(), kind, reported: { on: true }, reportedVersion: 1, reportedAt: 5 });
    // 20 hubs: a batch large enough to go as plain puts (reads then see only what is committed); 1 hub: in a transaction
    for (const hubs of [20, 1]) {
      for (let h = 0; h < hubs; h++) for (const d of ['a', 'b', 'c']) store.writeReported(`${hubs}-${h}`, d, device(`kind-${d}`));
      await store.flush();
      for (let h = 0; h < hubs; h++) expect(await store.load(`${hubs}-${h}`)).toMatchObject({ a: { kind: 'kind-a' }, b: { kind: 'kind-b' }, c: { kind: 'kind-c' } });
    }
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
    expect(puts, 'the hub extras record, one for both').toHaveBeenCalledTimes(1);
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
    expect(records.map((r) => r.key)).toEqual(['h', ['h', ''], ['h', 'lamp'], ['h', 'lamp', 'x']]);
    expect(records[2]!.value, 'names numbered: values alone').toEqual([expect.any(Number), [false], 1, 7]);
    expect([...decodeShadowRecords(records, names)]).toEqual([
      { type: 'hub', hubId: 'h', epoch: 1, cursor: { boot: 'b', seq: 4 } },
      { type: 'device', hubId: 'h', deviceId: 'lamp', device: lamp },
    ]);
    const legacy = [{ key: ['h', 'lamp'], value: ['switch', 'SW-1', ['on', false], 1, 7, ['on', true], 1] }];
    expect([...decodeShadowRecords(legacy)]).toEqual([{ type: 'device', hubId: 'h', deviceId: 'lamp', device: lamp }]);
    const split = [
      { key: ['h', 'lamp'], value: [['on', false], 1, 7] },
      { key: ['h', 'lamp', 'x'], value: ['switch', 'SW-1', ['on', true], 1] },
    ];
    expect([...decodeShadowRecords(split)]).toEqual([{ type: 'device', hubId: 'h', deviceId: 'lamp', device: lamp }]);
    expect(() => [...decodeShadowRecords([{ key: ['h', 'lamp', 'x'], value: [null, [], 0] }])]).toThrow(TypeError);
    await store.close();
  });
});
