// Over 400 lines: one generator whose frame kinds share its rng, its vectors and the expected-answer rules they must agree on.
import { isUtf8 } from 'node:buffer';
import { readdirSync, readFileSync } from 'node:fs';
import type { ErrorCode } from '../../proto/errors.js';
import { HOSTILE_STRINGS, PROTOTYPE_NAMES, isAttrName, isProtocolId, isStr, paramsWithinLimits } from './hostile.js';
import { MpFloat, MpInt, MpMap, MpRaw, fromHex, pack, scan, topLevelValues, unpackStrict, type IntForm, type Token } from './msgpack.js';
import type { Rng } from './rng.js';

/**
 * The hub-wire generator: random msgpack values, mutations of the valid vectors of
 * proto/vectors/, structural attacks (deep nesting, huge declared lengths, extension types, 0xc1,
 * frames around the welcome's `max`), well-formed frames with hostile ids and keys, the invalid
 * vectors, and valid frames in every integer form a hub may use. Frames whose answer the protocol
 * fixes carry that answer (`expect`), computed from PROTOCOL.md by the fuzzer's own rules.
 */

export interface ValidVector {
  name: string;
  direction: 'hub-to-server' | 'server-to-hub';
  hex: string;
  frame: Record<string, unknown>;
}
export interface InvalidVector {
  name: string;
  hex: string;
  error: ErrorCode;
  field: string | null;
}
export interface Vectors {
  valid: ValidVector[];
  invalid: InvalidVector[];
}

/** proto/vectors/*.json's frames (those with bytes: not handshake.json's headers), so a new vector file is fuzzed unasked. */
export function loadVectors(): Vectors {
  const dir = new URL('../../proto/vectors/', import.meta.url);
  const valid: ValidVector[] = [];
  let invalid: InvalidVector[] = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.json')).sort()) {
    const cases = JSON.parse(readFileSync(new URL(file, dir), 'utf8')) as unknown[];
    if (file === 'invalid.json') invalid = cases as InvalidVector[];
    else valid.push(...(cases as ValidVector[]).filter((c) => typeof c.hex === 'string'));
  }
  return { valid, invalid };
}

/**
 * What the server must answer, in a session, to one frame followed by a heartbeat:
 * `ack` of this frame's `s`; `dup`: the last accepted `s` acknowledged again; one error frame of
 * `code`; a heartbeat answer; nothing at all; an error frame then a close of `code`; or the
 * connection dropped (beyond 4 × max).
 */
export type Outcome =
  | { kind: 'ack' }
  | { kind: 'dup' }
  | { kind: 'error'; code: ErrorCode; ref?: number }
  | { kind: 'heartbeat' }
  | { kind: 'none' }
  | { kind: 'close'; code: number; error?: ErrorCode }
  | { kind: 'dropped' };

export interface GenFrame {
  /** what produced it, e.g. `mutate:lenfield`, `hostile:report.device` */
  klass: string;
  data: Uint8Array | string;
  /** the protocol's answer (any one of these); absent when the protocol does not fix it */
  expect?: Outcome[];
  /** a valid frame other than hello: before hello it must get `hello_required` and close 1002 */
  validFrame?: boolean;
  /** the sequence number it carries, when the generator chose one */
  seq?: number;
  /** bytes beyond 4 × max: the server may drop the connection without a close code */
  overHardCap?: boolean;
  /** the hostile value in it, for grouping findings */
  tag?: string;
  /** sent without checking `expect` (the sequence moved since it was drawn); a heartbeat answer is still awaited */
  unchecked?: boolean;
}

export interface GenContext {
  /** largest frame from welcome */
  max: number;
  /** the last sequence number the server acknowledged in this session (0: none) */
  known: number;
}

const KNOWN_KEYS = ['t', 's', 'r', 'd', 'e', 'p', 'ts', 'id', 'ok', 'msg', 'j', 'l', 'f', 'c', 'tmp', 'ref', 'v', 'b', 'fw', 'after', 'url'];
const INTERESTING_INTS = [0, 1, -1, 31, 32, 127, 128, 255, 256, 65535, 65536, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, 2 ** 53, -32, -33, -128, -129, -32768, -(2 ** 31), -(2 ** 53)];
const INTERESTING_BIGINTS = [2n ** 64n - 1n, 2n ** 53n + 1n, -(2n ** 63n), 2n ** 63n];
const INTERESTING_FLOATS = [0.5, -0, NaN, Infinity, -Infinity, 1e308, 5e-324, 3, 1.5, 2 ** 53 + 2];
const INTERESTING_BYTES = [0x00, 0x01, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc7, 0xca, 0xcb, 0xcc, 0xcf, 0xd3, 0xd4, 0xd8, 0xd9, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff];
const FRAME_TYPES = [1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0, 13, 99, 255, -1, 2 ** 32, 2 ** 53];
const MAX_SEQ = 2 ** 52;
/** How far below the last accepted number a duplicate may go (PROTOCOL.md §3); further back is `invalid_field`. */
const RESEND_WINDOW = 65_536;

