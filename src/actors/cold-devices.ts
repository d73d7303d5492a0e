import type { Attrs } from '../../proto/frames.js';
import type { AttrShapes } from './attr-shapes.js';
import { tableForEach, tableSet, type DeviceTable, type ReadonlyDeviceTable } from './device-table.js';

/**
 * The devices a session caches, in the two forms a session keeps them (see ShadowPacker): in use,
 * a DeviceTable of attribute objects carrying their versions (CachedAttrs); idle, one string with
 * a line per device (`<id>\t<version>\t<desired version>\t<attributes>\n`, after a leading
 * `\n`), the attributes as `<key list's number>:<values as JSON, without brackets>` where the node
 * numbers their key list (AttrShapes), else as a JSON object. For 8 devices the string is about 250
 * bytes of heap (410 with every key named) where the table and its objects are about 980; making
 * it or reading it back costs a few µs a hub (BENCHMARKS.md).
 */

/** Keys of a cached device's versions: symbols, which no serializer or `for…in` sees. */
const REPORTED_VERSION = Symbol('reportedVersion');
const DESIRED_VERSION = Symbol('desiredVersion');

/**
 * A device's reported attributes as the session caches them, with their versions on the same
 * object: with a device id of its own in every hub, a second map keyed by device id would cost
 * each session hidden classes of its own (about 370 bytes for 8 devices), a symbol on an object
 * shaped like its kind's costs nothing.
 */
export type CachedAttrs = Attrs & { [REPORTED_VERSION]: number; [DESIRED_VERSION]?: number };

/** `attrs` as cached, at `version`; non-enumerable, so even a spread copy does not take it along. */
export function cached(attrs: Attrs, version: number): CachedAttrs {
  return Object.defineProperty(attrs, REPORTED_VERSION, { value: version, writable: true, enumerable: false, configurable: false }) as CachedAttrs;
}

export function reportedVersion(attrs: CachedAttrs): number {
  return attrs[REPORTED_VERSION];
}

/** Counts a new reported version; returns it. */
export function nextReportedVersion(attrs: CachedAttrs): number {
  return ++attrs[REPORTED_VERSION];
}

export function desiredVersion(attrs: CachedAttrs): number {
  return attrs[DESIRED_VERSION] ?? 0;
}

export function setDesiredVersion(attrs: CachedAttrs, version: number): void {
  if (attrs[DESIRED_VERSION] === undefined) Object.defineProperty(attrs, DESIRED_VERSION, { value: version, writable: true, enumerable: false, configurable: false });
  else attrs[DESIRED_VERSION] = version;
}

/** The idle form of a hub without devices. */
export const NO_COLD_DEVICES = '\n';

const NL = 10;
const TAB = 9;

/** Whether `id` can be a line's key: not empty, no tab or newline. */
function packable(id: string): boolean {
  if (id.length === 0) return false;
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    if (c === NL || c === TAB) return false;
  }
  return true;
}

/**
 * The idle form of `table`, one flat string; null when a device id has a tab or newline in it or
 * is empty (the protocol refuses such ids; a table holding one stays as it is). With `shapes`,
 * attributes whose key list it numbers keep only their values.
 */
export function packDevices(table: ReadonlyDeviceTable<CachedAttrs>, shapes?: AttrShapes): string | null {
  let lines = '\n';
  let ok = true;
  tableForEach(table, (attrs, id) => {
    if (!packable(id)) ok = false;
    // JSON escapes control characters, so the attributes hold no tab or newline of their own
    else lines += `${id}\t${attrs[REPORTED_VERSION]}\t${attrs[DESIRED_VERSION] ?? 0}\t${packAttrs(attrs, shapes)}\n`;
  });
  if (!ok) return null;
  // made flat: a string of concatenations would keep every piece of it
  lines.charCodeAt(0);
  return lines;
}

/** A device's attributes in its line: `<n>:<values>` with a numbered key list, else a JSON object. */
function packAttrs(attrs: CachedAttrs, shapes: AttrShapes | undefined): string {
  const n = shapes ? shapes.numberOf(attrs, values) : -1;
  // an object would drop a key whose value is undefined; an array would keep it as null
  if (n < 0 || values.includes(undefined)) return JSON.stringify(attrs);
  const json = JSON.stringify(values);
  return `${n}:${json.slice(1, json.length - 1)}`;
}

/** One device's values at a time (packing runs on the main thread alone). */
const values: unknown[] = [];

/**
 * `cold` in use again: a DeviceTable as `packDevices` was given (attribute objects are new ones).
 * `shapes` must be the table it was packed with.
 */
export function unpackDevices(cold: string, shapes?: AttrShapes): DeviceTable<CachedAttrs> {
  let table: DeviceTable<CachedAttrs> = [];
  for (let start = 1; start < cold.length; ) {
    const t1 = cold.indexOf('\t', start);
    const t2 = cold.indexOf('\t', t1 + 1);
    const t3 = cold.indexOf('\t', t2 + 1);
    const end = cold.indexOf('\n', t3 + 1);
    const attrs = cached(unpackAttrs(cold, t3 + 1, end, shapes), Number(cold.slice(t1 + 1, t2)));
    const desired = Number(cold.slice(t2 + 1, t3));
    if (desired > 0) setDesiredVersion(attrs, desired);
    table = tableSet(table, cold.slice(start, t1), attrs);
    start = end + 1;
  }
  return table;
}

const OPEN_BRACE = 123;

function unpackAttrs(cold: string, from: number, end: number, shapes: AttrShapes | undefined): Attrs {
  if (cold.charCodeAt(from) === OPEN_BRACE) return JSON.parse(cold.slice(from, end)) as Attrs;
  const colon = cold.indexOf(':', from);
  const keys = shapes?.keys(Number(cold.slice(from, colon)));
  if (keys === undefined) throw new Error(`packed device cache names key list ${cold.slice(from, colon)}, which this node's table does not hold`);
  const row = JSON.parse(`[${cold.slice(colon + 1, end)}]`) as Attrs[string][];
  const attrs: Attrs = {};
  // the same keys in the same order as JSON.parse would add them (no `__proto__`: AttrShapes refuses it)
  for (let i = 0; i < keys.length; i++) attrs[keys[i]!] = row[i]!;
  return attrs;
}

/** Whether the idle form holds device `id`, without making it a table. */
export function coldHas(cold: string, id: string): boolean {
  return packable(id) && cold.includes(`\n${id}\t`);
}
