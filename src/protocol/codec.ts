import { Packr } from 'msgpackr';
import {
  FrameType,
  PROTOCOL_VERSION,
  type Attrs,
  type DeviceInfo,
  type ErrorFrame,
  type Frame,
  type HubToServerFrame,
  type ServerToHubFrame,
} from '../../proto/frames.js';
import type { AppWireMessage } from '../../proto/app.js';
import { isValidId, isValidKey, type BusPayload } from '../../proto/subjects.js';
import { ErrorCodes, type ErrorCode } from '../../proto/errors.js';
import { ProtocolError } from '../errors.js';

/**
 * Plain msgpack only: no records, no msgpackr extensions, smallest map headers, so the bytes are
 * what any msgpack library (and the test vectors) produce and a C firmware can read them.
 */
const packr = new Packr({
  ...({ skipValues: [undefined] } as object), // absent optional fields are left out, never sent as nil
  useRecords: false,
  variableMapSize: true,
  mapsAsObjects: true,
  moreTypes: false,
  // decoded bin values must not alias the socket's buffer, which uWS reuses after the callback
  copyBuffers: true,
  // C hubs send integers above 32 bits (ms timestamps) as uint64 0xcf: decode them as numbers, never BigInt
  int64AsType: 'number',
});

/** @default 16_384 (bytes): largest hub frame accepted; the welcome frame tells the hub. */
export const DEFAULT_MAX_FRAME = 16 * 1024;
/** Limits on what one frame may carry, so a frame cannot make the shadow grow without bound. */
export const LIMITS = { devicesPerFrame: 256, attrsPerDevice: 64, stringBytes: 1024, idLength: 64, depth: 32 } as const;

/** The error frame for a code of the table: its number and `temporary` flag come from the table. */
export function errorFrameFor(code: ErrorCode, msg: string, ref?: number, field?: string): ErrorFrame {
  const row = ErrorCodes[code];
  return { t: FrameType.error, c: row.code, e: code, tmp: row.temporary, msg, ref, f: field };
}

/** Encodes one frame of the hub protocol. */
export function encode(frame: Frame): Buffer {
  return packr.pack(frame);
}

/** Encodes one payload of a bus subject (see proto/subjects.ts). */
export function encodeBus(payload: BusPayload): Buffer {
  return packr.pack(payload);
}

/** Encodes one message of the app socket in its msgpack encoding. */
export function encodeApp(msg: AppWireMessage): Buffer {
  return packr.pack(msg);
}

/**
 * Encodes any value as the node would: for tools and tests that must send what a peer may,
 * malformed frames included. The node's own code uses the typed encoders above.
 */
export function encodeValue(value: unknown): Buffer {
  return packr.pack(value);
}

/** Decodes one msgpack value; any failure becomes `malformed_frame`. */
export function decodeValue(bytes: Uint8Array): unknown {
  checkPlainMsgpack(bytes);
  try {
    return packr.unpack(bytes);
  } catch (err) {
    throw new ProtocolError('malformed_frame', `not a msgpack value: ${(err as Error).message}`, { cause: err });
  }
}

function malformed(what: string): never {
  throw new ProtocolError('malformed_frame', what);
}

/** Well-formed msgpack that a rule refuses (a `__proto__` key, nesting too deep): its fields can still be read. */
class RefusedValueError extends ProtocolError {}

/**
 * The top-level fields of a value the scanner refused although it is well-formed msgpack, so the
 * refusal can name the frame (`s`, a result's `id`, an app request's `id`); null when unreadable.
 */
export function peekRefused(err: unknown, bytes: Uint8Array): Record<string, unknown> | null {
  if (!(err instanceof RefusedValueError)) return null;
  try {
    const v: unknown = packr.unpack(bytes);
    return isPlainObject(v) ? v : null;
  } catch {
    return null; // deep nesting can overflow msgpackr's own recursion: then nothing is named
  }
}

/** Big-endian unsigned length of `size` bytes at `pos`. */
function length(b: Uint8Array, pos: number, size: 1 | 2 | 4): number {
  if (pos + size > b.length) malformed('truncated msgpack');
  let n = 0;
  for (let i = 0; i < size; i++) n = n * 256 + b[pos + i]!;
  return n;
}

