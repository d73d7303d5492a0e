// Over 400 lines: the hub wire's one codec, its encoders and the checks of every frame type of PROTOCOL.md §8 read in one place.
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
import { ID_RULE, isValidId, isValidKey, type BusPayload } from '../../proto/subjects.js';
import { ErrorCodes, type ErrorCode } from '../../proto/errors.js';
import { ProtocolError } from '../errors.js';
import { binAsBase64, longBin } from './result-bin.js';
import { cutText } from './well-formed.js';
import { checkPlainMsgpack, MAX_DEPTH, RefusedValueError, type FrameFields } from './msgpack-scan.js';
import { uintSize, writeUint } from './msgpack-uint.js';

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
export const LIMITS = { devicesPerFrame: 256, attrsPerDevice: 64, stringBytes: 1024, idLength: 64, depth: MAX_DEPTH } as const;

/**
 * The error frame for a code of the table: its number and `temporary` flag come from the table.
 * `msg` and `f` are cut to the protocol's string limit (a refused 2,000-character name was repeated
 * whole, and a hub decoding by §1 refused the error frame itself: review "unicode").
 */
export function errorFrameFor(code: ErrorCode, msg: string, ref?: number, field?: string): ErrorFrame {
  const row = ErrorCodes[code];
  const f = field === undefined ? undefined : cutText(field, LIMITS.stringBytes);
  return { t: FrameType.error, c: row.code, e: code, tmp: row.temporary, msg: cutText(msg, LIMITS.stringBytes), ref, f };
}

/** Encodes one frame of the hub protocol. */
export function encode(frame: Frame): Buffer {
  return frame.t === FrameType.ack ? encodeAck(frame.s) : packr.pack(frame);
}

/**
 * Encodes a frame for a hub welcomed with `max` = `maxBytes`: a larger one is refused with
 * `frame_too_large` instead of sent, since a hub may refuse or close on it (PROTOCOL.md §1, §5).
 */
export function encodeWithin(frame: ServerToHubFrame, maxBytes: number): Buffer {
  const bytes = encode(frame);
  if (bytes.length > maxBytes) throw new ProtocolError('frame_too_large', `the frame to the hub would be ${bytes.length} bytes, over its max of ${maxBytes} (TIER_MAX_FRAME_BYTES): nothing was sent`);
  return bytes;
}

/** `{t: 6, s: ` in msgpack: a map of two, key "t", the ack type, key "s" */
const ACK_HEAD = Uint8Array.from([0x82, 0xa1, 0x74, FrameType.ack, 0xa1, 0x73]);

/**
 * An ack, written here rather than by msgpackr: the node sends one per stored report, and
 * msgpackr's general path costs three times as much for these 7 to 11 bytes. The bytes are
 * msgpackr's own (a test compares them); a sequence past 32 bits is left to msgpackr.
 */
