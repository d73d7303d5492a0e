/**
 * How the embedded shadow store lays out its records in sub-database `shadows` (see
 * LmdbShadowStore): their types and keys, the conversions to and from a DeviceShadow, and the
 * decoding of a backup's records (any layout), and whether a device list is what the records hold.
 */
import type { Attrs, AttrValue } from '../../../proto/frames.js';
import { emptyDevice, NO_DESIRED, valueBytes, type DeviceShadow, type HubShadow, type SeqCursor } from './shadow-store.js';
import type { StoredNames } from './shadow-store-lmdb-names.js';

/**
 * An attribute map as stored: [key, value, key, value, ...]. Not a msgpack map: msgpackr decodes
 * a `__proto__` key as `__proto_`, and every new set of keys would become a shared structure.
 */
export type FlatAttrs = Array<string | AttrValue>;
/** A device's reported side: [reported, reportedVersion, reportedAt], under `[hub number, deviceId]` (before numbered hubs `[hubId, deviceId]`). */
export type StoredDevice = [FlatAttrs, number, number];
/** The same with its key list numbered (StoredNames): [key list's number, values in its order, reportedVersion, reportedAt]. */
export type NumberedDevice = [number, AttrValue[], number, number];
/**
 * The rest of a device: [kind, model, desired, desiredVersion]. As read and written here; stored
 * so (or as NumberedExtra) under `[hubId, deviceId, EXTRA]` in the layout before HubKinds.
 */
export type StoredExtra = [string | null, string | null, FlatAttrs, number];
/** The same with [kind] or [kind, model] numbered: [its number, desired, desiredVersion] (the layout before HubKinds). */
export type NumberedExtra = [number, FlatAttrs, number];
/** A device's desired side: [desired, desiredVersion], under `[hub number, deviceId, EXTRA]`; absent while unset. */
export type StoredDesired = [FlatAttrs, number];
/** A device's kind and model as held in memory. */
export type KindModel = readonly [string | null, string | null];
/** A device in the layout before the split (both sides in one record): [kind, model, reported, reportedVersion, reportedAt, desired, desiredVersion]. */
export type LegacyDevice = [string | null, string | null, FlatAttrs, number, number, FlatAttrs, number];
/**
 * A hub's entry, under `[HUB, hubId]`: [the largest session epoch written, cursor boot, cursor seq,
 * the hub's number (the first element of its device records' keys; -1 until its first one), the
 * cursor's tag when it has one (since 2026-12-07)]; before numbered hubs the first three under `hubId`.
 */
export type StoredHub = [number, string | null, number, number] | [number, string | null, number, number, string];

/** A hub's entry as written: the tag only when there is one (an entry without stays as before). */
export function hubEntry(epoch: number, boot: string | null, seq: number, n: number, tag: string | undefined): StoredHub {
  return tag === undefined ? [epoch, boot, seq, n] : [epoch, boot, seq, n, tag];
}

/** The cursor a hub's entry holds (null: none). */
export function cursorOfEntry(h: StoredHub | LegacyHub | undefined): SeqCursor | null {
  if (h === undefined || h[1] === null) return null;
  const tag = h[4 as 3];
  return typeof tag === 'string' ? { boot: h[1], seq: h[2], tag } : { boot: h[1], seq: h[2] };
}
/** A hub's entry before numbered hubs. */
export type LegacyHub = [number, string | null, number];
/**
 * Every device's kind and model of one hub, under `[HUB, hubId, KINDS]` (before numbered hubs
 * `[hubId, KINDS]`), two elements a device:
 * [deviceId, their number (StoredNames) or [kind, model], ...]. Absent while no device has either.
 * Bounded by the hub's device limit; desired sides stay in records of their own (StoredDesired), so
 * a desired change writes its device's alone.
 */