// the scanner's stack, one entry per open map or array (reused: decoding never re-enters)
const stackLeft = new Float64Array(LIMITS.depth + 2);
const stackSize = new Float64Array(LIMITS.depth + 2);
const stackMap = new Uint8Array(LIMITS.depth + 2);
const stackKeyAt = new Int32Array(LIMITS.depth + 2);
const stackKeyLen = new Int32Array(LIMITS.depth + 2);
/** "__proto__" as UTF-8 */
const PROTO_KEY = [0x5f, 0x5f, 0x70, 0x72, 0x6f, 0x74, 0x6f, 0x5f, 0x5f];

/**
 * One pass over the bytes before msgpackr sees them: exactly one value, nothing after it, plain
 * msgpack types only, maps and arrays nested at most `LIMITS.depth` deep, no map key `__proto__`.
 * msgpackr would turn extension types into Dates, Sets, Errors, BigInts, `undefined` or (structured
 * clone) cyclic objects, byte 0xc1 into a marker object, and rename a `__proto__` key to
 * `__proto_`, wherever validation does not look (unknown keys, result `r`, command params); deep
 * nesting would overflow the stack when the value is encoded again. O(bytes).
 */
function checkPlainMsgpack(b: Uint8Array): void {
  let pos = 0;
  let top = 0; // stack[0]: the one top-level value
  stackLeft[0] = 1;
  stackMap[0] = 0;
  while (true) {
    while (stackLeft[top] === 0) if (--top < 0) break;
    if (top < 0) break;
    if (pos >= b.length) malformed('truncated msgpack');
    // in a map, items alternate key, value: a key is read when an even number is left
    const isKey = stackMap[top] === 1 && stackLeft[top]! % 2 === 0;
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
      if (++top > LIMITS.depth) throw new RefusedValueError('malformed_frame', `maps and arrays nested deeper than ${LIMITS.depth} levels at offset ${at}`);
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

/** Decodes and validates a frame sent by a hub. Throws ProtocolError with the field at fault. */
export function decodeHubFrame(bytes: Uint8Array, maxBytes = DEFAULT_MAX_FRAME): HubToServerFrame {
  if (bytes.byteLength > maxBytes) throw new ProtocolError('frame_too_large', `frame of ${bytes.byteLength} bytes exceeds ${maxBytes}`);
  let value: unknown;
  try {
    value = decodeValue(bytes);
    return validateHubFrame(value);
  } catch (err) {
    value ??= peekRefused(err, bytes);
    // the hub learns which of its frames was refused: its sequence number, or a result's command id
    if (err instanceof ProtocolError && err.ref === undefined && isPlainObject(value) && typeof value.t === 'number') {
      const ref = value.t === FrameType.result ? value.id : value.s;
      if (typeof ref === 'number' && Number.isSafeInteger(ref) && ref >= 0) {
        err.ref = ref;
        err.frameType = value.t;
      }
    }
    throw err;
  }
}

/** Decodes and validates a frame sent by the server (used by the simulator and tests). */
export function decodeServerFrame(bytes: Uint8Array): ServerToHubFrame {
  return validateServerFrame(decodeValue(bytes));
}

function fail(field: string, what: string): never {
  throw new ProtocolError('invalid_field', `${field}: ${what}`, { field });
}

/** A map as msgpack or JSON decode it: not an array, not a class instance. */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function map(v: unknown, field: string): Record<string, unknown> {
  if (!isPlainObject(v)) fail(field, 'must be a map');
  return v;
}

function uint(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) fail(field, 'must be an unsigned integer');
  return v;
}

function str(v: unknown, field: string, max: number = LIMITS.stringBytes): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > max) fail(field, `must be a string of 1..${max} characters`);
  return v;
}

function id(v: unknown, field: string): string {
  if (!isValidId(v)) fail(field, 'must be an id of 1..64 characters [A-Za-z0-9_-]');
  return v;
}

