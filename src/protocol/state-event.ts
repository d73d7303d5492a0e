/**
 * The state event, the one event every report makes, in msgpack written by hand: byte for byte what
 * `encodeBus` writes for it (a test compares them), without msgpackr's general object walk. In the
 * node that walk sees frames, events and bus payloads of many shapes, so its property reads take
 * V8's megamorphic path. The report path's instructions per report fell by a tenth or more with it
 * (`bench/report-path.bench.ts --instructions`, BENCHMARKS.md 2026-12-01 seventh).
 */
import type { AppEventMessage } from '../../proto/app.js';
import type { AttrValue } from '../../proto/frames.js';
import { EVENT_HEAD } from './app-events.js';
import { encodeBus } from './codec.js';
import { uintSize, writeUint } from './msgpack-uint.js';

export type StateEvent = Extract<AppEventMessage, { kind: 'state' }>;

/** A fixstr's bytes (ASCII names shorter than 32). */
function fixstr(s: string): number[] {
  return [0xa0 | s.length, ...Array.from(s, (c) => c.charCodeAt(0))];
}

/**
 * The map of 8 fields (one more each with `src`, `prev`) in the order hub-reports builds them; each
 * part ends with the next field's name. It starts as every event of this node does (`op: "evt"`),
 * where `withPosition` looks.
 */
const HEAD = Uint8Array.from([0x88, ...EVENT_HEAD, ...fixstr('kind'), ...fixstr('state'), ...fixstr('home')]);
const HUB = Uint8Array.from(fixstr('hub'));
const DEVICE = Uint8Array.from(fixstr('device'));
const ATTRS = Uint8Array.from(fixstr('attrs'));
const VERSION = Uint8Array.from(fixstr('version'));
const TS = Uint8Array.from(fixstr('ts'));
const SRC = Uint8Array.from(fixstr('src'));
const PREV = Uint8Array.from(fixstr('prev'));

/** Events are written one after another into a pool and handed out as views, as msgpackr does. */
const POOL_BYTES = 16 * 1024;
let pool = Buffer.allocUnsafeSlow(POOL_BYTES);
let used = 0;

/** A write ran out of the pool: the event is written again in a new one. */
const NO_ROOM = -1;
/** Not the plain form (a value msgpackr writes otherwise): msgpackr writes the event. */
const NOT_PLAIN = -2;

/** The event's msgpack: by hand when it has the plain form, else by msgpackr (`encodeBus`). */
export function encodeStateEvent(e: StateEvent): Buffer {
  if (e.pos !== undefined || !plainMap(e.attrs) || (e.prev !== undefined && !plainMap(e.prev))) return encodeBus(e);
  for (;;) {
    const end = writeEvent(pool, used, e);
    if (end === NOT_PLAIN) return encodeBus(e);
    if (end !== NO_ROOM) {
      const out = pool.subarray(used, end);
      used = end;
      return out;
    }
    // a fresh pool, twice as large when the event did not fit even a fresh one
    pool = Buffer.allocUnsafeSlow(used === 0 ? pool.length * 2 : POOL_BYTES);
    used = 0;
  }
}

function plainMap(m: unknown): boolean {
  return m !== null && typeof m === 'object' && m.constructor === Object;
}

/**
 * Room kept after every string and value: the constant parts and numbers that may follow one (at
 * most 38 bytes) are then written without a check of their own.
 */
const SLACK = 64;

function writeEvent(b: Buffer, at: number, e: StateEvent): number {
  if (at + HEAD.length + SLACK > b.length) return NO_ROOM;
  const start = at;
  at = writeString(b, put(b, at, HEAD), e.home);
  if (at >= 0) at = writeString(b, put(b, at, HUB), e.hub);
  if (at >= 0) at = writeString(b, put(b, at, DEVICE), e.device);
  if (at >= 0) at = writeAttrs(b, put(b, at, ATTRS), e.attrs);
  if (at < 0) return at;
  at = writeNumber(b, put(b, at, VERSION), e.version);
  at = writeNumber(b, put(b, at, TS), e.ts);
  // the header HEAD wrote (0x88), plus one a field
  let header = 0x88;
  if (e.src !== undefined) {
    b[start] = ++header;
    at = writeString(b, put(b, at, SRC), e.src);
    if (at < 0) return at;
  }
  if (e.prev === undefined) return at;
  b[start] = ++header;
  return writeAttrs(b, put(b, at, PREV), e.prev);
}