export function encodeAck(seq: number): Buffer {
  if (seq >>> 0 !== seq) return packr.pack({ t: FrameType.ack, s: seq });
  const b = Buffer.allocUnsafe(ACK_HEAD.length + uintSize(seq));
  // byte by byte: `set` of six bytes is a native call that costs more than the loop
  for (let i = 0; i < ACK_HEAD.length; i++) b[i] = ACK_HEAD[i]!;
  writeUint(b, ACK_HEAD.length, seq);
  return b;
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

/**
 * The top-level integers (`t`, `s`, `id`, `ref`) of a value the scanner refused although it is
 * well-formed msgpack, as it read them, so the refusal can name the frame (its `s`, a result's
 * `id`, an app request's `id`); null for bytes that are not one msgpack value.
 */
export function peekRefused(err: unknown): FrameFields | null {
  return err instanceof RefusedValueError ? err.fields : null;
}

/**
 * Decodes and validates a frame sent by a hub. Throws ProtocolError with the field at fault, and,
 * when the frame could be read, its type (`frameType`) and what it answers or carries (`ref`): a
 * sequenced frame's `s`, a result's `id`, an error frame's `ref`.
 */
export function decodeHubFrame(bytes: Uint8Array, maxBytes = DEFAULT_MAX_FRAME): HubToServerFrame {
  if (bytes.byteLength > maxBytes) throw new ProtocolError('frame_too_large', `frame of ${bytes.byteLength} bytes exceeds ${maxBytes}`);
  let value: unknown;
  try {
    value = decodeValue(bytes);
    return validateHubFrame(value);
  } catch (err) {
    if (err instanceof ProtocolError) nameRefused(err, isPlainObject(value) ? value : peekRefused(err));
    throw err;
  }
}

/**
 * Puts the refused frame's type and `ref` on the error, where the frame's top level could be read.
 * Only frames the gateway settles by that number get one (PROTOCOL.md §1, §3): a `ref` on any
 * other (a heartbeat's stray `s`, an unknown type) would name a number nobody consumed.
 */
function nameRefused(err: ProtocolError, top: { t?: unknown; s?: unknown; id?: unknown; ref?: unknown } | null): void {
  if (top === null || typeof top.t !== 'number') return;
  err.frameType = top.t;
  if (err.ref !== undefined) return;
  const ref = refOf(top.t, top);
  if (typeof ref === 'number' && Number.isSafeInteger(ref) && ref >= 0) err.ref = ref;
}

/** The number a refusal of a frame of type `t` names: a sequenced frame's `s`, a result's `id`, an error frame's `ref`. */
function refOf(t: number, top: { s?: unknown; id?: unknown; ref?: unknown }): unknown {
  switch (t) {
    case FrameType.report:
    case FrameType.event:
    case FrameType.devices:
      return top.s;
    case FrameType.result:
      return top.id;
    case FrameType.error:
      return top.ref;
    default:
      return undefined;
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
  if (!isValidId(v)) fail(field, `must be ${ID_RULE}`);
  return v;
}

function optional<T>(v: unknown, check: (v: unknown, field: string) => T, field: string): T | undefined {
  return v === undefined || v === null ? undefined : check(v, field);
}

/** A field the server only notes (hello's fw, a heartbeat's ts): a bad value is dropped. Refused, a long build string locked a hub out (1002; review "compat"). */
function ignoredIfBad<T>(v: unknown, check: (v: unknown, field: string) => T, field: string): T | undefined {
  try {
    return optional(v, check, field);
  } catch (err) {
    if (err instanceof ProtocolError) return undefined;
    throw err;
  }
}
const emptyAsNone = (v: unknown): unknown => (v === '' ? undefined : v); // C firmware sends msg "" on success: none

/**
 * Attribute maps hold scalars only: the shadow stays flat and cheap to merge and store. `limits`
 * false leaves the count and string lengths to the caller (the HTTP API answers them 422, §1).
 */
export function attrs(v: unknown, field: string, limits = true): Attrs {
  const m = map(v, field);
  let n = 0;
  for (const key in m) {
    if (++n > LIMITS.attrsPerDevice && limits) fail(field, `more than ${LIMITS.attrsPerDevice} attributes`);
    if (!isValidKey(key)) fail(`${field}.${key}`, 'attribute name of 1..64 characters, not __proto__, constructor or prototype');
    const val = m[key];
    const type = typeof val;
    if (val === null || type === 'boolean' || (type === 'number' && Number.isFinite(val as number))) continue;
    if (type !== 'string') fail(`${field}.${key}`, 'must be a string, finite number, boolean or nil');
    if (limits && (val as string).length > LIMITS.stringBytes) fail(`${field}.${key}`, `must be a string of at most ${LIMITS.stringBytes} characters`);
  }
  return m as Attrs;
}

/**
 * Free-form parameters (command `p`, from the API and the app socket, often parsed from JSON): a
 * map of any values nested at most `LIMITS.depth` - 1 deep (the frame holding it is the first level), with no `__proto__` key at any depth (a
 * JSON `__proto__` key is an own property; msgpack would rename it on the way to the hub), within
 * PROTOCOL.md §1's limits: keys (names) of 1 to `LIMITS.idLength` characters, strings of at most
 * `LIMITS.stringBytes`, since a hub may size its buffers by them; numbers finite and no `bin`
 * (§1 has no field of binary; a bin of any size, NaN and ±Infinity reached hubs: review "msgpack").
 */
export function params(v: unknown, field: string): Record<string, unknown> {
  const m = map(v, field);
  checkNested(m, field, PARAMS_DEPTH, PARAMS_DEPTH, true);
  return m;
}

/** `p` is the command frame's second level: params may nest one level less than a frame (§1). */
const PARAMS_DEPTH = 2;

/** Levels a value that starts at `depth` of a frame may nest, as a caller counts them. */
const levelsFrom = (depth: number) => LIMITS.depth - depth + 1;

/**
 * Whether `params(v)` accepts `v`, without building a field name per value (it runs on every
 * command; the names are wanted only for a refusal). test/unit/app-codec.test.ts holds the two to the same answers.
 */
export function paramsFit(v: unknown): boolean {
  return isPlainObject(v) && nestedFits(v, PARAMS_DEPTH, 'params');
}

/**
 * A result's value `r` (any msgpack value) within the limits `params` holds commands to (PROTOCOL.md
 * §1, §5): the caller, an app or a rule, may size its buffers by them as a hub does. At depth 2, inside the frame.
 */
function resultValue(v: unknown): unknown {
  if (nestedFits(v, 2, 'result')) return v;
  const long = longBin(v, 'r', BIN_MAX);
  // named as what the hub sent: "a string of at most 1024 characters" left a firmware team to work out 768 (review "msgpack")
  if (long !== null) fail(long, `must be a bin of at most ${BIN_MAX} bytes (passed on as base64 text, held to ${LIMITS.stringBytes} characters)`);
  const out = binAsBase64(v);
  checkNested(out, 'r', 2);
  return out;
}

/** the longest bin whose base64 text fits a string's limit */
const BIN_MAX = (LIMITS.stringBytes / 4) * 3;

/** `top`: the frame level `field` itself is at, for the message; `scalars`: numbers finite and no bin (command params). */
function checkNested(v: unknown, field: string, depth: number, top = depth, scalars = false): void {
  if (typeof v === 'string' && v.length > LIMITS.stringBytes) fail(field, `must be a string of at most ${LIMITS.stringBytes} characters`);
  if (scalars && typeof v === 'number' && !Number.isFinite(v)) fail(field, 'must be a finite number (not NaN or ±Infinity)');
  if (typeof v !== 'object' || v === null) return;
  if (scalars && v instanceof Uint8Array) fail(field, 'must not be binary (no field of PROTOCOL.md §1 is): send text, base64 for bytes');
  if (depth > LIMITS.depth) fail(field, `nested deeper than ${levelsFrom(top)} levels`);
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) checkNested(v[i], `${field}[${i}]`, depth + 1, top, scalars);
    return;
  }
  for (const key of Object.keys(v)) {
    if (key === '__proto__') fail(`${field}.__proto__`, '__proto__ is not allowed as a key');
    if (key.length === 0 || key.length > LIMITS.idLength) fail(`${field}.${key}`, `a name of 1..${LIMITS.idLength} characters`);
    checkNested((v as Record<string, unknown>)[key], `${field}.${key}`, depth + 1, top, scalars);
  }
}

