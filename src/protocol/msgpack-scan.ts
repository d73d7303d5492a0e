import { isUtf8 } from 'node:buffer';
import type { ErrorCode } from '../../proto/errors.js';
import { ProtocolError } from '../errors.js';

/** @default 32: maps and arrays nested deeper are refused (deeper would overflow the stack when encoded again) */
export const MAX_DEPTH = 32;

function malformed(what: string): never {
  throw new ProtocolError('malformed_frame', what);
}

/** The top-level integers a refusal names its frame by, as the scanner read them (absent: not an integer there). */
export interface FrameFields {
  t?: number;
  s?: number;
  id?: number;
  ref?: number;
}

/**
 * Well-formed msgpack that a rule refuses (a non-string or `__proto__` key, an extension type, nesting
 * too deep, invalid UTF-8, an integer past 2^53 − 1): `fields` holds its top-level `t`, `s`, `id`, `ref`.
 */
export class RefusedValueError extends ProtocolError {
  fields: FrameFields = {};
}

/** Big-endian unsigned length of `size` bytes at `pos`. */
function length(b: Uint8Array, pos: number, size: 1 | 2 | 4): number {
  if (pos + size > b.length) malformed('truncated msgpack');
  let n = 0;
  for (let i = 0; i < size; i++) n = n * 256 + b[pos + i]!;
  return n;
}

// the scanner's stack, one entry per open map or array (reused: decoding never re-enters); int32, as
// no count past the bytes left is taken: a key's turn is then a bit test, not a float64 modulo call.
// Level MAX_DEPTH + 1 is flat (stackMap 2): past the depth refused, items are only counted to the end.
const stackLeft = new Int32Array(MAX_DEPTH + 2);
const stackSize = new Int32Array(MAX_DEPTH + 2);
const stackMap = new Uint8Array(MAX_DEPTH + 2);
const stackKeyAt = new Int32Array(MAX_DEPTH + 2);
const stackKeyLen = new Int32Array(MAX_DEPTH + 2);
/** "__proto__" as UTF-8 */
const PROTO_KEY = [0x5f, 0x5f, 0x70, 0x72, 0x6f, 0x74, 0x6f, 0x5f, 0x5f];
/**
 * top-level keys of 2 bytes or more seen so far (offset, length, short code), for duplicates. A
 * frame has at most 7 of its own; more than TOP_KEYS is refused: a Set of copies past 16 made a
 * 16 KB frame of 2,670 unknown keys cost 12 times a report of its size (review "msgpack").
 */
const TOP_KEYS = 64;
const topKeyAt = new Int32Array(TOP_KEYS);
const topKeyLen = new Int32Array(TOP_KEYS);
const topKeyCode = new Int32Array(TOP_KEYS);
let topKeys = 0;
// the first rule broken (null: none), kept while the walk goes on to the end
let faultCode: ErrorCode | null = null;
let faultMsg = '';
let faultField: string | undefined;
// the top-level t, s, id, ref as read, in a typed array (a double in a module variable would be
// boxed at every write); an object is made only for a refusal
const noted = new Float64Array(4);
const NOTED_NAMES = ['t', 's', 'id', 'ref'] as const;
/** which of `noted` this frame set (equal to frameStamp), and which one-byte top-level keys it has */
const notedStamp = new Int32Array(4);
const seenKey1 = new Int32Array(256);
let frameStamp = 0;
const f32 = new Float32Array(1);
const f32Bytes = new Uint8Array(f32.buffer);
const f64 = new Float64Array(1);
const f64Bytes = new Uint8Array(f64.buffer);
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * One pass over the bytes before msgpackr sees them (two when a string is not ASCII): exactly one value, nothing after it, plain
 * msgpack types only, map keys strings (neither `__proto__` nor twice the same at the top level),
 * strings valid UTF-8, integers within ±(2^53 − 1), maps and arrays nested at most `MAX_DEPTH` deep.
 * msgpackr would turn extension types into Dates, Sets, Errors, BigInts, `undefined` or (structured
 * clone) cyclic objects, byte 0xc1 into a marker object, integer keys into strings (`7` and `"7"`
 * one key), invalid UTF-8 into U+FFFD, rename a `__proto__` key to `__proto_`, round big integers,
 * wherever validation does not look (unknown keys, result `r`, command params); deep nesting would
 * overflow the stack when the value is encoded again. Bytes that are not one msgpack value (cut
 * short, 0xc1, bytes after it) throw `malformed_frame` at once; a rule broken throws a
 * RefusedValueError after the walk, with the top-level fields read. O(bytes), no allocation when
 * every string is ASCII.
 */