export type HubKinds = Array<string | number | KindModel>;
export type Stored = StoredDevice | NumberedDevice | StoredExtra | NumberedExtra | StoredDesired | LegacyDevice | StoredHub | LegacyHub | HubKinds | number;
/** A key as written: a hub's entry or kinds record, the next hub number (NEXT_HUB), or a device record of a numbered hub. */
export type Key = [typeof HUB, string] | [typeof HUB, string, typeof KINDS] | [number, string] | [number, string, typeof EXTRA];
/** A key of the layouts before numbered hubs: the hub's entry, or one of its records. */
export type LegacyKey = string | [string, string] | [string, string, typeof EXTRA];

/**
 * First key element of a hub's entry and kinds record: sorts before every number, so these
 * (inserted in the order of their random ids, in pages about half full) come first, and the device
 * records of hubs numbered at their first one after them: a hub's first report batch appends them
 * at the end of the file, in pages left full (BENCHMARKS, 2026-12-03 ninth).
 */
export const HUB = false;
/** Second key element of the record holding the next hub number: no hub id is empty. */
export const NEXT_HUB = '';
/** Where keys of the layouts before numbered hubs begin: every string sorts after every number and `[HUB, ...]`. */
export const LEGACY_START = '';

export function hubKey(hubId: string): [typeof HUB, string] {
  return [HUB, hubId];
}

export function kindsKey(hubId: string): [typeof HUB, string, typeof KINDS] {
  return [HUB, hubId, KINDS];
}

/** Third key element of a device's desired record (before HubKinds, its extra record): sorts right after the device's own record. */
export const EXTRA = 'x';
/** Second key element of a hub's kinds record: sorts after the hub's entry and before its devices, whose ids are 1-64 characters. */
export const KINDS = '';

export function flatten(a: Attrs): FlatAttrs {
  const out: FlatAttrs = [];
  for (const k in a) out.push(k, a[k]!);
  return out;
}

function unflatten(flat: FlatAttrs): Attrs {
  const out: Attrs = {};
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const k = flat[i] as string;
    // data, never the prototype: as mergeAttrs does
    if (k === '__proto__') Object.defineProperty(out, k, { value: flat[i + 1], writable: true, enumerable: true, configurable: true });
    else out[k] = flat[i + 1] as AttrValue;
  }
  return out;
}

/** A device from its own record (either layout) and its extra record, if any. */
export function toDevice(s: StoredDevice | LegacyDevice, extra: StoredExtra | undefined): DeviceShadow {
  const device: DeviceShadow =
    s.length === 7
      ? { kind: s[0] ?? undefined, model: s[1] ?? undefined, reported: unflatten(s[2]), reportedVersion: s[3], reportedAt: s[4], desired: s[5].length === 0 ? NO_DESIRED : unflatten(s[5]), desiredVersion: s[6] }
      : { kind: undefined, model: undefined, reported: unflatten(s[0]), reportedVersion: s[1], reportedAt: s[2], desired: NO_DESIRED, desiredVersion: 0 };
  return extra ? withExtra(device, extra) : device;
}

export function withExtra(device: DeviceShadow, extra: StoredExtra): DeviceShadow {
  device.kind = extra[0] ?? undefined;
  device.model = extra[1] ?? undefined;
  device.desired = extra[2].length === 0 ? NO_DESIRED : unflatten(extra[2]);
  device.desiredVersion = extra[3];
  return device;
}

/** Names looked up by number: StoredNames, or a backup's lists (`namesOf`). */
export interface NameLists {
  list(n: number): readonly string[] | undefined;
}

/**
 * A device's own record in the form before numbering (either layout), whichever form it is in. A
 * number the store does not hold (its list's put failed and the node stopped before it was put
 * again) reads as no attributes: the device's next report writes them whole.
 */
export function ownOf(s: StoredDevice | NumberedDevice | LegacyDevice, names: NameLists): StoredDevice | LegacyDevice {
  if (s.length !== 4) return s;
  const keys = names.list(s[0]);
  const flat: FlatAttrs = [];
  if (keys) for (let i = 0; i < keys.length && i < s[1].length; i++) flat.push(keys[i]!, s[1][i]!);
  return [flat, s[2], s[3]];
}