/** Byte ranges of a scalar value token (header and payload). */
function tokenEnd(t: Token): number {
  return t.pos + t.headerLen + (t.kind === 'str' || t.kind === 'bin' || t.kind === 'ext' ? t.length : 0);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

/** True when msgpackr could read this frame as a heartbeat (its answer would look like the barrier's). */
export function heartbeatLike(b: Uint8Array): boolean {
  return topLevelValues(b, 't').some((t) => t === 3);
}

/** `{t:3}`: the barrier after each window; the server answers it with a heartbeat. */
export const BARRIER = pack(new MpMap([['t', 3]]));

export class HubFrameGen {
  private deviceCounter = 0;

  constructor(
    private readonly rng: Rng,
    private readonly vectors: Vectors,
    /** prefix of device ids this generator invents */
    private readonly devicePrefix: string,
  ) {}

  /** The next frame of the fuzz mix. */
  next(ctx: GenContext): GenFrame {
    const category = this.rng.weighted([
      [10, 'random'],
      [32, 'mutate'],
      [9, 'structure'],
      [22, 'hostile'],
      [6, 'result'],
      [3, 'text'],
      [8, 'invalid-vector'],
      [6, 'int-forms'],
      [2, 'heartbeat'],
      [2, 'sequence'],
    ] as const);
    switch (category) {
      case 'random':
        return this.random();
      case 'mutate':
        return this.mutate();
      case 'structure':
        return this.structure(ctx);
      case 'hostile':
        return this.hostile(ctx);
      case 'result':
        return this.result();
      case 'text':
        return this.text(ctx);
      case 'invalid-vector':
        return this.invalidVector();
      case 'int-forms':
        return this.intForms(ctx);
      case 'heartbeat':
        return this.heartbeat();
      case 'sequence':
        return this.sequence(ctx);
    }
  }

  /** A hello for the handshake, sometimes a hostile one with the protocol's answer. */
  hello(boot: string): { klass: string; data: Uint8Array; welcome: boolean; error?: ErrorCode; orWelcome?: boolean } {
    const variant = this.rng.weighted([
      [90, 'plain'],
      [2, 'boot'],
      [2, 'fw'],
      [2, 'version'],
      [2, 'forms'],
      [2, 'unknown-key'],
    ] as const);
    switch (variant) {
      case 'plain':
        return { klass: 'hello', data: pack(new MpMap([['t', 1], ['v', 1], ['b', boot]])), welcome: true };
      case 'boot': {
        const b = this.hostileString();
        return { klass: 'hello:boot', data: pack(new MpMap([['t', 1], ['v', 1], ['b', b]])), ...(isStr(b, 64) ? { welcome: true } : { welcome: false, error: 'invalid_field' as const }) };
      }
      case 'fw': {
        // a bad fw is dropped, not refused (PROTOCOL.md §2.2), unless its bytes break a rule of §1
        const data = pack(new MpMap([['t', 1], ['v', 1], ['b', boot], ['fw', this.hostileString()]]));
        return { klass: 'hello:fw', data, ...(breaksWireRules(data) ? { welcome: false, error: 'invalid_field' as const } : { welcome: true }) };
      }
      case 'version': {
        const v = this.rng.pick([0, 2, 255, 2 ** 32] as const);
        return { klass: 'hello:version', data: pack(new MpMap([['t', 1], ['v', v], ['b', boot]])), welcome: false, error: 'unsupported_version' };
      }
      case 'forms': {
        const v = this.rng.pick([new MpInt(1, 'u64'), new MpInt(1, 'i64'), new MpInt(1, 'u16'), new MpFloat(1, 64)]);
        return { klass: 'hello:int-forms', data: pack(new MpMap([['t', new MpInt(1, this.rng.pick(['u8', 'i32', 'u64'] as const))], ['v', v], ['b', boot]])), welcome: true };
      }
      case 'unknown-key': {
        const k = this.hostileString();
        const data = pack(new MpMap([['t', 1], ['v', 1], ['b', boot], [k, this.randomValue(1, true)]]));
        // unknown keys are ignored, but a __proto__ key anywhere is refused (PROTOCOL.md §1); the
        // string may also be a value in the random part: then either answer is right
        // so is a value breaking a rule of §1 (invalid UTF-8, an integer out of range, a key not a
        // string), and a key given twice at the top (t, v, b)
        const refused = k === '__proto__' || k === 't' || k === 'v' || k === 'b' || breaksWireRules(data);
        const proto = refused ? 'refused' : Buffer.from(data).includes(PROTO_STR) ? 'either' : 'no';
        return { klass: 'hello:unknown-key', data, ...(proto === 'no' ? { welcome: true } : { welcome: false, error: 'invalid_field' as const, ...(proto === 'either' ? { orWelcome: true } : {}) }) };
      }
    }
  }

  /**
   * A valid report of new devices (a hub growing its device set), within the per-frame limits;
   * ids and attribute names are sometimes hostile but valid (`toString`, `valueOf`, `__proto_`).
   * Past GROW_LIMIT devices it reports changes of devices it already has.
   */
  grow(ctx: GenContext): GenFrame & { devices: Record<string, Record<string, unknown>> } {
    const count = this.rng.weighted([
      [50, 1],
      [25, 8],
      [15, 32],
      [7, 128],
      [3, 256],
    ] as const);
    const r: Record<string, Record<string, unknown>> = Object.create(null) as Record<string, Record<string, unknown>>;
    const entries: Array<[string, MpMap]> = [];
    let size = 0;
    for (let i = 0; i < count; i++) {
      const fresh = this.deviceCounter < GROW_LIMIT;
      const id = this.rng.chance(0.003) ? this.rng.pick(VALID_HOSTILE_IDS) : `${this.devicePrefix}${fresh ? ++this.deviceCounter : 1 + this.rng.int(this.deviceCounter)}`;
      if (Object.hasOwn(r, id)) continue;
      const attrs: Array<[string, unknown]> = [];
      const n = this.rng.range(1, 4);
      for (let k = 0; k < n; k++) {
        const name = this.rng.chance(0.03) ? this.rng.pick(VALID_HOSTILE_ATTRS) : this.rng.pick(['on', 'level', 'temperature', 'battery', 'open', 'mode']);
        if (attrs.some(([a]) => a === name)) continue;
        attrs.push([name, this.rng.pick([true, false, this.rng.int(100), this.rng.float() * 40 - 10, this.rng.pick(['idle', 'heat', 'cool'])])]);
      }
      size += id.length + 24 * attrs.length;
      if (size > ctx.max - 512) break;
      r[id] = Object.fromEntries(attrs);
      entries.push([id, new MpMap(attrs)]);
    }
    const s = this.nextSeq(ctx);
    const odd = Object.keys(r).filter((id) => !id.startsWith(this.devicePrefix));
    return {
      klass: 'grow:report',
      ...(odd.length ? { tag: odd.map((x) => JSON.stringify(x)).join('+') } : {}),
      data: pack(new MpMap([['t', 4], ['s', s], ['r', new MpMap(entries)]])),
      // past the node's per-hub limits the report is refused whole (and consumed: PROTOCOL.md §3)
      expect: [{ kind: 'ack' }, { kind: 'error', code: 'limit_exceeded' }],
      validFrame: true,
      seq: s,
      devices: r,
    };
  }

  private nextSeq(ctx: GenContext): number {
    return ctx.known + 1;
  }

  /** Sequence number for an oracle frame: usually the next, sometimes a duplicate or a gap. */
  private seqFor(ctx: GenContext): { s: number; expect: Outcome } {
    const mode = this.rng.weighted([
      [88, 'next'],
      [6, 'dup'],
      [6, 'gap'],
    ] as const);
    const skip = this.rng.range(2, 6);
    if (ctx.known === 0 || mode === 'next') return { s: ctx.known + 1, expect: { kind: 'ack' } };
    if (mode === 'dup') return { s: Math.max(1, ctx.known - (skip - 2)), expect: { kind: 'dup' } };
    return { s: ctx.known + skip, expect: { kind: 'error', code: 'sequence_gap', ref: ctx.known + 1 } };
  }

  // ---- (a) random values ----

  private random(): GenFrame {
    for (let attempt = 0; attempt < 8; attempt++) {
      const v = this.rng.chance(0.75) ? this.randomFrameMap() : this.randomValue(0, false);
      const data = pack(v);
      if (!heartbeatLike(data)) return { klass: 'random', data };
    }
    return { klass: 'random', data: pack([]) };
  }

  private randomFrameMap(): MpMap {
    const entries: Array<[unknown, unknown]> = [['t', this.rng.pick(FRAME_TYPES)]];
    const n = this.rng.range(0, 6);
    for (let i = 0; i < n; i++) entries.push([this.rng.chance(0.8) ? this.rng.pick(KNOWN_KEYS) : this.hostileString(), this.randomValue(1, false)]);
    if (this.rng.chance(0.3)) entries.reverse();
    return new MpMap(entries);
  }

  /** Any plain msgpack value; `stringKeys` keeps map keys strings (msgpackr turns others into strings or refuses them). */
  randomValue(depth: number, stringKeys: boolean): unknown {
    const kind = this.rng.weighted([
      [6, 'nil'],
      [6, 'bool'],
      [14, 'int'],
      [4, 'bigint'],
      [4, 'int-form'],
      [6, 'float'],
      [16, 'string'],
      [3, 'bad-utf8'],
      [4, 'bin'],
      [depth < 5 ? 10 : 0, 'array'],
      [depth < 5 ? 12 : 0, 'map'],
      [depth < 5 && !stringKeys ? 3 : 0, 'odd-keys'],
    ] as const);
    switch (kind) {
      case 'nil':
        return null;
      case 'bool':
        return this.rng.chance(0.5);
      case 'int':
        return this.rng.chance(0.7) ? this.rng.pick(INTERESTING_INTS) : this.rng.u32() - 2 ** 31;
      case 'bigint':
        return this.rng.pick(INTERESTING_BIGINTS);
      case 'int-form':
        return new MpInt(this.rng.pick(INTERESTING_INTS), this.rng.pick(['u8', 'u16', 'u32', 'u64', 'i8', 'i16', 'i32', 'i64'] as const));
      case 'float':
        return new MpFloat(this.rng.pick(INTERESTING_FLOATS), this.rng.chance(0.3) ? 32 : 64);
      case 'string':
        return this.rng.chance(0.5) ? this.hostileString() : this.rng.text(this.rng.int(40), 'abcXYZ019-_.*> üΩ😀\u0000');
      case 'bad-utf8':
        return new MpRaw(concat(new Uint8Array([0xa0 | 3]), this.rng.pick([new Uint8Array([0xff, 0xfe, 0xfd]), new Uint8Array([0xc0, 0xaf, 0x41]), new Uint8Array([0xed, 0xa0, 0x80])])));
      case 'bin':
        return this.rng.bytes(this.rng.int(17));
      case 'array': {
        const n = this.rng.int(5);
        return Array.from({ length: n }, () => this.randomValue(depth + 1, stringKeys));
      }
      case 'map': {
        const n = this.rng.int(5);
        const entries: Array<[unknown, unknown]> = [];
        for (let i = 0; i < n; i++) entries.push([this.rng.chance(0.5) ? this.hostileString() : this.rng.pick(KNOWN_KEYS), this.randomValue(depth + 1, stringKeys)]);
        return new MpMap(entries);
      }
      case 'odd-keys': {
        const key = this.rng.pick<unknown>([1, -1, null, true, 1.5, [1], new MpMap([['a', 1]]), new Uint8Array([0x74])]);
        return new MpMap([[key, this.randomValue(depth + 1, stringKeys)]]);
      }
    }
  }

  private hostileString(): string {
    return this.rng.chance(0.85) ? this.rng.pick(HOSTILE_STRINGS) : this.rng.text(this.rng.range(1, 70), 'aZ09-_.*>%/ \u0000üΩ😀');
  }

  // ---- (b) mutations of the vectors ----

  private mutate(): GenFrame {
    const seed = this.rng.pick(this.vectors.valid);
    for (let attempt = 0; attempt < 8; attempt++) {
      let b = fromHex(seed.hex);
      const ops: string[] = [];
      const n = this.rng.range(1, 3);
      for (let i = 0; i < n; i++) {
        const [op, out] = this.mutateOnce(b);
        ops.push(op);
        b = out;
      }
      if (!heartbeatLike(b)) return { klass: `mutate:${ops[0]}`, data: b };
    }
    return { klass: 'mutate:none', data: fromHex(this.rng.pick(this.vectors.invalid).hex) };
  }

  private mutateOnce(b: Uint8Array): [string, Uint8Array] {
    const tokens = scan(b);
    const op = this.rng.weighted([
      [10, 'bitflip'],
      [8, 'byteset'],
      [8, 'truncate'],
      [4, 'append'],
      [4, 'insert'],
      [4, 'delete'],
      [tokens ? 14 : 0, 'lenfield'],
      [tokens ? 10 : 0, 'typeswap'],
      [tokens ? 6 : 0, 'ext'],
      [tokens ? 5 : 0, 'c1'],
      [4, 'splice'],
      [tokens ? 5 : 0, 'dupkey'],
      [tokens ? 5 : 0, 'hugelen'],
    ] as const);
    const out = new Uint8Array(b);
    const pos = () => this.rng.int(Math.max(1, b.length));
    switch (op) {
      case 'bitflip': {
        if (b.length === 0) return [op, new Uint8Array([this.rng.u32() & 0xff])];
        const flips = this.rng.range(1, 4);
        for (let i = 0; i < flips; i++) {
          const bit = this.rng.int(b.length * 8);
          out[bit >> 3]! ^= 1 << (bit & 7);
        }
        return [op, out];
      }
      case 'byteset':
        if (b.length === 0) return [op, new Uint8Array([this.rng.pick(INTERESTING_BYTES)])];
        out[pos()] = this.rng.pick(INTERESTING_BYTES);
        return [op, out];
      case 'truncate':
        return [op, b.slice(0, this.rng.int(Math.max(1, b.length)))];
      case 'append':
        return [op, concat(b, this.rng.chance(0.5) ? this.rng.bytes(this.rng.range(1, 8)) : pack(this.randomValue(2, false)))];
      case 'insert': {
        const p = pos();
        return [op, concat(b.slice(0, p), this.rng.bytes(this.rng.range(1, 4)), b.slice(p))];
      }
      case 'delete': {
        const p = pos();
        return [op, concat(b.slice(0, p), b.slice(p + this.rng.range(1, 8)))];
      }
      case 'lenfield': {
        const candidates = tokens!.filter((t) => t.kind === 'str' || t.kind === 'bin' || t.kind === 'array' || t.kind === 'map' || t.kind === 'ext');
        if (candidates.length === 0) return this.flipOne(b);
        const t = this.rng.pick(candidates);
        if (t.lenSize === 0) {
          // fix types: the length is in the low bits of the type byte
          const mask = t.kind === 'str' ? 0x1f : 0x0f;
          out[t.pos] = (out[t.pos]! & ~mask) | (this.rng.int(mask + 1) & mask);
          return [op, out];
        }
        const fieldMax = 2 ** (8 * t.lenSize) - 1;
        const n = this.rng.pick([0, Math.max(0, t.length - 1), t.length + 1, fieldMax, fieldMax - 1, this.rng.int(fieldMax + 1)]);
        for (let i = t.lenSize - 1; i >= 0; i--) out[t.lenPos + (t.lenSize - 1 - i)] = Math.floor(n / 2 ** (8 * i)) & 0xff;
        return [op, out];
      }
      case 'typeswap': {
        const t = this.rng.pick(tokens!);
        const c = t.byte;
        const swaps: Record<number, number[]> = {
          0xcb: [0xcf, 0xd3], 0xcf: [0xcb, 0xd3], 0xd3: [0xcb, 0xcf], 0xca: [0xce, 0xd2], 0xce: [0xca, 0xd2], 0xd2: [0xca, 0xce],
          0xcc: [0xd0], 0xd0: [0xcc], 0xcd: [0xd1], 0xd1: [0xcd], 0xd9: [0xc4, 0xc7], 0xc4: [0xd9], 0xda: [0xc5, 0xc8], 0xc5: [0xda],
          0xdb: [0xc6, 0xc9], 0xc6: [0xdb], 0xdc: [0xde], 0xde: [0xdc], 0xdd: [0xdf], 0xdf: [0xdd], 0xc0: [0xc2, 0xc3, 0xc1], 0xc2: [0xc0, 0xc3], 0xc3: [0xc2, 0xc0],
        };
        let next: number;
        if (swaps[c]) next = this.rng.pick(swaps[c]!);
        else if (c >= 0x80 && c <= 0x8f) next = 0x90 | (c & 0x0f);
        else if (c >= 0x90 && c <= 0x9f) next = 0x80 | (c & 0x0f);
        else if (c >= 0xa0 && c <= 0xbf) next = this.rng.chance(0.5) ? 0x90 | (c & 0x0f) : 0x80 | (c & 0x0f);
        else next = this.rng.pick([0xc0, 0xc2, 0xc3, 0xa0, 0x90, 0x80]);
        out[t.pos] = next;
        return [op, out];
      }
      case 'ext':
      case 'c1':
      case 'hugelen': {
        const scalars = tokens!.filter((t) => t.kind !== 'array' && t.kind !== 'map' && t.pos > 0);
        if (scalars.length === 0) return this.flipOne(b);
        const t = this.rng.pick(scalars);
        const replacement = op === 'ext' ? this.extValue() : op === 'c1' ? new Uint8Array([0xc1]) : this.hugeLength();
        return [op, concat(b.slice(0, t.pos), replacement, b.slice(tokenEnd(t)))];
      }
      case 'splice': {
        const other = fromHex(this.rng.pick(this.vectors.valid).hex);
        return [op, concat(b.slice(0, pos()), other.slice(this.rng.int(Math.max(1, other.length))))];
      }
      case 'dupkey': {
        const top = tokens![0]!;
        if (top.kind !== 'map' || top.lenSize !== 0 || top.length >= 15) return this.flipOne(b);
        out[0] = 0x80 | (top.length + 1);
        return [op, concat(out, pack('t'), pack(this.rng.pick(FRAME_TYPES.filter((t) => t !== 3))))];
      }
    }
  }

  private flipOne(b: Uint8Array): [string, Uint8Array] {
    if (b.length === 0) return ['bitflip', new Uint8Array([0xc1])];
    const out = new Uint8Array(b);
    const bit = this.rng.int(b.length * 8);
    out[bit >> 3]! ^= 1 << (bit & 7);
    return ['bitflip', out];
  }

  /** An extension value: fixext 1..16, ext 8, timestamp (-1) among them. */
  private extValue(): Uint8Array {
    const type = this.rng.pick([-1, 0, 1, 0x7f, -128, 0x65]) & 0xff;
    const form = this.rng.pick([0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xc7] as const);
    const size = { 0xd4: 1, 0xd5: 2, 0xd6: 4, 0xd7: 8, 0xd8: 16, 0xc7: 3 }[form];
    const head = form === 0xc7 ? [0xc7, size, type] : [form, type];
    return concat(new Uint8Array(head), this.rng.bytes(size));
  }

  /** A header that declares far more than the frame holds. */
  private hugeLength(): Uint8Array {
    const head = this.rng.pick([0xdb, 0xc6, 0xdd, 0xdf, 0xc9] as const);
    const n = this.rng.pick([0xffffffff, 0x7fffffff, 0x10000000, 65536]);
    return concat(new Uint8Array([head, (n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]), this.rng.bytes(this.rng.int(6)));
  }

  // ---- structural attacks with a known answer ----

  private structure(ctx: GenContext): GenFrame {
    const kind = this.rng.weighted([
      [5, 'deep-array'],
      [4, 'deep-map'],
      [3, 'deep-attr'],
      [4, 'hugelen'],
      [4, 'ext'],
      [3, 'c1'],
      [6, 'size'],
    ] as const);
    const dev = new MpMap([['dev-1', new MpMap([['on', true]])]]);
    switch (kind) {
      case 'deep-array':
      case 'deep-map': {
        // nested `depth` deep in an unknown key: unknown keys are ignored, so the frame is valid,
        // unless the server refuses such nesting as malformed; either way it must answer
        const room = ctx.max - 64;
        const unit = kind === 'deep-array' ? 1 : 3;
        const depth = Math.min(this.rng.pick([64, 500, 2_000, 5_000, 20_000]), Math.floor(room / unit));
        const nest = kind === 'deep-array' ? concat(new Uint8Array(depth).fill(0x91), new Uint8Array([0xc0])) : concat(repeat(new Uint8Array([0x81, 0xa1, 0x61]), depth), new Uint8Array([0xc0]));
        const { s, expect } = this.seqFor(ctx);
        return {
          klass: `structure:${kind}`,
          data: pack(new MpMap([['t', 4], ['s', s], ['r', dev], ['x', new MpRaw(nest)]])),
          expect: [expect, { kind: 'error', code: 'malformed_frame' }],
          validFrame: true,
          seq: s,
        };
      }
      case 'deep-attr': {
        const depth = this.rng.pick([2, 100, 2_000]);
        const nest = concat(new Uint8Array(depth).fill(0x91), new Uint8Array([0xc0]));
        return {
          klass: 'structure:deep-attr',
          data: pack(new MpMap([['t', 4], ['s', ctx.known + 1], ['r', new MpMap([['dev-1', new MpMap([['a', new MpRaw(nest)]])]])]])),
          expect: [{ kind: 'error', code: 'invalid_field' }, { kind: 'error', code: 'malformed_frame' }],
        };
      }
      case 'hugelen':
      case 'ext':
      case 'c1': {
        const bad = kind === 'hugelen' ? this.hugeLength() : kind === 'ext' ? this.extValue() : new Uint8Array([0xc1]);
        const where = this.rng.pick(['attr', 'unknown-key', 'ts', 'top'] as const);
        const s = ctx.known + 1;
        const data =
          where === 'top'
            ? bad
            : where === 'attr'
              ? pack(new MpMap([['t', 4], ['s', s], ['r', new MpMap([['dev-1', new MpMap([['a', new MpRaw(bad)]])]])]]))
              : where === 'ts'
                ? pack(new MpMap([['t', 4], ['s', s], ['r', dev], ['ts', new MpRaw(bad)]]))
                : pack(new MpMap([['t', 4], ['s', s], ['r', dev], ['x', new MpRaw(bad)]]));
        // an extension type is well-formed msgpack: refused with the frame's s, which is consumed (§3);
        // bytes that are not msgpack (a huge length, 0xc1) name no frame
        if (kind === 'ext' && where !== 'top') return { klass: `structure:${kind}:${where}`, data, expect: [{ kind: 'error', code: 'malformed_frame', ref: s }], seq: s };
        return { klass: `structure:${kind}:${where}`, data, expect: [{ kind: 'error', code: 'malformed_frame' }] };
      }
      case 'size':
        return this.sized(ctx);
    }
  }

  /** A valid report padded to a size around the welcome's `max` and its 4 × max hard cap. */
  private sized(ctx: GenContext): GenFrame {
    const max = ctx.max;
    const target = this.rng.weighted([
      [3, max - 1],
      [3, max],
      [6, max + 1],
      [2, max + 2],
      [2, max + 100],
      [2, 2 * max],
      [2, 4 * max],
      [2, 4 * max + 1],
      [1, 4 * max + 1000],
    ] as const);
    const { s, expect } = this.seqFor(ctx);
    const build = (padLen: number) => pack(new MpMap([['t', 4], ['s', s], ['r', new MpMap([['dev-1', new MpMap([['on', true]])]])], ['pad', 'p'.repeat(padLen)]]));
    let pad = Math.max(0, target - build(0).length);
    let data = build(pad);
    for (let i = 0; i < 4 && data.length !== target; i++) {
      pad = Math.max(0, pad + (target - data.length));
      data = build(pad);
    }
    const size = data.length;
    const klass = `structure:size:${size <= max ? 'within' : size <= 4 * max ? 'over-max' : 'over-4max'}`;
    if (size <= max) return { klass, data, expect: [expect], validFrame: true, seq: s };
    if (size <= 4 * max) return { klass, data, expect: [{ kind: 'close', code: 1009, error: 'frame_too_large' }] };
    return { klass, data, expect: [{ kind: 'dropped' }], overHardCap: true };
  }

  // ---- (c) well-formed frames with hostile ids and keys ----

  private hostile(ctx: GenContext): GenFrame {
    const where = this.rng.weighted([
      [6, 'report.device'],
      [6, 'report.attr'],
      [2, 'report.value'],
      [4, 'event.device'],
      [3, 'event.name'],
      [4, 'event.param'],
      [3, 'devices.join.d'],
      [2, 'devices.join.k'],
      [2, 'devices.join.m'],
      [3, 'devices.left'],
      [2, 'result.e'],
      [2, 'result.r'],
      [2, 'error.e'],
      [3, 'top.key'],
    ] as const);
    const h = this.hostileString();
    const { s, expect } = this.seqFor(ctx);
    const tag = JSON.stringify(h.length > 24 ? `${h.slice(0, 12)}…(${h.length})` : h);
    const sequenced = (fields: Array<[unknown, unknown]>, valid: boolean, t: number): GenFrame => ({
      klass: `hostile:${where}`,
      tag,
      data: pack(new MpMap([['t', t], ['s', s], ...fields])),
      expect: valid ? [expect] : [{ kind: 'error', code: 'invalid_field' }],
      validFrame: valid,
      seq: s,
    });
    const plainAttrs = new MpMap([['on', true]]);
    switch (where) {
      case 'report.device':
        return sequenced([['r', new MpMap([[h, plainAttrs]])]], isProtocolId(h), 4);
      case 'report.attr':
        return sequenced([['r', new MpMap([['dev-1', new MpMap([[h, 1]])]])]], isAttrName(h), 4);
      case 'report.value':
        // §8 Attrs: a string value of up to 1024 characters (whether "" is one is left open: not sent)
        return sequenced([['r', new MpMap([['dev-1', new MpMap([['note', h || '-']])]])]], isStr(h || '-', 1024), 4);
      case 'event.device':
        return sequenced([['d', h], ['e', 'press']], isProtocolId(h), 5);
      case 'event.name':
        return sequenced([['d', 'button-1'], ['e', h]], isStr(h, 64), 5);
      case 'event.param':
        return sequenced([['d', 'button-1'], ['e', 'press'], ['p', new MpMap([[h, 1]])]], isAttrName(h), 5);
      case 'devices.join.d':
        return sequenced([['j', [new MpMap([['d', h], ['k', 'switch']])]]], isProtocolId(h), 9);
      case 'devices.join.k':
        return sequenced([['j', [new MpMap([['d', 'dev-2'], ['k', h]])]]], isStr(h, 64), 9);
      case 'devices.join.m':
        return sequenced([['j', [new MpMap([['d', 'dev-2'], ['k', 'switch'], ['m', h]])]]], isStr(h, 64), 9);
      case 'devices.left':
        return sequenced([['l', [h]]], isProtocolId(h), 9);
      case 'top.key': {
        // unknown keys are ignored (§1); a reserved name may also be refused
        const frame = sequenced([['r', new MpMap([['dev-1', plainAttrs]])], [h, 1]], true, 4);
        if (h === '__proto__' || h === 'constructor' || h === 'prototype') frame.expect!.push({ kind: 'error', code: 'invalid_field' });
        // a key given twice at the top of a frame is refused (§1)
        if (h === 't' || h === 's' || h === 'r') frame.expect = [{ kind: 'error', code: 'invalid_field', ref: s }];
        return frame;
      }
      case 'result.e': {
        // an empty e reads as none (§5)
        const valid = h === '' || isStr(h, 64);
        return { klass: `hostile:${where}`, tag, data: pack(new MpMap([['t', 8], ['id', this.unknownCommandId()], ['ok', false], ['e', h]])), expect: [valid ? { kind: 'none' } : { kind: 'error', code: 'invalid_field' }], validFrame: valid };
      }
      case 'result.r': {
        const data = pack(new MpMap([['t', 8], ['id', this.unknownCommandId()], ['ok', true], ['r', new MpMap([[h, this.randomValue(2, true)]])]]));
        return { klass: `hostile:${where}`, tag, data, expect: protoKeyAware(data, resultLimitsAware(data, [{ kind: 'none' }])), validFrame: true };
      }
      case 'error.e': {
        const valid = isStr(h, 64);
        return { klass: `hostile:${where}`, tag, data: pack(new MpMap([['t', 10], ['c', 103], ['e', h], ['tmp', false]])), expect: [valid ? { kind: 'none' } : { kind: 'error', code: 'invalid_field' }], validFrame: valid };
      }
    }
  }

  /** The fuzz hubs never receive commands, so every id is unknown; a result for it is ignored. */
  private unknownCommandId(): number {
    return this.rng.pick([0, 1, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 53 - 1, this.rng.u32()]);
  }

  // ---- (e) results for unknown commands, text frames ----

  private result(): GenFrame {
    const ok = this.rng.chance(0.5);
    const entries: Array<[unknown, unknown]> = [['t', 8], ['id', this.unknownCommandId()], ['ok', ok]];
    if (ok && this.rng.chance(0.8)) entries.push(['r', this.rng.chance(0.1) ? new MpRaw(concat(new Uint8Array(1_000).fill(0x91), new Uint8Array([0xc0]))) : this.randomValue(0, true)]);
    if (!ok) entries.push(['e', this.rng.pick(['unknown_device', 'command_failed', 'invalid_field', 'not_a_code', 'x'.repeat(64)])]);
    if (this.rng.chance(0.3)) entries.push(['msg', this.rng.pick(['stalled', 'ü', 'x'.repeat(1024)])]);
    const data = pack(new MpMap(entries));
    const deep = entries.some(([k, v]) => k === 'r' && v instanceof MpRaw);
    // raw values are deep nests (malformed past 32 levels) or strings that are not UTF-8 (invalid_field)
    const expect: Outcome[] = breaksWireRules(data) ? [{ kind: 'error', code: 'invalid_field' }] : deep ? [{ kind: 'none' }, { kind: 'error', code: 'malformed_frame' }] : resultLimitsAware(data, [{ kind: 'none' }]);
    return { klass: 'result:unknown-id', data, expect: protoKeyAware(data, expect), validFrame: true };
  }

  private text(ctx: GenContext): GenFrame {
    const body = this.rng.pick(['', '{"t":3}', '{"t":4,"s":1,"r":{}}', 'hello', '\u0000', 'ü😀', Buffer.from(this.rng.pick(this.vectors.valid).hex, 'hex').toString('latin1'), 'x'.repeat(Math.min(ctx.max, 4_000))]);
    return { klass: 'text', data: body, expect: [{ kind: 'error', code: 'malformed_frame' }] };
  }

  private invalidVector(): GenFrame {
    const v = this.rng.pick(this.vectors.invalid);
    return { klass: `invalid-vector:${v.error}`, data: fromHex(v.hex), expect: [{ kind: 'error', code: v.error }] };
  }

  // ---- valid frames in other integer forms (§1 Numbers: any integer form, or a float64 holding an integer) ----

  private intForms(ctx: GenContext): GenFrame {
    const seeds = this.vectors.valid.filter((v) => v.direction === 'hub-to-server' && [3, 4, 5, 8, 9, 10].includes(v.frame.t as number));
    const v = this.rng.pick(seeds);
    const t = v.frame.t as number;
    const sequencedType = t === 4 || t === 5 || t === 9;
    const { s, expect } = this.seqFor(ctx);
    const convert = (x: unknown, key: string | null): unknown => {
      if (key === 's' && sequencedType) x = s;
      if (typeof x === 'number') {
        if (Number.isInteger(x)) return this.intForm(x);
        return this.rng.chance(0.3) ? new MpFloat(x, 64) : x;
      }
      if (Array.isArray(x)) return x.map((y) => convert(y, null));
      if (x !== null && typeof x === 'object') return new MpMap(Object.entries(x).map(([k, y]) => [k, convert(y, k)]));
      return x;
    };
    const data = pack(convert(v.frame, null));
    const answer: Outcome = t === 3 ? { kind: 'heartbeat' } : sequencedType ? expect : { kind: 'none' };
    return { klass: `int-forms:${t}`, data, expect: [answer], validFrame: true, seq: sequencedType ? s : undefined };
  }

  private intForm(n: number): unknown {
    const forms: IntForm[] = [];
    if (n >= 0 && n < 2 ** 8) forms.push('u8');
    if (n >= 0 && n < 2 ** 16) forms.push('u16');
    if (n >= 0 && n < 2 ** 32) forms.push('u32');
    if (n >= 0) forms.push('u64');
    if (n >= -128 && n < 128) forms.push('i8');
    if (n >= -32768 && n < 32768) forms.push('i16');
    if (n >= -(2 ** 31) && n < 2 ** 31) forms.push('i32');
    forms.push('i64');
    if (this.rng.chance(0.2)) return new MpFloat(n, 64);
    return new MpInt(n, this.rng.pick(forms));
  }

  private heartbeat(): GenFrame {
    // clocks from the seed, not from Date.now(): the same seed gives the same bytes
    const clock = 1_700_000_000_000 + this.rng.int(2 ** 30);
    const ts = this.rng.pick<unknown>([undefined, null, 0, 1, clock, 2 ** 53 - 1, new MpInt(clock, 'u64'), new MpFloat(clock, 64), -1, 1.5, 2 ** 53, 'x', [], new MpFloat(NaN, 64)]);
    const entries: Array<[unknown, unknown]> = [['t', 3]];
    if (ts !== undefined) entries.push(['ts', ts]);
    // a bad ts is dropped: the heartbeat is answered (PROTOCOL.md §4), unless its bytes break a rule of §1
    const data = pack(new MpMap(entries));
    const valid = !breaksWireRules(data);
    return { klass: 'heartbeat', data, expect: [valid ? { kind: 'heartbeat' } : { kind: 'error', code: 'invalid_field' }], validFrame: valid };
  }

  /** Sequence numbers at their edges: duplicates, gaps, 0, beyond 2^53. */
  private sequence(ctx: GenContext): GenFrame {
    const dev = new MpMap([['dev-1', new MpMap([['on', this.rng.chance(0.5)]])]]);
    const edge = this.rng.pick(['zero', 'negative', 'fraction', 'huge', 'gap', 'dup'] as const);
    const report = (s: unknown) => pack(new MpMap([['t', 4], ['s', s], ['r', dev]]));
    switch (edge) {
      case 'zero':
        // 0 is never above the last accepted number (≥ 0): a duplicate, or past the resend window a counter that wrapped (PROTOCOL.md §3)
        if (ctx.known > RESEND_WINDOW) return { klass: 'sequence:zero', data: report(0), expect: [{ kind: 'error', code: 'invalid_field', ref: 0 }] };
        return { klass: 'sequence:zero', data: report(0), expect: [{ kind: 'dup' }], validFrame: true };
      case 'negative':
        return { klass: 'sequence:negative', data: report(-1), expect: [{ kind: 'error', code: 'invalid_field' }] };
      case 'fraction':
        return { klass: 'sequence:fraction', data: report(new MpFloat(ctx.known + 1.5, 64)), expect: [{ kind: 'error', code: 'invalid_field' }] };
      case 'huge':
        return { klass: 'sequence:huge', data: report(new MpInt(2n ** 53n, 'u64')), expect: [{ kind: 'error', code: 'invalid_field' }] };
      case 'gap':
        if (ctx.known === 0 || ctx.known > MAX_SEQ) return this.heartbeat();
        return { klass: 'sequence:gap', data: report(ctx.known + 2), expect: [{ kind: 'error', code: 'sequence_gap', ref: ctx.known + 1 }], validFrame: true, seq: ctx.known + 2 };
      case 'dup':
        if (ctx.known === 0) return this.heartbeat();
        return { klass: 'sequence:dup', data: report(ctx.known), expect: [{ kind: 'dup' }], validFrame: true, seq: ctx.known };
    }
  }
}

/** Hostile names that are valid ids: the server must store and return them as plain data. */
export const VALID_HOSTILE_IDS: readonly string[] = [...PROTOTYPE_NAMES.filter((n) => isProtocolId(n)), '__proto_', 'then', 'length', 'a'.repeat(64), '0', '-', '_'];

/** Hostile names that are valid attribute names. */
export const VALID_HOSTILE_ATTRS: readonly string[] = [...PROTOTYPE_NAMES.filter((n) => isAttrName(n)), '__proto_', 'then', '😀', 'a b', 'x.y'];

function repeat(unit: Uint8Array, n: number): Uint8Array {
  const out = new Uint8Array(unit.length * n);
  for (let i = 0; i < n; i++) out.set(unit, i * unit.length);
  return out;
}

/**
 * @default 100_000: devices the growing hub creates at most. Every reconnect of a hub loads its
 * whole shadow, so an unbounded set turns a long run into a benchmark of that copy.
 */
export const GROW_LIMIT = 100_000;

/** Largest sequence number the fuzz keeps using in one session; beyond it a hub reconnects with a new boot id. */
export const SEQ_LIMIT = MAX_SEQ;

/**
 * A result's free-form value may hold a `__proto__` key somewhere (random values use hostile
 * keys): the server refuses that with invalid_field (PROTOCOL.md §1). The bytes holding the string
 * suffice here (as a value it is data and gets no answer); the codec tests pin the key case.
 */
function protoKeyAware(data: Uint8Array, expect: Outcome[]): Outcome[] {
  return Buffer.from(data).includes(PROTO_STR) ? [...expect, { kind: 'error', code: 'invalid_field' }] : expect;
}

/**
 * A result's value `r` is held to §1's limits at any depth (names of 1..64 characters, strings ≤
 * 1024): beyond, the server refuses the frame with invalid_field even for no waiting command (§5,
 * §7). A value this decoder cannot read (a duplicate key) may go either way.
 */
function resultLimitsAware(data: Uint8Array, expect: Outcome[]): Outcome[] {
  if (breaksWireRules(data)) return [{ kind: 'error', code: 'invalid_field' }];
  let r: unknown;
  try {
    r = (unpackStrict(data) as Record<string, unknown>).r;
  } catch {
    return [...expect, { kind: 'error', code: 'invalid_field' }];
  }
  return paramsWithinLimits(r, true) ? expect : [{ kind: 'error', code: 'invalid_field' }];
}

/** "__proto__" as a msgpack fixstr */
const PROTO_STR = Buffer.from('a95f5f70726f746f5f5f', 'hex');

/**
 * Whether well-formed bytes break a rule of §1 the server refuses with invalid_field wherever it
 * is: a map key that is not a string, a string that is not UTF-8, an integer past ±(2^53 − 1).
 */
export function breaksWireRules(data: Uint8Array): boolean {
  const tokens = scan(data);
  if (!tokens) return false;
  const open: Array<{ map: boolean; left: number }> = [];
  for (const tok of tokens) {
    const top = open.at(-1);
    if (top) {
      if (top.map && top.left % 2 === 0 && tok.kind !== 'str') return true;
      top.left--;
    }
    const at = tok.pos + tok.headerLen;
    if (tok.kind === 'str' && !isUtf8(data.subarray(at, at + tok.length))) return true;
    if (tok.kind === 'int' && tok.headerLen === 9) {
      const v = tok.byte === 0xd3 ? Buffer.from(data.subarray(tok.pos + 1, tok.pos + 9)).readBigInt64BE() : Buffer.from(data.subarray(tok.pos + 1, tok.pos + 9)).readBigUInt64BE();
      if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) return true;
    }
    if ((tok.kind === 'map' || tok.kind === 'array') && tok.length > 0) open.push({ map: tok.kind === 'map', left: tok.kind === 'map' ? 2 * tok.length : tok.length });
    while (open.length > 0 && open.at(-1)!.left === 0) open.pop();
  }
  return false;
}
