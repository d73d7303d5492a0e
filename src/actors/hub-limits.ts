import type { Attrs, ReportFrame } from '../../proto/frames.js';
import { TierError } from '../errors.js';
import { tableForEach, tableGet, type ReadonlyDeviceTable } from './device-table.js';
import { valueBytes } from '../ports/shadow-store/shadow-store.js';

/** What one hub may make a node hold; beyond, frames and desired writes are refused with `limit_exceeded`. */
export interface HubLimits {
  /** @default 512: devices in the hub's shadow */
  devices: number;
  /** @default 64: reported attributes per device */
  attrsPerDevice: number;
  /** @default 1_024 (characters): a string attribute value (the protocol's own ceiling is 1,024) */
  valueBytes: number;
  /** @default 131_072 (bytes): the reported shadow, keys and values counted (numbers as 8 bytes) */
  shadowBytes: number;
  /** @default 131_072 (bytes): the desired shadow, device ids, keys and values counted (numbers as 8) */
  desiredBytes: number;
  /** @default 32: commands sent to the hub and not yet answered; more are answered `busy` */
  commandsInFlight: number;
}

export const DEFAULT_HUB_LIMITS: HubLimits = { devices: 512, attrsPerDevice: 64, valueBytes: 1024, shadowBytes: 128 * 1024, desiredBytes: 128 * 1024, commandsInFlight: 32 };

/** A shadow's reported side: every device of the hub by id, with the attributes it reported. */
export type ReportedShadow = ReadonlyDeviceTable<Attrs>;

/** Bytes of a shadow's reported side, as the limits count them (its devices: the table's size). */
export function shadowBytes(shadow: ReportedShadow): number {
  let bytes = 0;
  tableForEach(shadow, (attrs, id) => {
    bytes += deviceBytes(id, attrs);
  });
  return bytes;
}

/** Bytes one device adds to its shadow's, as the limits count them. */
export function deviceBytes(id: string, attrs: Attrs): number {
  return id.length + attrsBytes(attrs);
}

/** A patch without a value to set (empty, or only removals): of a device not known, nothing to store. */
export function setsNothing(patch: Attrs): boolean {
  for (const key in patch) if (patch[key] !== null) return false;
  return true;
}

/**
 * Checks a report against the hub's limits before anything of it is applied: new devices,
 * attributes per device, bytes of the shadow. Returns the refusal, or the shadow's bytes after it.
 */
export function checkReport(frame: ReportFrame, shadow: ReportedShadow, deviceCount: number, shadowBytes: number, limits: HubLimits): TierError | number {
  let devices = deviceCount;
  let bytes = shadowBytes;
  for (const deviceId in frame.r) {
    const reported = tableGet(shadow, deviceId);
    const patch = frame.r[deviceId]!;
    if (reported === undefined) {
      if (setsNothing(patch)) continue; // not stored, not cached: no device yet
      if (++devices > limits.devices) return limitError(`r.${deviceId}`, `more than ${limits.devices} devices on this hub`);
      bytes += deviceId.length;
    }
    // counted on the first new attribute only; the patch's removals count first, wherever they stand
    let attrs = reported === undefined ? 0 : -1;
    for (const key in patch) {
      const v = patch[key]!;
      if (typeof v === 'string' && v.length > limits.valueBytes) return limitError(`r.${deviceId}.${key}`, `string values are limited to ${limits.valueBytes} characters`);
      const had = reported !== undefined && Object.hasOwn(reported, key);
      if (v === null) {
        if (had) bytes -= key.length + valueBytes(reported[key]!);
        continue;
      }
      if (had) {
        bytes += valueBytes(v) - valueBytes(reported[key]!);
        continue;
      }
      if (attrs < 0) attrs = Object.keys(reported!).length - removals(patch, reported!);
      if (++attrs > limits.attrsPerDevice) return limitError(`r.${deviceId}.${key}`, `more than ${limits.attrsPerDevice} attributes on device ${deviceId}`);
      bytes += key.length + valueBytes(v);
    }
  }
  if (bytes > limits.shadowBytes) return limitError('r', `the hub's shadow would exceed ${limits.shadowBytes} (keys and strings counted in UTF-16 code units, other values as 8)`);
  return bytes;
}

/** Keys of `reported` that `patch` removes (sets to nil). */
function removals(patch: Attrs, reported: Attrs): number {
  let n = 0;
  for (const key in patch) if (patch[key] === null && Object.hasOwn(reported, key)) n++;
  return n;
}

function limitError(field: string, what: string): TierError {
  return new TierError('limit_exceeded', `${field}: ${what}`, { field });
}


function attrsBytes(a: Attrs): number {
  let n = 0;
  for (const key in a) n += key.length + valueBytes(a[key]!);
  return n;
}
