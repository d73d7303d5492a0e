/**
 * A msgpack writer and reader of the fuzzer's own, independent of msgpackr (the server's codec):
 * the writer must be able to say what no correct encoder says (duplicate keys, non-canonical
 * integer forms, `__proto__` keys, raw bytes in a value position), and the reader checks the
 * server's answers without msgpackr's conveniences (it keeps `__proto__` as a key, refuses
 * extension types and 0xc1, and maps become null-prototype objects).
 */

/** A map written entry by entry: keys of any type, in this order, duplicates kept. */
export class MpMap {
  constructor(readonly entries: ReadonlyArray<readonly [unknown, unknown]>) {}
}

/** Bytes written verbatim where a value belongs (ext types, 0xc1, corrupt headers). */
export class MpRaw {
  constructor(readonly bytes: Uint8Array) {}
}

export type IntForm = 'u8' | 'u16' | 'u32' | 'u64' | 'i8' | 'i16' | 'i32' | 'i64';

/** An integer in a chosen form rather than the smallest one (a hub may use any). */
export class MpInt {
  constructor(
    readonly value: number | bigint,
    readonly form: IntForm,
  ) {}
}

/** A float written as float32 or float64. */
export class MpFloat {
  constructor(
    readonly value: number,
    readonly bits: 32 | 64,
  ) {}
}

class Writer {
  private buf = Buffer.alloc(256);
  private len = 0;

  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = Buffer.alloc(size);
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }

  u8(b: number): void {
    this.room(1);
    this.buf[this.len++] = b & 0xff;
  }

  be(v: number, size: 1 | 2 | 4): void {
    this.room(size);
    for (let i = size - 1; i >= 0; i--) this.buf[this.len++] = Math.floor(v / 2 ** (8 * i)) & 0xff;
  }

  raw(bytes: Uint8Array): void {
    this.room(bytes.length);
    this.buf.set(bytes, this.len);
    this.len += bytes.length;
  }

  done(): Uint8Array {
    return new Uint8Array(this.buf.subarray(0, this.len));
  }

  value(v: unknown, depth: number): void {
    if (depth > 10_000) throw new Error('msgpack writer: nesting beyond 10000 (use MpRaw for deeper)');
    if (v === null || v === undefined) return this.u8(0xc0);
    if (v === false) return this.u8(0xc2);
    if (v === true) return this.u8(0xc3);
    if (typeof v === 'number') return this.number(v);
    if (typeof v === 'bigint') return this.int(new MpInt(v, v < 0n ? 'i64' : 'u64'));
    if (typeof v === 'string') return this.str(v);
    if (v instanceof MpRaw) return this.raw(v.bytes);
    if (v instanceof MpInt) return this.int(v);
    if (v instanceof MpFloat) return this.float(v);
    if (v instanceof Uint8Array) return this.bin(v);
    if (v instanceof MpMap) {
      this.mapHeader(v.entries.length);
      for (const [k, x] of v.entries) {
        this.value(k, depth + 1);
        this.value(x, depth + 1);
      }
      return;
    }
    if (Array.isArray(v)) {
      this.arrayHeader(v.length);
      for (const x of v) this.value(x, depth + 1);
      return;
    }
    if (typeof v === 'object') {
      // own keys, `__proto__` included when it is an own property (JSON.parse, defineProperty)
      const keys = Object.keys(v);
      this.mapHeader(keys.length);
      for (const k of keys) {
        this.str(k);
        this.value((v as Record<string, unknown>)[k], depth + 1);
      }
      return;
    }
    throw new Error(`msgpack writer: cannot write a ${typeof v}`);
  }

  number(n: number): void {
    if (Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 32) {
      if (n >= 0) {
        if (n < 0x80) return this.u8(n);
        if (n < 0x100) return (this.u8(0xcc), this.be(n, 1));
        if (n < 0x10000) return (this.u8(0xcd), this.be(n, 2));
        return (this.u8(0xce), this.be(n, 4));
      }
      if (n >= -32) return this.u8(n & 0xff);
      if (n >= -128) return (this.u8(0xd0), this.be(n & 0xff, 1));
      if (n >= -32768) return (this.u8(0xd1), this.be(n & 0xffff, 2));
      return (this.u8(0xd2), this.be(n >>> 0, 4));
    }
    this.float(new MpFloat(n, 64));
  }

  int(v: MpInt): void {
    const codes: Record<IntForm, [number, number]> = {
      u8: [0xcc, 1], u16: [0xcd, 2], u32: [0xce, 4], u64: [0xcf, 8], i8: [0xd0, 1], i16: [0xd1, 2], i32: [0xd2, 4], i64: [0xd3, 8],
    };
    const [code, size] = codes[v.form];
    this.u8(code);
    const bits = BigInt(size * 8);
    const n = BigInt.asUintN(Number(bits), BigInt(v.value));
    for (let i = size - 1; i >= 0; i--) this.u8(Number((n >> BigInt(8 * i)) & 0xffn));
  }

  float(v: MpFloat): void {
    const b = Buffer.alloc(v.bits / 8);
    if (v.bits === 32) b.writeFloatBE(v.value);
    else b.writeDoubleBE(v.value);
    this.u8(v.bits === 32 ? 0xca : 0xcb);
    this.raw(b);
  }

  str(s: string): void {
    const bytes = Buffer.from(s, 'utf8');
    const n = bytes.length;
    if (n < 32) this.u8(0xa0 | n);
    else if (n < 0x100) (this.u8(0xd9), this.be(n, 1));
    else if (n < 0x10000) (this.u8(0xda), this.be(n, 2));
    else (this.u8(0xdb), this.be(n, 4));
    this.raw(bytes);
  }

  bin(b: Uint8Array): void {
    const n = b.length;
    if (n < 0x100) (this.u8(0xc4), this.be(n, 1));
    else if (n < 0x10000) (this.u8(0xc5), this.be(n, 2));
    else (this.u8(0xc6), this.be(n, 4));
    this.raw(b);
  }

  arrayHeader(n: number): void {
    if (n < 16) this.u8(0x90 | n);
    else if (n < 0x10000) (this.u8(0xdc), this.be(n, 2));
    else (this.u8(0xdd), this.be(n, 4));
  }

  mapHeader(n: number): void {
    if (n < 16) this.u8(0x80 | n);
    else if (n < 0x10000) (this.u8(0xde), this.be(n, 2));
    else (this.u8(0xdf), this.be(n, 4));
  }
}

