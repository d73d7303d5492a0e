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
import { AttrShapes } from '../../src/actors/attr-shapes.js';
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

  describe('with the node\'s numbered key lists (AttrShapes)', () => {
    it('gives back what it packed, every awkward case, and packs the same string again', () => {
      const shapes = new AttrShapes();
      const table = tableOf([...awkward, { undef: undefined as unknown as number, kept: 1 }].map((a, i) => [`d-${i}`, a, i + 1, i % 2 === 0 ? 0 : 7 * i]));
      const cold = packDevices(table, shapes)!;
      const back = unpackDevices(cold, shapes);
      // an undefined value is dropped, as JSON drops it from an object
      const expected = contents(table).map((row) => (row[0] === 'd-5' ? (['d-5', { kept: 1 }, ['kept'], 6, 7 * 5] as (typeof row)) : row));
      expect(contents(back)).toEqual(expected);
      tableForEach(back, (attrs) => expect(Object.getPrototypeOf(attrs)).toBe(Object.prototype));
      expect(contents(unpackDevices(packDevices(back, shapes)!, shapes))).toEqual(expected);
      // a cache packed, used and packed anew is the same string
      const awkwardOnly = packDevices(tableOf(awkward.map((a, i) => [`d-${i}`, a, i + 1, 0])), shapes)!;
      expect(packDevices(unpackDevices(awkwardOnly, shapes), shapes)).toBe(awkwardOnly);
    });

    it('names each key list once a node: a fleet of one device model packs its values alone', () => {
      const shapes = new AttrShapes();
      const sensor = (t: number): Attrs => ({ temperature: t, humidity: 48, battery: 80 });
      const named = packDevices(tableOf([['a', sensor(21), 1, 0], ['b', sensor(22.5), 2, 0]]))!;
      const numbered = packDevices(tableOf([['a', sensor(21), 1, 0], ['b', sensor(22.5), 2, 0]]), shapes)!;
      expect(numbered).toBe('\na\t1\t0\t0:21,48,80\nb\t2\t0\t0:22.5,48,80\n');
      expect(numbered.length).toBeLessThan(named.length / 2);
      expect(shapes.size).toBe(1);
      // the same keys in another order are another list: the order is part of what comes back
      packDevices(tableOf([['c', { battery: 80, temperature: 20, humidity: 40 }, 1, 0]]), shapes);
      expect(shapes.size).toBe(2);
      expect(Object.keys((unpackDevices(numbered, shapes) as Array<string | CachedAttrs>)[1] as CachedAttrs)).toEqual(['temperature', 'humidity', 'battery']);
    });

    it('names the keys of a device whose list it cannot number: a full table, a long list, `__proto__`', () => {
      const shapes = new AttrShapes(1, 40);
      const cold = packDevices(
        tableOf([
          ['a', { on: true }, 1, 0],
          ['b', { level: 3 }, 1, 0],
          ['c', { on: false }, 1, 0],
        ]),
        shapes,
      )!;
      expect(cold).toBe('\na\t1\t0\t0:true\nb\t1\t0\t{"level":3}\nc\t1\t0\t0:false\n');
      const wide = new AttrShapes(10, 40);
      const long = { ['k'.repeat(50)]: 1 };
      const proto = JSON.parse('{"__proto__":1,"x":2}') as Attrs;
      const both = packDevices(tableOf([['l', long, 1, 0], ['p', proto, 1, 0]]), wide)!;
      expect(wide.size).toBe(0);
      expect(contents(unpackDevices(both, wide))).toEqual(contents(tableOf([['l', long, 1, 0], ['p', proto, 1, 0]])));
      tableForEach(unpackDevices(both, wide), (attrs) => expect(Object.getPrototypeOf(attrs)).toBe(Object.prototype));
    });

    it('refuses a packed cache naming a key list its table never numbered', () => {
      const cold = packDevices(tableOf([['a', { on: true }, 1, 0]]), new AttrShapes())!;
      expect(() => unpackDevices(cold, new AttrShapes())).toThrow(/key list 0/);
      expect(() => unpackDevices(cold)).toThrow(/key list 0/);
    });
  });
});