/** A device's extra record in the form before numbering; a number the store does not hold reads as no kind and model. */
export function extraOfStored(s: StoredExtra | NumberedExtra, names: NameLists): StoredExtra {
  if (s.length === 4) return s;
  const list = names.list(s[0]);
  return [list?.[0] ?? null, list?.[1] ?? null, s[1], s[2]];
}

/** A hub's kinds record, read: each device's kind and model. */
export function readHubKinds(v: HubKinds, names: NameLists): Map<string, KindModel> {
  const out = new Map<string, KindModel>();
  for (let i = 0; i + 1 < v.length; i += 2) {
    const km = v[i + 1]!;
    const list = typeof km === 'number' ? names.list(km) : (km as KindModel);
    out.set(v[i] as string, [list?.[0] ?? null, list?.[1] ?? null]);
  }
  return out;
}

/** A hub's kinds record as written (undefined: none to keep), numbered where `names` numbers them. */
export function hubKindsRecord(kinds: Map<string, KindModel>, names: StoredNames): HubKinds | undefined {
  const out: HubKinds = [];
  for (const [deviceId, [kind, model]] of kinds) {
    if (kind === null && model === null) continue;
    const n = kind === null ? -1 : names.numberList(model === null ? [kind] : [kind, model]);
    out.push(deviceId, n < 0 ? [kind, model] : n);
  }
  return out.length === 0 ? undefined : out;
}

export function isHubKinds(v: unknown): v is HubKinds {
  if (!Array.isArray(v) || v.length % 2 !== 0) return false;
  for (let i = 0; i < v.length; i += 2) {
    const km = v[i + 1];
    if (typeof v[i] !== 'string' || !(typeof km === 'number' || (Array.isArray(km) && km.length === 2))) return false;
  }
  return true;
}

export function isDesired(v: unknown): v is StoredDesired {
  return Array.isArray(v) && v.length === 2 && isFlat(v[0]) && typeof v[1] === 'number';
}

/** A device's desired record as written (undefined: none to keep). */
export function desiredRecord(d: DeviceShadow): StoredDesired | undefined {
  const desired = flatten(d.desired);
  return desired.length === 0 && d.desiredVersion === 0 ? undefined : [desired, d.desiredVersion];
}

/** `device` with its stored kind and model. */
export function withKind(device: DeviceShadow, km: KindModel): DeviceShadow {
  device.kind = km[0] ?? undefined;
  device.model = km[1] ?? undefined;
  return device;
}

/**
 * The bytes a stored desired side counts for `DesiredLimits.desiredBytes` (as `desiredBytes` of
 * its attributes), read from the record as stored, without making its object.
 */
export function storedDesiredBytes(deviceId: string, d: StoredDesired): number {
  const flat = d[0];
  let n = 0;
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const v = flat[i + 1];
    n += (flat[i] as string).length + valueBytes(v as AttrValue);
  }
  return n === 0 ? 0 : n + deviceId.length;
}

/** `device` with its stored desired side. */
export function withDesired(device: DeviceShadow, d: StoredDesired): DeviceShadow {
  device.desired = d[0].length === 0 ? NO_DESIRED : unflatten(d[0]);
  device.desiredVersion = d[1];
  return device;
}

export function fromDevice(d: DeviceShadow): StoredDevice {
  return [flatten(d.reported), d.reportedVersion, d.reportedAt];
}

export function extraOf(d: DeviceShadow): StoredExtra {
  return [d.kind ?? null, d.model ?? null, flatten(d.desired), d.desiredVersion];
}

/** One record of sub-database `shadows` as a backup holds it, decoded (see `decodeShadowRecord`). */
export type ShadowRecord =
  | { type: 'hub'; hubId: string; epoch: number; cursor: SeqCursor | null }
  | { type: 'device'; hubId: string; deviceId: string; device: DeviceShadow };

/**
 * Decodes the records of sub-database `shadows` in key order (as a backup holds them): each hub's
 * own entry, then each device, its kind and model (the hub's kinds record) and desired record
 * joined to it, a device listed and never reported (a kinds entry alone) after the records; any
 * layout, numbered names looked up in `names` (the backup's `shadow-names`, see `namesOf`). Hub
 * entries and kinds records sort before the numbered hubs' records: what they hold is kept (a map
 * of every hub) to join the records to. Throws a TypeError on anything else.
 */