/** Encodes a value: JS scalars in their smallest form, objects by own keys, Mp* as they say. */
export function pack(v: unknown): Uint8Array {
  const w = new Writer();
  w.value(v, 0);
  return w.done();
}

export class MpDecodeError extends Error {
  override name = 'MpDecodeError';
}

/** One header (value start) found by `scan`, with where its length field is, if it has one. */
export interface Token {
  pos: number;
  /** the first byte */
  byte: number;
  kind: 'nil' | 'bool' | 'int' | 'float' | 'str' | 'bin' | 'array' | 'map' | 'ext' | 'never';
  /** bytes of the header (type byte plus length field) */
  headerLen: number;
  /** position and size of an explicit length field (0: the length is in the type byte) */
  lenPos: number;
  lenSize: 0 | 1 | 2 | 4;
  /** string/bin/ext bytes, array items or map entries */
  length: number;
}

/** Big-endian unsigned length at `pos`, or -1 past the end. */
function be(b: Uint8Array, pos: number, size: number): number {
  if (pos + size > b.length) return -1;
  let n = 0;
  for (let i = 0; i < size; i++) n = n * 256 + b[pos + i]!;
  return n;
}

/** The header at `pos`, without reading what follows it; null when it is cut off. Never throws (it runs on every mutated frame). */
export function headerAt(b: Uint8Array, pos: number): Token | null {
  if (pos >= b.length) return null;
  const c = b[pos]!;
  const t = (kind: Token['kind'], headerLen: number, length = 0, lenSize: Token['lenSize'] = 0): Token | null =>
    length < 0 ? null : { pos, byte: c, kind, headerLen, lenPos: pos + 1, lenSize, length };
  if (c < 0x80 || c >= 0xe0) return t('int', 1);
  if (c < 0x90) return t('map', 1, c & 0x0f);
  if (c < 0xa0) return t('array', 1, c & 0x0f);
  if (c < 0xc0) return t('str', 1, c & 0x1f);
  switch (c) {
    case 0xc0: return t('nil', 1);
    case 0xc1: return t('never', 1);
    case 0xc2: case 0xc3: return t('bool', 1);
    case 0xc4: return t('bin', 2, be(b, pos + 1, 1), 1);
    case 0xc5: return t('bin', 3, be(b, pos + 1, 2), 2);
    case 0xc6: return t('bin', 5, be(b, pos + 1, 4), 4);
    case 0xc7: return t('ext', 3, be(b, pos + 1, 1), 1);
    case 0xc8: return t('ext', 4, be(b, pos + 1, 2), 2);
    case 0xc9: return t('ext', 6, be(b, pos + 1, 4), 4);
    case 0xca: return t('float', 5);
    case 0xcb: return t('float', 9);
    case 0xcc: case 0xd0: return t('int', 2);
    case 0xcd: case 0xd1: return t('int', 3);
    case 0xce: case 0xd2: return t('int', 5);
    case 0xcf: case 0xd3: return t('int', 9);
    case 0xd4: return t('ext', 3, 1);
    case 0xd5: return t('ext', 3, 2);
    case 0xd6: return t('ext', 3, 4);
    case 0xd7: return t('ext', 3, 8);
    case 0xd8: return t('ext', 3, 16);
    case 0xd9: return t('str', 2, be(b, pos + 1, 1), 1);
    case 0xda: return t('str', 3, be(b, pos + 1, 2), 2);
    case 0xdb: return t('str', 5, be(b, pos + 1, 4), 4);
    case 0xdc: return t('array', 3, be(b, pos + 1, 2), 2);
    case 0xdd: return t('array', 5, be(b, pos + 1, 4), 4);
    case 0xde: return t('map', 3, be(b, pos + 1, 2), 2);
    default: return t('map', 5, be(b, pos + 1, 4), 4); // 0xdf
  }
}