function optional<T>(v: unknown, check: (v: unknown, field: string) => T, field: string): T | undefined {
  return v === undefined || v === null ? undefined : check(v, field);
}

/** Attribute maps hold scalars only: the shadow stays flat and cheap to merge and store. */
export function attrs(v: unknown, field: string): Attrs {
  const m = map(v, field);
  let n = 0;
  for (const key in m) {
    if (++n > LIMITS.attrsPerDevice) fail(field, `more than ${LIMITS.attrsPerDevice} attributes`);
    if (!isValidKey(key)) fail(`${field}.${key}`, 'attribute name of 1..64 characters, not __proto__, constructor or prototype');
    const val = m[key];
    const type = typeof val;
    if (val === null || type === 'boolean' || (type === 'number' && Number.isFinite(val as number))) continue;
    if (type === 'string' && (val as string).length <= LIMITS.stringBytes) continue;
    fail(`${field}.${key}`, 'must be a string, finite number, boolean or nil');
  }
  return m as Attrs;
}

/**
 * Free-form parameters (command `p`, from the API and the app socket, often parsed from JSON): a
 * map of any values nested at most `LIMITS.depth` deep, with no `__proto__` key at any depth (a
 * JSON `__proto__` key is an own property; msgpack would rename it on the way to the hub).
 */
export function params(v: unknown, field: string): Record<string, unknown> {
  const m = map(v, field);
  checkNested(m, field, 1);
  return m;
}

function checkNested(v: unknown, field: string, depth: number): void {
  if (typeof v !== 'object' || v === null) return;
  if (depth > LIMITS.depth) fail(field, `nested deeper than ${LIMITS.depth} levels`);
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) checkNested(v[i], `${field}[${i}]`, depth + 1);
    return;
  }
  for (const key of Object.keys(v)) {
    if (key === '__proto__') fail(`${field}.__proto__`, '__proto__ is not allowed as a key');
    checkNested((v as Record<string, unknown>)[key], `${field}.${key}`, depth + 1);
  }
}

function deviceMap(v: unknown, field: string): Record<string, Attrs> {
  const m = map(v, field);
  let n = 0;
  for (const key in m) {
    if (++n > LIMITS.devicesPerFrame) fail(field, `more than ${LIMITS.devicesPerFrame} devices`);
    id(key, `${field} key`);
    attrs(m[key], `${field}.${key}`);
  }
  return m as Record<string, Attrs>;
}

function deviceInfos(v: unknown, field: string): DeviceInfo[] {
  if (!Array.isArray(v)) fail(field, 'must be an array');
  if (v.length > LIMITS.devicesPerFrame) fail(field, `more than ${LIMITS.devicesPerFrame} devices`);
  return v.map((item, i) => {
    const m = map(item, `${field}[${i}]`);
    const info: DeviceInfo = { d: id(m.d, `${field}[${i}].d`), k: str(m.k, `${field}[${i}].k`, LIMITS.idLength) };
    const model = optional(m.m, (x, f) => str(x, f, LIMITS.idLength), `${field}[${i}].m`);
    if (model !== undefined) info.m = model;
    return info;
  });
}

function idList(v: unknown, field: string): string[] {
  if (!Array.isArray(v)) fail(field, 'must be an array');
  if (v.length > LIMITS.devicesPerFrame) fail(field, `more than ${LIMITS.devicesPerFrame} devices`);
  return v.map((x, i) => id(x, `${field}[${i}]`));
}

function frameType(v: unknown): number {
  const m = map(v, 'frame');
  if (typeof m.t !== 'number') fail('t', 'frame type must be an integer');
  return m.t;
}