export function* decodeShadowRecords(records: Iterable<{ key: unknown; value: unknown }>, names: NameLists = NO_NAMES): Generator<ShadowRecord> {
  const numbered = new Map<number, string>();
  // each hub's kinds, by device: deleted as the device is yielded, the rest yielded at the end
  const kindsOf = new Map<string, Map<string, KindModel>>();
  let held: Extract<ShadowRecord, { type: 'device' }> | null = null;
  const hub = (hubId: string, h: LegacyHub | StoredHub): ShadowRecord => ({ type: 'hub', hubId, epoch: h[0], cursor: cursorOfEntry(h) });
  const release = (): Extract<ShadowRecord, { type: 'device' }> | null => {
    const device = held;
    held = null;
    return device;
  };
  for (const { key, value } of records) {
    if (Array.isArray(key) && key[0] === HUB) {
      if (key.length === 2 && key[1] === NEXT_HUB && typeof value === 'number') continue;
      if (key.length === 2 && typeof key[1] === 'string' && isHubEntry(value, 4)) {
        if (value[3] >= 0) {
          // one number, two hubs: two processes wrote the store at once (before the flock of 2026-12-06), mixing their devices
          const other = numbered.get(value[3]);
          if (other !== undefined) throw new TypeError(`hubs ${JSON.stringify(other)} and ${JSON.stringify(key[1])} share the number ${value[3]}: two processes wrote this store at once, and their devices cannot be told apart`);
          numbered.set(value[3], key[1]);
        }
        yield hub(key[1], value);
        continue;
      }
      if (key.length === 3 && typeof key[1] === 'string' && key[2] === KINDS && isHubKinds(value)) {
        kindsOf.set(key[1], readHubKinds(value, names));
        continue;
      }
      throw new TypeError(`not a shadow record: ${JSON.stringify(key)}`);
    }
    if (typeof key === 'string' && isHubEntry(value, 3)) {
      const device = release();
      if (device) yield device;
      yield hub(key, value);
      continue;
    }
    // one of a hub's records: the hub by its number (its entry came first) or, before numbered hubs, by its id
    const first: unknown = Array.isArray(key) ? key[0] : undefined;
    const hubId = typeof first === 'number' ? numbered.get(first) : typeof first === 'string' ? first : undefined;
    if (hubId === undefined || !Array.isArray(key)) throw new TypeError(`not a shadow record: ${JSON.stringify(key)}`);
    if (key.length === 2 && key[1] === KINDS && isHubKinds(value)) {
      kindsOf.set(hubId, readHubKinds(value, names));
      continue;
    }
    if (key.length === 3 && key[2] === EXTRA && (isDesired(value) || isExtra(value))) {
      // a desired (or, before HubKinds, extra) record follows its device's own record
      if (!held || held.hubId !== hubId || held.deviceId !== key[1]) throw new TypeError(`shadow record without its device: ${JSON.stringify(key)}`);
      if (isDesired(value)) withDesired(held.device, value);
      else withExtra(held.device, extraOfStored(value, names));
      continue;
    }
    const device = release();
    if (device) yield device;
    if (key.length === 2 && typeof key[1] === 'string' && isOwn(value)) {
      const device = toDevice(ownOf(value, names), undefined);
      const kinds = kindsOf.get(hubId);
      const km = kinds?.get(key[1]);
      if (km) {
        withKind(device, km);
        kinds!.delete(key[1]);
      }
      held = { type: 'device', hubId, deviceId: key[1], device };
    } else throw new TypeError(`not a shadow record: ${JSON.stringify(key)}`);
  }
  const device = release();
  if (device) yield device;
  for (const [hubId, kinds] of kindsOf) for (const [deviceId, km] of kinds) yield { type: 'device', hubId, deviceId, device: withKind(emptyDevice(), km) };
}