function header(b: Uint8Array, pos: number): Token {
  const tok = headerAt(b, pos);
  if (!tok) throw new MpDecodeError('truncated');
  return tok;
}

/**
 * Every header of one well-formed message in order (iterative, so any nesting depth), or null
 * when the bytes are cut off or run on; ext and 0xc1 are reported as tokens, not refused.
 */
export function scan(b: Uint8Array): Token[] | null {
  const out: Token[] = [];
  let pos = 0;
  let pending = 1;
  while (pending > 0) {
    const tok = headerAt(b, pos);
    if (!tok) return null;
    out.push(tok);
    pending--;
    pos += tok.headerLen;
    if (tok.kind === 'array') pending += tok.length;
    else if (tok.kind === 'map') pending += 2 * tok.length;
    else if (tok.kind === 'str' || tok.kind === 'bin' || tok.kind === 'ext') pos += tok.length;
    if (pos > b.length) return null;
  }
  return pos === b.length ? out : null;
}

/**
 * Decodes one plain msgpack value strictly: no ext types, no 0xc1, nothing after the value,
 * map keys must be strings (maps become null-prototype objects, so any key is kept as it is),
 * nesting at most `maxDepth`. For the server's frames and replies, which are small.
 */
export function unpackStrict(b: Uint8Array, maxDepth = 64): unknown {
  let pos = 0;
  const read = (depth: number): unknown => {
    if (depth > maxDepth) throw new MpDecodeError(`nested deeper than ${maxDepth}`);
    const tok = header(b, pos);
    pos += tok.headerLen;
    const c = tok.byte;
    switch (tok.kind) {
      case 'nil': return null;
      case 'bool': return c === 0xc3;
      case 'never': throw new MpDecodeError(`byte 0xc1 at ${tok.pos}`);
      case 'ext': throw new MpDecodeError(`extension type 0x${c.toString(16)} at ${tok.pos}`);
      case 'int': {
        if (c < 0x80) return c;
        if (c >= 0xe0) return c - 0x100;
        const size = tok.headerLen - 1;
        if (pos > b.length) throw new MpDecodeError('truncated');
        const buf = Buffer.from(b.buffer, b.byteOffset + tok.pos + 1, size);
        if (buf.length < size) throw new MpDecodeError('truncated');
        const signed = c >= 0xd0;
        if (size === 8) return Number(signed ? buf.readBigInt64BE() : buf.readBigUInt64BE());
        return signed ? buf.readIntBE(0, size) : buf.readUIntBE(0, size);
      }
      case 'float': {
        if (pos > b.length) throw new MpDecodeError('truncated');
        const buf = Buffer.from(b.buffer, b.byteOffset + tok.pos + 1, tok.headerLen - 1);
        return c === 0xca ? buf.readFloatBE() : buf.readDoubleBE();
      }
      case 'str':
      case 'bin': {
        const start = pos;
        pos += tok.length;
        if (pos > b.length) throw new MpDecodeError('truncated');
        const slice = b.subarray(start, pos);
        return tok.kind === 'str' ? Buffer.from(slice).toString('utf8') : new Uint8Array(slice);
      }
      case 'array': {
        const out: unknown[] = [];
        for (let i = 0; i < tok.length; i++) out.push(read(depth + 1));
        return out;
      }
      case 'map': {
        const out = Object.create(null) as Record<string, unknown>;
        for (let i = 0; i < tok.length; i++) {
          const k = read(depth + 1);
          if (typeof k !== 'string') throw new MpDecodeError(`map key of type ${typeof k} at ${tok.pos}`);
          if (Object.hasOwn(out, k)) throw new MpDecodeError(`duplicate map key ${JSON.stringify(k)}`);
          out[k] = read(depth + 1);
        }
        return out;
      }
    }
  };
  const v = read(0);
  if (pos !== b.length) throw new MpDecodeError(`${b.length - pos} bytes after the value`);
  return v;
}