export function validateHubFrame(value: unknown): HubToServerFrame {
  if (!isPlainObject(value)) throw new ProtocolError('malformed_frame', 'a frame must be a msgpack map');
  const f = value;
  switch (frameType(f)) {
    case FrameType.hello: {
      const v = uint(f.v, 'v');
      if (v !== PROTOCOL_VERSION) throw new ProtocolError('unsupported_version', `protocol version ${v} is not supported (speak ${PROTOCOL_VERSION})`, { field: 'v' });
      return { t: 1, v, b: str(f.b, 'b', LIMITS.idLength), fw: optional(f.fw, (x, k) => str(x, k, LIMITS.idLength), 'fw') };
    }
    case FrameType.heartbeat:
      return { t: 3, ts: optional(f.ts, uint, 'ts') };
    case FrameType.report:
      return { t: 4, s: uint(f.s, 's'), r: deviceMap(f.r, 'r'), ts: optional(f.ts, uint, 'ts') };
    case FrameType.event:
      return {
        t: 5,
        s: uint(f.s, 's'),
        d: id(f.d, 'd'),
        e: str(f.e, 'e', LIMITS.idLength),
        p: optional(f.p, attrs, 'p'),
        ts: optional(f.ts, uint, 'ts'),
      };
    case FrameType.result: {
      const ok = f.ok;
      if (typeof ok !== 'boolean') fail('ok', 'must be a boolean');
      return {
        t: 8,
        id: uint(f.id, 'id'),
        ok,
        r: f.r,
        e: optional(f.e, (x, k) => str(x, k, LIMITS.idLength), 'e'),
        msg: optional(f.msg, str, 'msg'),
      };
    }
    case FrameType.devices: {
      if (f.f !== undefined && f.f !== null && typeof f.f !== 'boolean') fail('f', 'must be a boolean');
      return {
        t: 9,
        s: uint(f.s, 's'),
        f: f.f === true,
        j: optional(f.j, deviceInfos, 'j'),
        l: optional(f.l, idList, 'l'),
      };
    }
    case FrameType.error:
      return errorFrame(f);
    case FrameType.bye:
      return { t: 12, e: optional(f.e, str, 'e'), msg: optional(f.msg, str, 'msg') };
    default:
      throw new ProtocolError('unknown_frame_type', `frame type ${String(f.t)} is not one a hub may send`, { field: 't' });
  }
}

function errorFrame(f: Record<string, unknown>) {
  if (typeof f.tmp !== 'boolean') fail('tmp', 'must be a boolean');
  return {
    t: 10 as const,
    c: uint(f.c, 'c'),
    e: str(f.e, 'e', LIMITS.idLength),
    tmp: f.tmp,
    msg: optional(f.msg, str, 'msg'),
    ref: optional(f.ref, uint, 'ref'),
    f: optional(f.f, str, 'f'),
  };
}

export function validateServerFrame(value: unknown): ServerToHubFrame {
  if (!isPlainObject(value)) throw new ProtocolError('malformed_frame', 'a frame must be a msgpack map');
  const f = value;
  switch (frameType(f)) {
    case FrameType.welcome: {
      const dl = deviceMap(f.dl ?? {}, 'dl');
      return {
        t: 2,
        v: uint(f.v, 'v'),
        ep: uint(f.ep, 'ep'),
        hb: uint(f.hb, 'hb'),
        idle: uint(f.idle, 'idle'),
        max: uint(f.max, 'max'),
        ts: uint(f.ts, 'ts'),
        s: uint(f.s, 's'),
        dl,
      };
    }
    case FrameType.heartbeat:
      return { t: 3, ts: optional(f.ts, uint, 'ts') };
    case FrameType.ack:
      return { t: 6, s: uint(f.s, 's') };
    case FrameType.command:
      return { t: 7, id: uint(f.id, 'id'), d: id(f.d, 'd'), m: str(f.m, 'm', LIMITS.idLength), p: map(f.p ?? {}, 'p'), to: uint(f.to, 'to') };
    case FrameType.error:
      return errorFrame(f);
    case FrameType.reconnect:
      return { t: 11, after: uint(f.after, 'after'), url: optional(f.url, str, 'url'), e: optional(f.e, str, 'e') };
    case FrameType.bye:
      return { t: 12, e: optional(f.e, str, 'e'), msg: optional(f.msg, str, 'msg') };
    default:
      throw new ProtocolError('unknown_frame_type', `frame type ${String(f.t)} is not one a server sends`, { field: 't' });
  }
}
