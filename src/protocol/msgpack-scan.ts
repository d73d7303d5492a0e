import { ProtocolError } from '../errors.js';

/** @default 32: maps and arrays nested deeper are refused (deeper would overflow the stack when encoded again) */
export const MAX_DEPTH = 32;

function malformed(what: string): never {
  throw new ProtocolError('malformed_frame', what);
}

/** Well-formed msgpack that a rule refuses (a `__proto__` key, nesting too deep): its fields can still be read. */
export class RefusedValueError extends ProtocolError {}

/** Big-endian unsigned length of `size` bytes at `pos`. */
function length(b: Uint8Array, pos: number, size: 1 | 2 | 4): number {
  if (pos + size > b.length) malformed('truncated msgpack');
  let n = 0;
  for (let i = 0; i < size; i++) n = n * 256 + b[pos + i]!;
  return n;
}

// the scanner's stack, one entry per open map or array (reused: decoding never re-enters); int32, as
// no count past the bytes left is taken: a key's turn is then a bit test, not a float64 modulo call
const stackLeft = new Int32Array(MAX_DEPTH + 2);
const stackSize = new Int32Array(MAX_DEPTH + 2);
const stackMap = new Uint8Array(MAX_DEPTH + 2);
const stackKeyAt = new Int32Array(MAX_DEPTH + 2);
const stackKeyLen = new Int32Array(MAX_DEPTH + 2);
/** "__proto__" as UTF-8 */
const PROTO_KEY = [0x5f, 0x5f, 0x70, 0x72, 0x6f, 0x74, 0x6f, 0x5f, 0x5f];

/**
 * One pass over the bytes before msgpackr sees them: exactly one value, nothing after it, plain
 * msgpack types only, maps and arrays nested at most `MAX_DEPTH` deep, no map key `__proto__`.
 * msgpackr would turn extension types into Dates, Sets, Errors, BigInts, `undefined` or (structured
 * clone) cyclic objects, byte 0xc1 into a marker object, and rename a `__proto__` key to
 * `__proto_`, wherever validation does not look (unknown keys, result `r`, command params); deep
 * nesting would overflow the stack when the value is encoded again. O(bytes).
 */
export function checkPlainMsgpack(b: Uint8Array): void {
  let pos = 0;
  let top = 0; // stack[0]: the one top-level value
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
    let open = 0; // items of a map or array starting here
    let isMap = 0;
    let strLen = -1; // bytes of a string starting at pos
    if (c < 0x80 || c >= 0xe0) continue; // fixint
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
        case 0xcb: case 0xcf: case 0xd3: pos += 8; break;
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
        default: malformed(`msgpack extension type 0x${c.toString(16)} at offset ${at}: not allowed`);
      }
    }
    if (strLen >= 0) {
      if (isKey) {
        stackKeyAt[top] = pos;
        stackKeyLen[top] = strLen;
        if (strLen === 9 && isProtoKey(b, pos)) refuseProtoKey(b, top);
      }
      pos += strLen;
    } else if (isKey) stackKeyLen[top] = -1;
    if (open > 0) {
      // every item takes a byte at least: more items than bytes left cannot be there
      if (open > b.length - pos) malformed('truncated msgpack');
      if (++top > MAX_DEPTH) throw new RefusedValueError('malformed_frame', `maps and arrays nested deeper than ${MAX_DEPTH} levels at offset ${at}`);
      stackLeft[top] = open;
      stackSize[top] = open;
      stackMap[top] = isMap;
      stackKeyLen[top] = -1;
    }
  }
  if (pos > b.length) malformed('truncated msgpack');
  if (pos < b.length) malformed(`${b.length - pos} bytes after the end of the msgpack value`);
}

function isProtoKey(b: Uint8Array, pos: number): boolean {
  if (pos + 9 > b.length) return false;
  for (let i = 0; i < 9; i++) if (b[pos + i] !== PROTO_KEY[i]) return false;
  return true;
}

/** `__proto__` as a key: refused with the path of keys (and array indexes) that leads to it. */
function refuseProtoKey(b: Uint8Array, top: number): never {
  const path: string[] = [];
  for (let level = 1; level <= top; level++) {
    if (stackMap[level] === 1) {
      const len = stackKeyLen[level]!;
      const key = len < 0 ? '?' : Buffer.from(b.buffer, b.byteOffset + stackKeyAt[level]!, len).toString('utf8');
      path.push(key);
    } else path.push(`[${stackSize[level]! - stackLeft[level]! - 1}]`);
  }
  const field = path.join('.').replace(/\.\[/g, '[');
  throw new RefusedValueError('invalid_field', `${field}: __proto__ is not allowed as a key`, { field });
}
