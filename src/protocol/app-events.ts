import type { AppEventMessage, Position } from '../../proto/app.js';
import { ProtocolError } from '../errors.js';
import { decodeValue, encodeApp, isPlainObject } from './codec.js';
import { readUint, uintSize, writeUint } from './msgpack-uint.js';

/** What the node's encoder writes first for an AppEventMessage: after the map header, "op": "evt". */
export const EVENT_HEAD = [0xa2, 0x6f, 0x70, 0xa3, 0x65, 0x76, 0x74];

/**
 * A bus event payload as the msgpack app message: the bytes themselves when they are already in
 * the app shape (a map of at most 15 keys starting with `op: "evt"`, as this node encodes them),
 * otherwise decoded and encoded again (a bare HubEvent from a node of an older version or another
 * service).
 */
export function appEventBytes(data: Uint8Array): Uint8Array {
  if (data.length > EVENT_HEAD.length && (data[0]! & 0xf0) === 0x80 && startsWithHead(data)) return data;
  return encodeApp(appEventValue(data));
}

/** A bus event payload as the JSON app message. */
export function appEventJson(data: Uint8Array): string {
  return JSON.stringify(appEventValue(data));
}

function startsWithHead(data: Uint8Array): boolean {
  for (let i = 0; i < EVENT_HEAD.length; i++) if (data[i + 1] !== EVENT_HEAD[i]) return false;
  return true;
}

function appEventValue(data: Uint8Array): AppEventMessage {
  const v = decodeValue(data);
  if (!isPlainObject(v)) throw new ProtocolError('malformed_frame', 'an event must be a msgpack map');
  // trusted like every bus payload: only the `op` key is added when missing
  return (v.op === 'evt' ? v : { op: 'evt', ...v }) as AppEventMessage;
}

/** "pos" as a msgpack fixstr: the key this node writes second, after `op: "evt"`. */
const POS_KEY = [0xa3, 0x70, 0x6f, 0x73];
/** `{epoch:` and `, offset:` of the position map, as written by `withPosition`. */
const EPOCH_KEY = [0x82, 0xa5, 0x65, 0x70, 0x6f, 0x63, 0x68];
const OFFSET_KEY = [0xa6, 0x6f, 0x66, 0x66, 0x73, 0x65, 0x74];

/**
 * The event as this node encoded it (`op: "evt"` first, at most 14 keys) with `pos` inserted as its
 * second key: one copy, no decoding. Readers find the position at a fixed place (`positionOf`).
 * Bytes of another shape are decoded and encoded again.
 */
export function withPosition(bare: Uint8Array, pos: Position): Uint8Array {
  const head = 1 + EVENT_HEAD.length;
  if (!(bare.length > head && (bare[0]! & 0xf0) === 0x80 && (bare[0]! & 0x0f) < 15 && startsWithHead(bare))) {
    const { op: _op, ...rest } = appEventValue(bare);
    return encodeApp({ op: 'evt', pos, ...rest });
  }
  const prefix = positionPrefix(pos.epoch);
  const extra = prefix.length + uintSize(pos.offset);
  // from Node's pool of small buffers, every byte written below: a buffer of its own (`new
  // Uint8Array`) costs about ten times as much per event, and as much again in garbage collection
  const out = Buffer.allocUnsafe(bare.length + extra);
  // the whole event `extra` bytes on (its tail lands in place, no subarray made), then its head,
  // the position's prefix and offset over what that put before the tail (the prefix is longer than the head)
  out.set(bare, extra);
  out[0] = bare[0]! + 1;
  for (let i = 1; i < head; i++) out[i] = bare[i]!;
  out.set(prefix, head);
  writeUint(out, head + prefix.length, pos.offset);
  return out;
}

/** `pos: {epoch: <epoch>, offset:` as bytes, per epoch (one per node embedded, one per home in Redis). */
const prefixes = new Map<string, Uint8Array>();
/** prefixes kept at most: cleared whole beyond it, a bound and not a cache policy */
const MAX_PREFIXES = 4096;

function positionPrefix(epochText: string): Uint8Array {
  let bytes = prefixes.get(epochText);
  if (bytes) return bytes;
  const epoch = Buffer.from(epochText, 'utf8');
  if (epoch.length > 255) throw new RangeError('epoch too long');
  const epochHead = epoch.length < 32 ? [0xa0 | epoch.length] : [0xd9, epoch.length];
  bytes = Uint8Array.from([...POS_KEY, ...EPOCH_KEY, ...epochHead, ...epoch, ...OFFSET_KEY]);
  if (prefixes.size >= MAX_PREFIXES) prefixes.clear();
  prefixes.set(epochText, bytes);
  return bytes;
}

/** The position `withPosition` put in `data`, or null (an event without one, or of another shape). */
export function positionOf(data: Uint8Array): Position | null {
  let at = 1 + EVENT_HEAD.length;
  if (!(data.length > at && (data[0]! & 0xf0) === 0x80 && startsWithHead(data))) return null;
  if (!matches(data, at, POS_KEY) || !matches(data, at + POS_KEY.length, EPOCH_KEY)) return null;
  at += POS_KEY.length + EPOCH_KEY.length;
  let len: number;
  if ((data[at]! & 0xe0) === 0xa0) len = data[at++]! & 0x1f;
  else if (data[at] === 0xd9) {
    len = data[at + 1]!;
    at += 2;
  } else return null;
  const epoch = epochText(data, at, len);
  at += len;
  if (!matches(data, at, OFFSET_KEY)) return null;
  const offset = readUint(data, at + OFFSET_KEY.length);
  return offset === null ? null : { epoch, offset };
}

/** The epoch `positionOf` read last, as bytes and text: a node's events share one (one per home in Redis). */
let lastEpoch: { bytes: Uint8Array; text: string } = { bytes: new Uint8Array(0), text: '' };

/** The epoch's `len` bytes at `at` as text, decoded only when they differ from the last one read. */
function epochText(data: Uint8Array, at: number, len: number): string {
  const last = lastEpoch.bytes;
  if (last.length === len && len > 0) {
    let same = true;
    for (let i = 0; i < len && same; i++) same = data[at + i] === last[i];
    if (same) return lastEpoch.text;
  }
  // a copy: the bytes read may be a view of a buffer the caller reuses (Buffer's `slice` is a view too)
  const bytes = Uint8Array.from(data.subarray(at, at + len));
  lastEpoch = { bytes, text: Buffer.from(bytes.buffer, bytes.byteOffset, len).toString('utf8') };
  return lastEpoch.text;
}

function matches(data: Uint8Array, at: number, bytes: readonly number[]): boolean {
  if (at + bytes.length > data.length) return false;
  for (let i = 0; i < bytes.length; i++) if (data[at + i] !== bytes[i]) return false;
  return true;
}