export function checkPlainMsgpack(b: Uint8Array): void {
  scan(b, false);
}

/**
 * `utf8` false: strings are only or'ed together, and a frame with a byte ≥ 0x80 in any of them is
 * walked again with `utf8` true, which validates each such string (the native check, on a view).
 */
function scan(b: Uint8Array, utf8: boolean): void {
  faultCode = null;
  topKeys = 0;
  // a new stamp: the seen keys and noted fields of earlier frames no longer count (no clearing)
  if (++frameStamp === 0x3fffffff) {
    frameStamp = 1;
    seenKey1.fill(0);
    notedStamp.fill(0);
  }
  let high = 0; // every string byte or'ed: ≥ 0x80 when a string is not ASCII
  let pos = 0;
  let top = 0; // stack[0]: the one top-level value
  let field = 0; // the top-level value read next is that of key t (1), s (2), id (3), ref (4)
  stackLeft[0] = 1;
  stackMap[0] = 0;
  while (true) {
    while (stackLeft[top] === 0) if (--top < 0) break;
    if (top < 0) break;
    if (pos >= b.length) malformed('truncated msgpack');
    // in a map, items alternate key, value: a key is read when an even number is left
    const isKey = stackMap[top] === 1 && (stackLeft[top]! & 1) === 0;
    stackLeft[top]!--;
    const at = pos;
    const c = b[pos++]!;
    if (field !== 0) {
      if (c < 0x80) {
        noted[field - 1] = c;
        notedStamp[field - 1] = frameStamp;
      } else noteField(field, b, at, c);
      field = 0;
    }
    let open = 0; // items of a map or array starting here
    let isMap = 0;
    let strLen = -1; // bytes of a string starting at pos
    if (c < 0x80 || c >= 0xe0) {
      if (isKey) nonStringKey(b, top, c);
      continue; // fixint
    }
    if (c < 0x90) {
      open = 2 * (c & 0x0f); // fixmap
      isMap = 1;
    } else if (c < 0xa0) open = c & 0x0f; // fixarray
    else if (c < 0xc0) strLen = c & 0x1f; // fixstr
    else {
      switch (c) {
        case 0xc0: case 0xc2: case 0xc3: break;
        case 0xcc: case 0xd0: pos += 1; break;
        case 0xcd: case 0xd1: pos += 2; break;
        case 0xca: case 0xce: case 0xd2: pos += 4; break;
        case 0xcb: pos += 8; break;
        case 0xcf: case 0xd3:
          if (faultCode === null && !isKey && !safeInt64(b, pos, c === 0xd3)) fault(b, top, 'invalid_field', 'an integer beyond ±(2^53 − 1)');
          pos += 8;
          break;
        case 0xc4: pos += 1 + length(b, pos, 1); break;
        case 0xc5: pos += 2 + length(b, pos, 2); break;
        case 0xc6: pos += 4 + length(b, pos, 4); break;
        case 0xd9: strLen = length(b, pos, 1); pos += 1; break;
        case 0xda: strLen = length(b, pos, 2); pos += 2; break;
        case 0xdb: strLen = length(b, pos, 4); pos += 4; break;
        case 0xdc: open = length(b, pos, 2); pos += 2; break;
        case 0xdd: open = length(b, pos, 4); pos += 4; break;
        case 0xde: open = 2 * length(b, pos, 2); isMap = 1; pos += 2; break;
        case 0xdf: open = 2 * length(b, pos, 4); isMap = 1; pos += 4; break;
        case 0xc1: malformed(`byte 0xc1 (never used in msgpack) at offset ${at}`);
        // extension types: skipped (type byte, data) to read the rest of the frame, then refused
        case 0xd4: pos += 2; extension(b, top, c, at); break;
        case 0xd5: pos += 3; extension(b, top, c, at); break;
        case 0xd6: pos += 5; extension(b, top, c, at); break;
        case 0xd7: pos += 9; extension(b, top, c, at); break;
        case 0xd8: pos += 17; extension(b, top, c, at); break;
        case 0xc7: pos += 2 + length(b, pos, 1); extension(b, top, c, at); break;
        case 0xc8: pos += 3 + length(b, pos, 2); extension(b, top, c, at); break;
        case 0xc9: pos += 5 + length(b, pos, 4); extension(b, top, c, at); break;
      }
    }
    if (isKey && strLen < 0) nonStringKey(b, top, c);
    if (strLen >= 0) {
      if (pos + strLen > b.length) malformed('truncated msgpack');
      if (isKey) {
        stackKeyAt[top] = pos;
        stackKeyLen[top] = strLen;
        if (top === 1) {
          if (strLen === 1) {
            // one-byte keys (t, s, r, d, …): a stamp per byte value finds a second one at once
            const k = b[pos]!;
            if (seenKey1[k] === frameStamp) duplicateKey(b, pos, 1);
            else field = k === 0x74 ? 1 : k === 0x73 ? 2 : 0;
            seenKey1[k] = frameStamp;
          } else field = topKey(b, pos, strLen);
        }
        if (strLen === 9 && isProtoKey(b, pos)) fault(b, top, 'invalid_field', '__proto__ is not allowed as a key');
      }
      // ASCII (every byte < 0x80) is valid UTF-8: the native check runs only on other strings
      const end = pos + strLen;
      if (!utf8) for (let i = pos; i < end; i++) high |= b[i]!;
      // a key that is not UTF-8 is named by its map's path: its own bytes read as text would put U+FFFD in `f`
      else if (faultCode === null && !isAscii(b, pos, end) && !isUtf8(b.subarray(pos, end))) fault(b, top, 'invalid_field', isKey ? 'a key that is not valid UTF-8' : 'a string that is not valid UTF-8', isKey ? top - 1 : top);
      pos += strLen;
    } else if (isKey) stackKeyLen[top] = -1;
    if (open > 0) {
      // every item takes a byte at least: more items than bytes left cannot be there
      if (top > MAX_DEPTH) {
        // past the depth refused: counted on the one flat level, to read the frame to its end
        if (stackLeft[top]! + open > b.length - pos) malformed('truncated msgpack');
        stackLeft[top]! += open;
        continue;
      }
      if (open > b.length - pos) malformed('truncated msgpack');
      if (++top > MAX_DEPTH) {
        if (faultCode === null) setFault('malformed_frame', `maps and arrays nested deeper than ${MAX_DEPTH} levels at offset ${at}`, undefined);
        isMap = 2;
      }
      stackLeft[top] = open;
      stackSize[top] = open;
      stackMap[top] = isMap;
      stackKeyLen[top] = -1;
    }
  }
  if (pos > b.length) malformed('truncated msgpack');
  if (pos < b.length) malformed(`${b.length - pos} bytes after the end of the msgpack value`);
  if (high >= 0x80 && faultCode === null) return scan(b, true);
  if (faultCode !== null) {
    const err = new RefusedValueError(faultCode, faultMsg, { field: faultField });
    for (let i = 0; i < 4; i++) if (notedStamp[i] === frameStamp) err.fields[NOTED_NAMES[i]!] = noted[i];
    throw err;
  }
}