/** A map of the attributes: one byte of header reserved, three when 16 or more (msgpack's map16). */
function writeAttrs(b: Buffer, at: number, attrs: Record<string, AttrValue>): number {
  const head = at;
  at++;
  let count = 0;
  for (const key in attrs) {
    const value = attrs[key];
    // msgpackr leaves out undefined (the codec's skipValues) and inherited keys (a plain object has none)
    if (value === undefined) continue;
    count++;
    at = writeString(b, at, key);
    if (at < 0 || at + 9 + SLACK > b.length) return at < 0 ? at : NO_ROOM;
    if (typeof value === 'number') at = writeNumber(b, at, value);
    else if (typeof value === 'string') at = writeString(b, at, value);
    else if (value === true) b[at++] = 0xc3;
    else if (value === false) b[at++] = 0xc2;
    else if (value === null) b[at++] = 0xc0;
    else return NOT_PLAIN;
    if (at < 0) return at;
  }
  if (count < 0x10) b[head] = 0x80 | count;
  else {
    if (count > 0xffff) return NOT_PLAIN;
    b.copyWithin(head + 3, head + 1, at);
    b[head] = 0xde;
    b[head + 1] = count >> 8;
    b[head + 2] = count & 0xff;
    at += 2;
  }
  return at;
}

/** msgpackr's choice for a number (with `useRecords: false`): the smallest integer form below 2^32, else float64. */
function writeNumber(b: Buffer, at: number, n: number): number {
  if (n >>> 0 === n) {
    writeUint(b, at, n);
    return at + uintSize(n);
  }
  if (n >> 0 === n) {
    if (n >= -0x20) {
      b[at] = 0x100 + n;
      return at + 1;
    }
    if (n >= -0x80) {
      b[at] = 0xd0;
      b[at + 1] = n + 0x100;
      return at + 2;
    }
    if (n >= -0x8000) {
      b[at] = 0xd1;
      b.writeInt16BE(n, at + 1);
      return at + 3;
    }
    b[at] = 0xd2;
    b.writeInt32BE(n, at + 1);
    return at + 5;
  }
  b[at] = 0xcb;
  b.writeDoubleBE(n, at + 1);
  return at + 9;
}

/** A string in UTF-8 with the smallest header (a lone surrogate becomes U+FFFD, as msgpackr writes it). */
function writeString(b: Buffer, at: number, s: string): number {
  const n = s.length;
  if (at + 5 + 3 * n + SLACK > b.length) return NO_ROOM;
  let ascii = true;
  for (let i = 0; i < n; i++) {
    if (s.charCodeAt(i) >= 0x80) {
      ascii = false;
      break;
    }
  }
  const bytes = ascii ? n : Buffer.byteLength(s, 'utf8');
  if (bytes < 0x20) b[at++] = 0xa0 | bytes;
  else if (bytes < 0x100) {
    b[at] = 0xd9;
    b[at + 1] = bytes;
    at += 2;
  } else if (bytes < 0x10000) {
    b[at] = 0xda;
    b.writeUInt16BE(bytes, at + 1);
    at += 3;
  } else {
    b[at] = 0xdb;
    b.writeUInt32BE(bytes, at + 1);
    at += 5;
  }
  if (ascii) for (let i = 0; i < n; i++) b[at + i] = s.charCodeAt(i);
  else b.write(s, at, 'utf8');
  return at + bytes;
}

/** Copies a constant part (a few bytes: a loop, not a native call). */
function put(b: Buffer, at: number, part: Uint8Array): number {
  for (let i = 0; i < part.length; i++) b[at + i] = part[i]!;
  return at + part.length;
}