/** `params`: as checkNested with `scalars`; `result`: a bin does not fit as it is (it goes out as base64 text, result-bin.ts). */
function nestedFits(v: unknown, depth: number, mode: 'params' | 'result'): boolean {
  if (typeof v === 'string') return v.length <= LIMITS.stringBytes;
  if (typeof v === 'number') return mode === 'result' || Number.isFinite(v);
  if (typeof v !== 'object' || v === null) return true;
  if (v instanceof Uint8Array) return false;
  if (depth > LIMITS.depth) return false;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) if (!nestedFits(v[i], depth + 1, mode)) return false;
    return true;
  }
  for (const key of Object.keys(v)) {
    if (key === '__proto__' || key.length === 0 || key.length > LIMITS.idLength || !nestedFits((v as Record<string, unknown>)[key], depth + 1, mode)) return false;
  }
  return true;
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
      return { t: 1, v, b: str(f.b, 'b', LIMITS.idLength), fw: ignoredIfBad(f.fw, (x, k) => str(x, k, LIMITS.idLength), 'fw') };
    }
    case FrameType.heartbeat:
      return { t: 3, ts: ignoredIfBad(f.ts, uint, 'ts') };
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
        r: resultValue(f.r),
        e: optional(emptyAsNone(f.e), (x, k) => str(x, k, LIMITS.idLength), 'e'),
        msg: optional(emptyAsNone(f.msg), str, 'msg'),
      };
    }
    case FrameType.devices: {
      if (f.f !== undefined && f.f !== null && typeof f.f !== 'boolean') fail('f', 'must be a boolean');
      const s = uint(f.s, 's');
      const j = optional(f.j, deviceInfos, 'j');
      // a full list without its list would remove every device of the hub (a firmware bug, not an intent)
      if (f.f === true && j === undefined) fail('j', 'f:true needs the complete list j (an empty list for none)');
      return { t: 9, s, f: f.f === true, j, l: optional(f.l, idList, 'l') };
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
