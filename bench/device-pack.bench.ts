/**
 * What packing a hub session's device cache costs (TIER_SHADOW_PACK_MS, cold-devices.ts): `--hubs`
 * caches of `--devices` devices each, the attributes the load tool's devices report, are packed
 * into their idle form and unpacked again, `--rounds` times. Printed per hub: µs to pack, µs to
 * unpack, and the floor of the same run: the JSON text of the same attributes made and parsed
 * (what any serialized form of them pays), with the ratio to it; for the node's form (key lists
 * numbered node-wide, values alone: AttrShapes) and for every key named (the form before).
 *
 *   node --import tsx bench/device-pack.bench.ts [--hubs 10000] [--devices 8] [--rounds 5] [--json]
 */
import { parseArgs } from 'node:util';
import type { Attrs } from '../proto/frames.js';
import { AttrShapes, cached, packDevices, tableSet, unpackDevices, type CachedAttrs, type DeviceTable } from '../src/internal.js';
import { deviceAt } from '../load/wire/devices.js';
import { printResult, runMain } from './lib/output.js';

const { values: args } = parseArgs({
  options: {
    hubs: { type: 'string', default: '10000' },
    devices: { type: 'string', default: '8' },
    rounds: { type: 'string', default: '5' },
    json: { type: 'boolean', default: false },
  },
});
const HUBS = Number(args.hubs);
const DEVICES = Number(args.devices);
const ROUNDS = Number(args.rounds);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** µs per hub of `fn` over every hub. */
function timed(fn: (h: number) => void): number {
  const t0 = process.hrtime.bigint();
  for (let h = 0; h < HUBS; h++) fn(h);
  return Number(process.hrtime.bigint() - t0) / 1000 / HUBS;
}

async function main(): Promise<void> {
  let seed = 1;
  const rnd = () => ((seed = (seed * 48271) % 2147483647) / 2147483647);
  const attrsOf: Attrs[][] = [];
  const tables: Array<DeviceTable<CachedAttrs>> = [];
  for (let h = 0; h < HUBS; h++) {
    const attrs: Attrs[] = [];
    let table: DeviceTable<CachedAttrs> = [];
    for (let j = 0; j < DEVICES; j++) {
      const a = deviceAt(j).spec.init(rnd) as Attrs;
      attrs.push(a);
      table = tableSet(table, `hub-${h}-${j}`, cached({ ...a }, 1 + Math.floor(rnd() * 1000)));
    }
    attrsOf.push(attrs);
    tables.push(table);
  }
  const packed: string[] = new Array<string>(HUBS);
  const named: string[] = new Array<string>(HUBS);
  const texts: string[] = new Array<string>(HUBS);
  const shapes = new AttrShapes();
  const rounds: Array<{ pack: number; unpack: number; packNamed: number; unpackNamed: number; floorMake: number; floorParse: number }> = [];
  for (let r = 0; r < ROUNDS; r++) {
    const pack = timed((h) => (packed[h] = packDevices(tables[h]!, shapes)!));
    const unpack = timed((h) => (tables[h] = unpackDevices(packed[h]!, shapes)));
    const packNamed = timed((h) => (named[h] = packDevices(tables[h]!)!));
    const unpackNamed = timed((h) => (tables[h] = unpackDevices(named[h]!)));
    const floorMake = timed((h) => (texts[h] = attrsOf[h]!.map((a) => JSON.stringify(a)).join('\n')));
    const floorParse = timed((h) => {
      for (const line of texts[h]!.split('\n')) JSON.parse(line);
    });
    rounds.push({ pack, unpack, packNamed, unpackNamed, floorMake, floorParse });
  }
  const m = (k: keyof (typeof rounds)[number]) => Math.round(median(rounds.map((x) => x[k])) * 100) / 100;
  const chars = (xs: string[]) => Math.round(xs.reduce((n, s) => n + s.length, 0) / HUBS);
  const out = {
    hubs: HUBS,
    devices: DEVICES,
    rounds: ROUNDS,
    packUs: m('pack'),
    unpackUs: m('unpack'),
    charsPerHub: chars(packed),
    keyLists: shapes.size,
    packNamedUs: m('packNamed'),
    unpackNamedUs: m('unpackNamed'),
    charsPerHubNamed: chars(named),
    floorStringifyUs: m('floorMake'),
    floorParseUs: m('floorParse'),
  };
  const ratio = (x: number, floor: number) => `${(x / floor).toFixed(2)}x`;
  const text = [
    `${HUBS} hubs of ${DEVICES} devices, medians of ${ROUNDS} rounds, µs per hub`,
    `pack (idle form, ${out.charsPerHub} characters a hub, ${out.keyLists} key lists numbered): ${out.packUs}; floor, the attributes' JSON made: ${out.floorStringifyUs} (${ratio(out.packUs, out.floorStringifyUs)})`,
    `unpack: ${out.unpackUs}; floor, that JSON parsed: ${out.floorParseUs} (${ratio(out.unpackUs, out.floorParseUs)})`,
    `every key named (${out.charsPerHubNamed} characters a hub): pack ${out.packNamedUs} (${ratio(out.packNamedUs, out.floorStringifyUs)}), unpack ${out.unpackNamedUs} (${ratio(out.unpackNamedUs, out.floorParseUs)})`,
  ].join('\n');
  printResult(args.json, text, out);
}

runMain('bench:device-pack', main);