function isHubEntry(v: unknown, length: 3): v is LegacyHub;
function isHubEntry(v: unknown, length: 4): v is StoredHub;
function isHubEntry(v: unknown, length: number): boolean {
  // a numbered entry may carry its cursor's tag as a fifth
  const tagged = length === 4 && Array.isArray(v) && v.length === 5 && typeof v[4] === 'string';
  return Array.isArray(v) && (v.length === length || tagged) && typeof v[0] === 'number' && (v[1] === null || typeof v[1] === 'string') && typeof v[2] === 'number' && (length === 3 || Number.isInteger(v[3]));
}

/** The name lists of a backup's sub-database `shadow-names`. */
export function namesOf(records: Iterable<{ key: unknown; value: unknown }>): NameLists {
  const lists: string[][] = [];
  for (const { key, value } of records) {
    if (typeof key !== 'number' || !Number.isInteger(key) || key < 0 || !Array.isArray(value) || !value.every((n) => typeof n === 'string')) throw new TypeError(`not a shadow name list: ${JSON.stringify(key)}`);
    lists[key] = value as string[];
  }
  return { list: (n) => lists[n] };
}

const NO_NAMES: NameLists = { list: () => undefined };

/** Field types checked too: a backup's record of the right length and wrong types would serve them (a version "b"). */
function isOwn(v: unknown): v is StoredDevice | NumberedDevice | LegacyDevice {
  if (!Array.isArray(v)) return false;
  if (v.length === 3) return isFlat(v[0]) && isNum(v[1]) && isNum(v[2]);
  if (v.length === 4) return Number.isInteger(v[0]) && Array.isArray(v[1]) && isNum(v[2]) && isNum(v[3]);
  return v.length === 7 && isName(v[0]) && isName(v[1]) && isFlat(v[2]) && isNum(v[3]) && isNum(v[4]) && isFlat(v[5]) && isNum(v[6]);
}

function isExtra(v: unknown): v is StoredExtra | NumberedExtra {
  if (!Array.isArray(v)) return false;
  if (v.length === 4) return isName(v[0]) && isName(v[1]) && isFlat(v[2]) && isNum(v[3]);
  return v.length === 3 && Number.isInteger(v[0]) && isFlat(v[1]) && isNum(v[2]);
}

function isNum(v: unknown): v is number {
  return typeof v === 'number';
}

function isName(v: unknown): v is string | null {
  return v === null || typeof v === 'string';
}

/** [key, value, ...]: an even length, every key a string. */
function isFlat(v: unknown): v is FlatAttrs {
  if (!Array.isArray(v) || v.length % 2 !== 0) return false;
  for (let i = 0; i < v.length; i += 2) if (typeof v[i] !== 'string') return false;
  return true;
}

/** What the store holds of one device: its own record (reported side) and its kind and model. */
export interface DeviceRecords {
  own: boolean;
  /** its entry in the hub's kinds record */
  kind: KindModel | undefined;
}

/** True when `stored` is `devices`, none more, each with its kind and (if given) model. */
export function storesExactly(stored: Map<string, DeviceRecords>, devices: Array<{ d: string; k: string; m?: string }>): boolean {
  let listed = 0;
  for (const d of devices) {
    const records = stored.get(d.d);
    const kind = records?.kind;
    // a device listed and never reported has its kinds entry alone
    if (kind === undefined || kind[0] !== d.k || (d.m !== undefined && kind[1] !== d.m)) return false;
    listed++;
  }
  // a device listed twice counts twice: the list is then not the stored set, and is written
  return listed === stored.size;
}

/** The same for a shadow read whole from the records (every extra record with its own one). */
export function listsExactly(shadow: HubShadow, devices: Array<{ d: string; k: string; m?: string }>): boolean {
  let listed = 0;
  for (const d of devices) {
    const device = shadow[d.d];
    if (device === undefined || device.kind !== d.k || (d.m !== undefined && device.model !== d.m)) return false;
    listed++;
  }
  let stored = 0;
  for (const _ in shadow) stored++;
  return listed === stored;
}