export function toHex(b: Uint8Array | string): string {
  return typeof b === 'string' ? Buffer.from(b, 'utf8').toString('hex') : Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

export function fromHex(hex: string): Uint8Array {
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

/** Index of the token after the value that starts at token `i` (its whole subtree skipped). */
export function skipValue(tokens: readonly Token[], i: number): number {
  let pending = 1;
  while (pending > 0) {
    const tok = tokens[i++];
    if (!tok) return i;
    pending--;
    if (tok.kind === 'array') pending += tok.length;
    else if (tok.kind === 'map') pending += 2 * tok.length;
  }
  return i;
}

/**
 * The values of key `key` in the top-level map, as msgpackr would see them (the last one wins),
 * for scalars only (undefined for containers); [] when the bytes are not one well-formed map.
 */
export function topLevelValues(b: Uint8Array, key: string): unknown[] {
  const tokens = scan(b);
  if (!tokens) return [];
  const top = tokens[0];
  if (!top || top.kind !== 'map') return [];
  const out: unknown[] = [];
  let i = 1;
  for (let e = 0; e < top.length; e++) {
    const k = tokens[i];
    if (!k) break;
    const vIndex = skipValue(tokens, i);
    const v = tokens[vIndex];
    if (k.kind === 'str' && v) {
      const name = Buffer.from(b.subarray(k.pos + k.headerLen, k.pos + k.headerLen + k.length)).toString('utf8');
      if (name === key) {
        if (v.kind === 'int' || v.kind === 'float' || v.kind === 'nil' || v.kind === 'bool') out.push(unpackStrict(b.subarray(v.pos, v.pos + v.headerLen)));
        else if (v.kind === 'str') out.push(Buffer.from(b.subarray(v.pos + v.headerLen, v.pos + v.headerLen + v.length)).toString('utf8'));
        else out.push(undefined);
      }
    }
    i = skipValue(tokens, vIndex);
  }
  return out;
}
