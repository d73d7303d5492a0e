import { describe, expect, it } from 'vitest';
import { FLAT_DEVICES, tableDelete, tableForEach, tableGet, tableIds, tableSet, tableSize, type DeviceTable } from '../../src/actors/device-table.js';

function entries<V>(table: DeviceTable<V>): Array<[string, V]> {
  const out: Array<[string, V]> = [];
  tableForEach(table, (v, id) => out.push([id, v]));
  return out.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

describe('DeviceTable', () => {
  it('answers as a Map does through sets, overwrites and deletes, across the change to a Map', () => {
    // a deterministic walk: ids from a pool larger than the flat limit, hostile names included
    const pool = ['__proto__', 'toString', 'constructor', 'hasOwnProperty', ...Array.from({ length: FLAT_DEVICES + 8 }, (_, i) => `0x00158d00${i}`)];
    let seed = 7;
    const next = (n: number) => {
      // xorshift32: enough spread for a walk, the same walk every run
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    let table: DeviceTable<{ n: number }> = [];
    const model = new Map<string, { n: number }>();
    let wasMap = false;
    for (let step = 0; step < 5_000; step++) {
      const id = pool[next(pool.length)]!;
      if (next(6) === 0) {
        tableDelete(table, id);
        model.delete(id);
      } else {
        const v = { n: step };
        table = tableSet(table, id, v);
        model.set(id, v);
      }
      wasMap ||= table instanceof Map;
      expect(tableSize(table)).toBe(model.size);
      const probe = pool[next(pool.length)]!;
      expect(tableGet(table, probe)).toBe(model.get(probe));
    }
    expect(wasMap).toBe(true);
    expect(entries(table)).toEqual([...model].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  });

  it('stays a flat array up to FLAT_DEVICES devices, then becomes a Map with all of them', () => {
    let table: DeviceTable<number> = [];
    for (let i = 0; i < FLAT_DEVICES; i++) table = tableSet(table, `d${i}`, i);
    expect(Array.isArray(table)).toBe(true);
    expect(tableSize(table)).toBe(FLAT_DEVICES);
    table = tableSet(table, 'd0', 100); // an overwrite adds nothing
    expect(Array.isArray(table)).toBe(true);
    table = tableSet(table, 'one-more', -1);
    expect(table).toBeInstanceOf(Map);
    expect(tableSize(table)).toBe(FLAT_DEVICES + 1);
    expect(tableGet(table, 'd0')).toBe(100);
    expect(tableGet(table, `d${FLAT_DEVICES - 1}`)).toBe(FLAT_DEVICES - 1);
    expect(tableGet(table, 'one-more')).toBe(-1);
  });

  it('finds nothing for ids named like Object.prototype members, in either form', () => {
    const flat: DeviceTable<number> = tableSet([], 'a', 1);
    const map: DeviceTable<number> = new Map([['a', 1]]);
    for (const table of [flat, map]) {
      for (const id of ['__proto__', 'toString', 'constructor', 'length', '0', '1']) expect(tableGet(table, id)).toBeUndefined();
    }
  });

  it('gives its ids as a copy, so devices may be removed while walking them', () => {
    let table: DeviceTable<number> = [];
    for (const id of ['a', 'b', 'c', 'd']) table = tableSet(table, id, 0);
    for (const id of tableIds(table)) tableDelete(table, id);
    expect(tableSize(table)).toBe(0);
  });
});
