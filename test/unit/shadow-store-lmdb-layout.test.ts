/**
 * The embedded shadow store keeps a device's reported side apart from its model and desired side,
 * so that a report is written without reading the device first, and a hub's records under its
 * number. A store written in a layout before is rewritten when it is opened, keeping everything;
 * backups of any layout decode to the same devices.
 */
import { describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../src/log/logger.js';
import { openDataStore, type DataStore } from '../../src/ports/lmdb.js';
import { emptyDevice } from '../../src/ports/shadow-store/shadow-store.js';
import { decodeShadowRecords, LmdbShadowStore, NAMES_DB, namesOf } from '../../src/ports/shadow-store/shadow-store-lmdb.js';
import { shadowEntry, shadowKey, shadowKinds, tempDataStoresPerTest } from '../contract/lmdb-fixture.js';

const log = createLogger('silent');
const stores = tempDataStoresPerTest();
const temp = async () => (await stores.temp()).data;

/** Opens a store on `data` whose rewrite is stopped (as by a kill) at its second chunk's transaction. */
function openKilledAtSecondChunk(data: DataStore): void {
  const raw = data.db<unknown>('shadows');
  const chunkTransaction = raw.transactionSync.bind(raw);
  let calls = 0;
  const stop = vi.spyOn(raw, 'transactionSync').mockImplementation(((body: () => unknown) => {
    if (++calls === 2) throw new Error('killed');
    return chunkTransaction(body);
  }) as typeof raw.transactionSync);
  expect(() => new LmdbShadowStore(data, { log })).toThrow('killed');
  stop.mockRestore();
}

/** Writes a store of the earlier `layout` (its marker and `fill`'s records, in one transaction); answers sub-database `shadows`. */
function earlierLayout(data: DataStore, layout: number, fill: (raw: ReturnType<DataStore['db']>) => void): ReturnType<DataStore['db']> {
  const raw = data.db<unknown>('shadows');
  raw.transactionSync(() => {
    void data.db<unknown>('layouts').put('shadows', layout);
    fill(raw);
  });
  return raw;
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
    expect(shadowEntry(data, 'h'), 'the entry under the hub id, with its number').toEqual([2, 'boot-1', 7, 0]);
    expect(raw.get(shadowKey(data, 'h', 'lamp')), 'the reported side alone').toEqual([['on', true], 3, 1_700_000_000_000]);
    expect(shadowKinds(data, 'h'), 'kind and model in the hub kinds record, by number; none for a device without').toEqual(['lamp', expect.any(Number)]);
    expect(raw.get(shadowKey(data, 'h', 'lamp', 'x')), 'the desired side in a record of its own').toEqual([['on', false, 'level', 10], 2]);
    expect(raw.get(shadowKey(data, 'h', 'toString', 'x')), 'none while unset').toBeUndefined();
    expect([...raw.getKeys({})].filter((k) => typeof k === 'string' || (Array.isArray(k) && typeof k[0] === 'string')), 'no key of the layouts before').toEqual([]);

    // a report written without reading the record (as sessions write: no kind) keeps the rest
    store.writeReported('h', 'lamp', { ...emptyDevice(), reported: { on: false }, reportedVersion: 4, reportedAt: 9 }, 2);
    await store.flush();
    expect((await store.load('h')).lamp).toEqual({ kind: 'switch', model: 'SW-1', reported: { on: false }, reportedVersion: 4, reportedAt: 9, desired: { on: false, level: 10 }, desiredVersion: 2 });
    await store.close();
  });

  it('gathers kinds and models of the split layout into one record a hub, desired sides into their own, over a store larger than one chunk', async () => {
    const data = await temp();
    const hubs = 1_500;
    const raw = earlierLayout(data, 2, (raw) => {
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
    expect([...raw.getKeys({})].filter((k) => Array.isArray(k) && k[2] === 'x'), 'a desired record for d0 alone').toHaveLength(hubs);
    expect(raw.getKeysCount(), 'a hub: its entry, its kinds, its 8 devices and one desired side; the next hub number').toBe(hubs * 11 + 1);
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
    const hubs = 1_500;
    const raw = earlierLayout(data, 2, (raw) => {
      for (let h = 0; h < hubs; h++) for (let d = 0; d < 8; d++) {
        void raw.put([`hub-${h}`, `d${d}`], [['v', d], 1, 5]);
        void raw.put([`hub-${h}`, `d${d}`, 'x'], ['switch', `M-${h}`, [], 0]);
      }
    });
    openKilledAtSecondChunk(data);
    const left = [...raw.getKeys({})].filter((k) => Array.isArray(k) && k[2] === 'x').length;
    expect(left, 'the first chunk rewritten, the rest not yet').toBeGreaterThan(0);
    expect(left).toBeLessThan(hubs * 8);
    const store = new LmdbShadowStore(data, { log });
    expect([...raw.getKeys({})].filter((k) => Array.isArray(k) && k[2] === 'x')).toEqual([]);
    for (let h = 0; h < hubs; h++) {
      const shadow = await store.load(`hub-${h}`);
      expect(Object.keys(shadow)).toHaveLength(8);
      expect(shadow.d7).toMatchObject({ kind: 'switch', model: `M-${h}`, reported: { v: 7 } });
    }
    await store.close();
  });

  it('numbers the hubs of a store keyed by hub id, over more than one chunk, going on where a stopped rewrite left off', async () => {
    const data = await temp();
    const hubs = 2_000;
    const raw = earlierLayout(data, 3, (raw) => {
      for (let h = 0; h < hubs; h++) {
        // every tenth hub without an entry (written by a desired change before it ever connected)
        if (h % 10 !== 0) void raw.put(`hub-${h}`, [2, 'b', h]);
        void raw.put([`hub-${h}`, ''], ['d0', ['switch', `M-${h}`]]);
        for (let d = 0; d < 8; d++) void raw.put([`hub-${h}`, `d${d}`], [['v', h * 10 + d], 1, 5]);
        void raw.put([`hub-${h}`, 'd0', 'x'], [['on', true], 1]);
      }
    });
    openKilledAtSecondChunk(data);
    const byId = () => [...raw.getKeys({})].filter((k) => typeof k === 'string' || (Array.isArray(k) && typeof k[0] === 'string')).length;
    expect(byId(), 'the first chunk numbered, the rest not yet').toBeGreaterThan(0);
    expect(byId()).toBeLessThan(hubs * 11);
    const store = new LmdbShadowStore(data, { log });
    expect(byId()).toBe(0);
    const numbers = new Set<number>();
    for (let h = 0; h < hubs; h++) {
      const shadow = await store.load(`hub-${h}`);
      expect(Object.keys(shadow)).toHaveLength(8);
      expect(shadow.d0).toMatchObject({ kind: 'switch', model: `M-${h}`, reported: { v: h * 10 }, desired: { on: true }, desiredVersion: 1 });
      expect(await store.loadCursor(`hub-${h}`)).toEqual(h % 10 === 0 ? null : { boot: 'b', seq: h });
      numbers.add(shadowEntry(data, `hub-${h}`)![3]);
    }
    expect(numbers.size, 'a number a hub').toBe(hubs);
    // a hub new to the store gets a number none has
    store.writeCursor('new', { boot: 'b', seq: 1 });
    await store.flush();
    expect(numbers.has(shadowEntry(data, 'new')![3])).toBe(false);
    await store.close();
  });

  it('numbers hubs by first sight and never gives a number twice, a removed hub\'s included, across restarts', async () => {
    const { data, dir } = await stores.temp();
    const store = new LmdbShadowStore(data, { log });
    for (const hub of ['zulu', 'alpha', 'mike']) store.writeReported(hub, 'd', { ...emptyDevice(), reported: { on: true }, reportedVersion: 1, reportedAt: 5 });
    await store.flush();
    expect(['zulu', 'alpha', 'mike'].map((h) => shadowEntry(data, h)![3]), 'in the order first written, whatever the ids').toEqual([0, 1, 2]);
    await store.remove('mike');
    expect([...data.db<unknown>('shadows').getKeys({})].filter((k) => Array.isArray(k) && k[0] === 2), 'its records gone').toEqual([]);
    await store.close();
    await data.close();
    const again = openDataStore(dir, { owner: 'test' });
    stores.cleanups.unshift(() => again.close());
    const reopened = new LmdbShadowStore(again, { log });
    reopened.writeReported('victor', 'd', { ...emptyDevice(), reported: { on: true }, reportedVersion: 1, reportedAt: 5 });
    await reopened.setDesired('mike', 'd', { on: false });
    await reopened.flush();
    expect(shadowEntry(again, 'victor')![3], 'not the removed hub\'s number, whose records were the last').toBe(3);
    expect(shadowEntry(again, 'mike')![3], 'a removed hub keeps its number').toBe(2);
    expect(Object.keys(await reopened.load('mike'))).toEqual(['d']);
    await reopened.close();
  });

  it('writes a listed device\'s record at its first report, a new hub\'s records under a number given then, in key order', async () => {
    const data = await temp();
    const store = new LmdbShadowStore(data, { log });
    await store.writeDevices('h', ['c', 'a', 'b'].map((d) => ({ d, k: 'switch' })), [], true);
    const numberedKeys = () => [...data.db<unknown>('shadows').getKeys({})].filter((k) => Array.isArray(k) && typeof k[0] === 'number');
    expect(numberedKeys(), 'listed: the kinds record alone').toEqual([]);
    expect(shadowEntry(data, 'h'), 'no entry, no number yet').toBeUndefined();
    expect(await store.load('h')).toMatchObject({ a: { kind: 'switch', reportedVersion: 0 }, b: { kind: 'switch' }, c: { kind: 'switch' } });
    const puts = vi.spyOn(data.db<unknown>('shadows'), 'put');
    for (const d of ['c', 'a', 'b']) store.writeReported('h', d, { ...emptyDevice(), reported: { on: true }, reportedVersion: 1, reportedAt: 5 });
    await store.flush();
    expect(puts.mock.calls.map((c) => c[0]).filter((k) => Array.isArray(k) && typeof k[0] === 'number')).toEqual([[0, 'a'], [0, 'b'], [0, 'c']]);
    puts.mockRestore();
    expect(shadowEntry(data, 'h')).toEqual([0, null, 0, 0]);
    expect(await store.load('h')).toMatchObject({ a: { kind: 'switch', reported: { on: true } }, c: { kind: 'switch', reportedVersion: 1 } });
    // a hub whose entry was written first (a session's cursor) keeps the number its first report gave
    store.writeCursor('s', { boot: 'b', seq: 1 }, 1);
    await store.flush();
    store.writeReported('s', 'lux', { ...emptyDevice(), reported: { lux: 12 }, reportedVersion: 1, reportedAt: 5 }, 1);
    store.writeReported('s', 'motion', { ...emptyDevice(), reported: { motion: false }, reportedVersion: 1, reportedAt: 5 }, 1);
    await store.flush();
    store.writeReported('s', 'motion', { ...emptyDevice(), reported: { motion: true }, reportedVersion: 2, reportedAt: 6 }, 1);
    await store.flush();
    expect(await store.load('s')).toMatchObject({ lux: { reported: { lux: 12 } }, motion: { reported: { motion: true } } });
    expect(shadowEntry(data, 's')).toEqual([1, 'b', 1, 1]);
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
    expect(puts.mock.calls.map((c) => c[0])).toEqual([shadowKey(data, 'h', 'd42', 'x')]);
    puts.mockRestore();
    expect((await store.load('h')).d42).toMatchObject({ kind: 'switch', desired: { on: true, level: 1 }, desiredVersion: 2 });
    // a device that leaves takes its desired record with it
    await store.writeDevices('h', [], ['d42'], false);
    expect(data.db<unknown>('shadows').get(shadowKey(data, 'h', 'd42', 'x'))).toBeUndefined();
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

  it('a reconnecting session reads its hub once: its entry and one range, its unchanged list checked against them', async () => {
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
    expect(gets, 'the entry, the kinds record').toHaveBeenCalledTimes(2);
    await store.writeDevices('h', list, [], true);
    expect(ranges).toHaveBeenCalledTimes(1);
    expect(gets).toHaveBeenCalledTimes(2);
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
    expect(records.map((r) => r.key)).toEqual([[false, ''], [false, 'h'], [false, 'h', ''], [0, 'lamp'], [0, 'lamp', 'x']]);
    expect(records[3]!.value, 'names numbered: values alone').toEqual([expect.any(Number), [false], 1, 7]);
    expect([...decodeShadowRecords(records, names)]).toEqual([
      { type: 'hub', hubId: 'h', epoch: 1, cursor: { boot: 'b', seq: 4 } },
      { type: 'device', hubId: 'h', deviceId: 'lamp', device: lamp },
    ]);
    // the layout before numbered hubs: records under the hub id
    const byId = [
      { key: 'h', value: [1, 'b', 4] },
      { key: ['h', ''], value: records[2]!.value },
      { key: ['h', 'lamp'], value: records[3]!.value },
      { key: ['h', 'lamp', 'x'], value: records[4]!.value },
    ];
    expect([...decodeShadowRecords(byId, names)]).toEqual([...decodeShadowRecords(records, names)]);
    expect(() => [...decodeShadowRecords([{ key: [7, 'lamp'], value: [[], 0, 0] }])], 'a record of a number no entry gave').toThrow(TypeError);
    // two hubs of one number (two processes wrote the store at once): refused, not mixed
    const shared = [{ key: [false, 'h'], value: [1, null, 0, 0] }, { key: [false, 'h2'], value: [1, null, 0, 0] }];
    expect(() => [...decodeShadowRecords(shared)]).toThrow(/hubs "h" and "h2" share the number 0: two processes wrote this store at once/);
    // a device listed and never reported: its kinds entry alone, decoded after the records
    await store.writeDevices('k', [{ d: 'plug', k: 'switch' }], [], true);
    const withListed = [...data.db<unknown>('shadows').getRange({})].map(({ key, value }) => ({ key, value }));
    expect([...decodeShadowRecords(withListed, namesOf([...data.db<unknown>(NAMES_DB).getRange({})].map(({ key, value }) => ({ key, value }))))].at(-1)).toEqual({
      type: 'device',
      hubId: 'k',
      deviceId: 'plug',
      device: { ...emptyDevice(), kind: 'switch', model: undefined },
    });
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