/** What a value of type byte `c` (not a string) is, for a refusal. */
function typeName(c: number): string {
  if (c < 0x80 || c >= 0xe0 || (c >= 0xcc && c <= 0xd3)) return 'an integer';
  if (c < 0x90 || c === 0xde || c === 0xdf) return 'a map';
  if (c < 0xa0 || c === 0xdc || c === 0xdd) return 'an array';
  if (c === 0xc0) return 'nil';
  if (c === 0xc2 || c === 0xc3) return 'a boolean';
  if (c === 0xca || c === 0xcb) return 'a float';
  return c >= 0xc4 && c <= 0xc6 ? 'bin' : 'an extension type';
}

function setFault(code: ErrorCode, msg: string, field: string | undefined): void {
  faultCode = code;
  faultMsg = msg;
  faultField = field;
}

/** The first rule broken, at the item at level `top` (its key's path); later ones are not reported. */
function fault(b: Uint8Array, top: number, code: ErrorCode, what: string, levels = top): void {
  if (faultCode !== null) return;
  const field = pathOf(b, levels);
  setFault(code, `${field}: ${what}`, field);
}

/** A map key that is not a string, at the map of level `top`: the path is the map's. */
function nonStringKey(b: Uint8Array, top: number, c: number): void {
  if (faultCode === null) fault(b, top, 'invalid_field', `map keys must be strings, not ${typeName(c)}`, top - 1);
}

