import { describe, expect, it } from 'vitest';
import type { Attrs } from '../../proto/frames.js';
import {
  cached,
  coldHas,
  desiredVersion,
  NO_COLD_DEVICES,
  packDevices,
  reportedVersion,
  setDesiredVersion,
  unpackDevices,
  type CachedAttrs,
} from '../../src/actors/cold-devices.js';
import { FLAT_DEVICES, tableForEach, tableSet, type DeviceTable } from '../../src/actors/device-table.js';

/** Values the idle form must give back as they went in: escapes, its separators, non-Latin text, extremes, prototype names. */
const awkward: Attrs[] = [
  { on: true, level: 0, note: 'x' },
  { s: 'tab\there\nnewline "quoted" \\ back', e: '' },
  { name: 'Küche 🌡 温度', n: -1.5e-300, big: Number.MAX_SAFE_INTEGER, f: 0.1 + 0.2 },
  JSON.parse('{"__proto__":1,"toString":"x","constructor":false,"toJSON":"y"}') as Attrs,
  {},
];

/** What a table holds, in a form `toEqual` compares: ids, attributes (own keys in order), versions. */
function contents(table: DeviceTable<CachedAttrs>): Array<[string, Attrs, string[], number, number]> {
  const out: Array<[string, Attrs, string[], number, number]> = [];
  tableForEach(table, (attrs, id) => out.push([id, { ...attrs }, Object.keys(attrs), reportedVersion(attrs), desiredVersion(attrs)]));
  return out;
}

function tableOf(devices: Array<[string, Attrs, number, number]>): DeviceTable<CachedAttrs> {
  let table: DeviceTable<CachedAttrs> = [];
  for (const [id, attrs, version, desired] of devices) {
    const a = cached({ ...attrs }, version);
    if (desired > 0) setDesiredVersion(a, desired);
    table = tableSet(table, id, a);
  }
  return table;
}

describe('cold devices (a session cache packed into one string)', () => {
  it('gives back what it packed: ids, attributes with their key order, versions, desired versions', () => {
    const table = tableOf(awkward.map((a, i) => [`d-${i}`, a, i + 1, i % 2 === 0 ? 0 : 7 * i]));
    const cold = packDevices(table)!;
    expect(typeof cold).toBe('string');
    const back = unpackDevices(cold);
    expect(contents(back)).toEqual(contents(table));
    tableForEach(back, (attrs) => expect(Object.getPrototypeOf(attrs)).toBe(Object.prototype));
    // the versions stay out of what a serializer sees, as on a table never packed
    tableForEach(back, (attrs) => expect(Object.keys(JSON.parse(JSON.stringify(attrs)) as object)).toEqual(Object.keys(attrs)));
    // and again: a cache packed, used and packed anew is the same string
    expect(packDevices(back)).toBe(cold);
  });

  it('packs a hub without devices, and one of more devices than a flat table holds (unpacked as a Map again)', () => {
    expect(packDevices([])).toBe(NO_COLD_DEVICES);
    expect(unpackDevices(NO_COLD_DEVICES)).toEqual([]);
    const many = tableOf(Array.from({ length: FLAT_DEVICES + 5 }, (_, i) => [`m${i}`, { i }, i, 0]));
    expect(many).toBeInstanceOf(Map);
    const back = unpackDevices(packDevices(many)!);
    expect(back).toBeInstanceOf(Map);
    expect(contents(back)).toEqual(contents(many));
  });

  it('leaves a table holding an id with a tab or newline, or an empty one, unpacked: no line could be told from another', () => {
    for (const odd of ['a\t1', 'a\n1', '']) expect(packDevices(tableOf([['a', { v: 1 }, 1, 0], [odd, { v: 2 }, 1, 0]]))).toBeNull();
  });

  it('finds a device in the packed string without unpacking it, and no other', () => {
    const cold = packDevices(tableOf([['abc', { on: true }, 1, 1], ['__proto__', {}, 0, 0]]))!;
    expect(coldHas(cold, 'abc')).toBe(true);
    expect(coldHas(cold, '__proto__')).toBe(true);
    for (const id of ['a', 'bc', 'ab', 'abcd', 'toString', 'on', '1', 'abc\t1', '', '\n']) expect(coldHas(cold, id)).toBe(false);
  });
});
