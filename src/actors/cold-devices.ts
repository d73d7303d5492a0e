import type { Attrs } from '../../proto/frames.js';
import { tableForEach, tableSet, type DeviceTable, type ReadonlyDeviceTable } from './device-table.js';

/**
 * The devices a session caches, in the two forms a session keeps them (see ShadowPacker): in use,
 * a DeviceTable of attribute objects carrying their versions (CachedAttrs); idle, one string with
 * a line per device (`<id>\t<version>\t<desired version>\t<attributes as JSON>\n`, after a
 * leading `\n`). For 8 devices the string is about 450 bytes of heap where the table and its
 * objects are about 980; making it or reading it back costs a few µs a hub (BENCHMARKS.md).
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
 * is empty (the protocol refuses such ids; a table holding one stays as it is).
 */
export function packDevices(table: ReadonlyDeviceTable<CachedAttrs>): string | null {
  let lines = '\n';
  let ok = true;
  tableForEach(table, (attrs, id) => {
    if (!packable(id)) ok = false;
    // JSON escapes control characters, so the attributes hold no tab or newline of their own
    else lines += `${id}\t${attrs[REPORTED_VERSION]}\t${attrs[DESIRED_VERSION] ?? 0}\t${JSON.stringify(attrs)}\n`;
  });
  if (!ok) return null;
  // made flat: a string of concatenations would keep every piece of it
  lines.charCodeAt(0);
  return lines;
}

/** `cold` in use again: a DeviceTable as `packDevices` was given (attribute objects are new ones). */
export function unpackDevices(cold: string): DeviceTable<CachedAttrs> {
  let table: DeviceTable<CachedAttrs> = [];
  for (let start = 1; start < cold.length; ) {
    const t1 = cold.indexOf('\t', start);
    const t2 = cold.indexOf('\t', t1 + 1);
    const t3 = cold.indexOf('\t', t2 + 1);
    const end = cold.indexOf('\n', t3 + 1);
    const attrs = cached(JSON.parse(cold.slice(t3 + 1, end)) as Attrs, Number(cold.slice(t1 + 1, t2)));
    const desired = Number(cold.slice(t2 + 1, t3));
    if (desired > 0) setDesiredVersion(attrs, desired);
    table = tableSet(table, cold.slice(start, t1), attrs);
    start = end + 1;
  }
  return table;
}

/** Whether the idle form holds device `id`, without making it a table. */
export function coldHas(cold: string, id: string): boolean {
  return packable(id) && cold.includes(`\n${id}\t`);
}