function extension(b: Uint8Array, top: number, c: number, at: number): void {
  if (faultCode !== null) return;
  const field = pathOf(b, top);
  setFault('malformed_frame', `msgpack extension type 0x${c.toString(16)} at offset ${at} (${field}): not allowed`, field);
}

/** The path of keys (and array indexes) down to the current item of level `levels`; `frame` for none. */
function pathOf(b: Uint8Array, levels: number): string {
  const path: string[] = [];
  for (let level = 1; level <= Math.min(levels, MAX_DEPTH); level++) {
    if (stackMap[level] === 1) {
      const len = stackKeyLen[level]!;
      path.push(len < 0 ? '?' : Buffer.from(b.buffer, b.byteOffset + stackKeyAt[level]!, len).toString('utf8'));
    } else path.push(`[${stackSize[level]! - stackLeft[level]! - 1}]`);
  }
  return path.length === 0 ? 'frame' : path.join('.').replace(/\.\[/g, '[');
}

function isProtoKey(b: Uint8Array, pos: number): boolean {
  for (let i = 0; i < 9; i++) if (b[pos + i] !== PROTO_KEY[i]) return false;
  return true;
}

/** A key of 1 to 3 bytes as one number (length, then its bytes), compared at once; -1 for longer keys. */
function shortKeyCode(b: Uint8Array, pos: number, len: number): number {
  if (len > 3) return -1;
  return (len << 24) | (b[pos]! << 16) | (len > 1 ? b[pos + 1]! << 8 : 0) | (len > 2 ? b[pos + 2]! : 0);
}
const T_KEY = shortKeyCode(Buffer.from('t'), 0, 1);
const S_KEY = shortKeyCode(Buffer.from('s'), 0, 1);
const ID_KEY = shortKeyCode(Buffer.from('id'), 0, 2);
const REF_KEY = shortKeyCode(Buffer.from('ref'), 0, 3);

/**
 * A top-level key: refused when seen before (a second `s` or `t` would change what the frame
 * means); returns which noted field (1 t, 2 s, 3 id, 4 ref) its value is, else 0.
 */
function topKey(b: Uint8Array, pos: number, len: number): number {
  const code = shortKeyCode(b, pos, len);
  for (let k = 0; k < topKeys; k++) {
    if (topKeyCode[k] !== code || (code === -1 && !sameBytes(b, topKeyAt[k]!, pos, len, topKeyLen[k]!))) continue;
    duplicateKey(b, pos, len);
    return 0; // the first one's value is the one noted
  }
  if (topKeys === TOP_KEYS) {
    if (faultCode === null) setFault('invalid_field', `more than ${TOP_KEYS} keys of two characters or more at the top of the frame`, undefined);
    return 0;
  }
  topKeyAt[topKeys] = pos;
  topKeyLen[topKeys] = len;
  topKeyCode[topKeys++] = code;
  return code === T_KEY ? 1 : code === S_KEY ? 2 : code === ID_KEY ? 3 : code === REF_KEY ? 4 : 0;
}

function sameBytes(b: Uint8Array, at: number, pos: number, len: number, otherLen: number): boolean {
  if (otherLen !== len) return false;
  for (let i = 0; i < len; i++) if (b[at + i] !== b[pos + i]) return false;
  return true;
}

function duplicateKey(b: Uint8Array, pos: number, len: number): void {
  if (faultCode !== null) return;
  const key = Buffer.from(b.buffer, b.byteOffset + pos, len).toString('utf8');
  setFault('invalid_field', `${key}: a key given twice at the top of the frame`, key);
}

/** Notes the value of top-level `t`, `s`, `id` or `ref` when it is an integer (in any form, a float holding one). */
function noteField(which: number, b: Uint8Array, at: number, c: number): void {
  const v = numberAt(b, at, c);
  if (!Number.isSafeInteger(v)) return;
  noted[which - 1] = v;
  notedStamp[which - 1] = frameStamp;
}

function isAscii(b: Uint8Array, pos: number, end: number): boolean {
  for (let i = pos; i < end; i++) if (b[i]! >= 0x80) return false;
  return true;
}

/** The number at `at` (type byte `c`), NaN for any other type or bytes cut short. */
function numberAt(b: Uint8Array, at: number, c: number): number {
  if (c < 0x80) return c;
  if (c >= 0xe0) return c - 0x100;
  const size = c === 0xcc || c === 0xd0 ? 1 : c === 0xcd || c === 0xd1 ? 2 : c === 0xce || c === 0xd2 || c === 0xca ? 4 : c === 0xcf || c === 0xd3 || c === 0xcb ? 8 : 0;
  if (size === 0 || at + 1 + size > b.length) return NaN;
  if (c === 0xca || c === 0xcb) {
    const bytes = c === 0xca ? f32Bytes : f64Bytes;
    for (let i = 0; i < size; i++) bytes[LITTLE_ENDIAN ? size - 1 - i : i] = b[at + 1 + i]!;
    return c === 0xca ? f32[0]! : f64[0]!;
  }
  if (size === 8) return int64At(b, at + 1, c === 0xd3);
  let n = 0;
  for (let i = 1; i <= size; i++) n = n * 256 + b[at + i]!;
  // signed forms: two's complement of their size
  if (c >= 0xd0 && n >= 2 ** (8 * size - 1)) n -= 2 ** (8 * size);
  return n;
}

/** Whether the 8-byte integer at `pos` is within ±(2^53 − 1); bytes cut short are left to the end check. */
function safeInt64(b: Uint8Array, pos: number, signed: boolean): boolean {
  if (pos + 8 > b.length) return true;
  const v = int64At(b, pos, signed);
  return v <= Number.MAX_SAFE_INTEGER && v >= -Number.MAX_SAFE_INTEGER;
}

/** The 8-byte integer at `pos`: exact within ±2^53, past it rounded (and still past the bound). */
function int64At(b: Uint8Array, pos: number, signed: boolean): number {
  let hi = ((b[pos]! << 24) | (b[pos + 1]! << 16) | (b[pos + 2]! << 8) | b[pos + 3]!) >>> 0;
  if (signed && hi >= 0x80000000) hi -= 0x100000000;
  const lo = ((b[pos + 4]! << 24) | (b[pos + 5]! << 16) | (b[pos + 6]! << 8) | b[pos + 7]!) >>> 0;
  return hi * 0x100000000 + lo;
}
