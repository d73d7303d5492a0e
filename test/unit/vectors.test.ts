import { createHmac } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CloseCode, ErrorCodes, isErrorCode } from '../../proto/errors.js';
import { FrameType, type Frame } from '../../proto/frames.js';
import { decodeHubFrame, decodeServerFrame, encode } from '../../src/protocol/codec.js';
import { ProtocolError, TierError } from '../../src/errors.js';
import { readHubCredentials } from '../../src/auth/hub-admission.js';
import { signatureMatches } from '../../src/auth/hub-signature.js';

/** The committed contract: proto/vectors/*.json, read as files so a new file is picked up unasked. */
const DIR = fileURLToPath(new URL('../../proto/vectors/', import.meta.url));

type Direction = 'hub-to-server' | 'server-to-hub';
interface ValidVector {
  name: string;
  direction: Direction;
  hex: string;
  frame: Frame;
}
interface InvalidVector {
  name: string;
  hex: string;
  error: string;
  field: string | null;
  ref: number | null;
}

function load(file: string): unknown[] {
  const data: unknown = JSON.parse(readFileSync(DIR + file, 'utf8'));
  if (!Array.isArray(data) || data.length === 0) throw new Error(`${file}: expected a non-empty array of cases`);
  return data;
}

function asValid(file: string, c: unknown): ValidVector {
  const v = c as Partial<ValidVector>;
  if (
    typeof v.name !== 'string' ||
    (v.direction !== 'hub-to-server' && v.direction !== 'server-to-hub') ||
    typeof v.hex !== 'string' ||
    !/^([0-9a-f]{2})+$/.test(v.hex) ||
    typeof v.frame !== 'object' ||
    v.frame === null
  ) {
    throw new Error(`${file}: malformed case ${JSON.stringify(c)}`);
  }
  return v as ValidVector;
}

function asInvalid(c: unknown): InvalidVector {
  const v = c as Partial<InvalidVector>;
  if (typeof v.name !== 'string' || typeof v.hex !== 'string' || !/^([0-9a-f]{2})*$/.test(v.hex) || !isErrorCode(v.error)) {
    throw new Error(`invalid.json: malformed case ${JSON.stringify(c)}`);
  }
  if (v.field !== null && typeof v.field !== 'string') throw new Error(`invalid.json: ${v.name}: field must be a string or null`);
  if (v.ref !== null && typeof v.ref !== 'number') throw new Error(`invalid.json: ${v.name}: ref must be a number or null`);
  return v as InvalidVector;
}

/** Removes undefined-valued keys: the decoder leaves them for absent optional fields. */
function defined(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(defined);
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(
      Object.entries(v)
        .filter(([, x]) => x !== undefined)
        .map(([k, x]) => [k, defined(x)]),
    );
  }
  return v;
}

/**
 * A reference encoder written from the msgpack spec, independent of msgpackr: the smallest header
 * for every integer in [-2^31, 2^32), string, array and map; float64 for every other number (the
 * protocol's rule for integers beyond 32 bits and fractions). The vectors must be its output.
 */
function canonical(v: unknown): Buffer {
  const u8 = (...b: number[]) => Buffer.from(b);
  const be = (n: number, bytes: number) => {
    const b = Buffer.alloc(bytes);
    b.writeUIntBE(n, 0, bytes);
    return b;
  };
  if (v === null) return u8(0xc0);
  if (v === false) return u8(0xc2);
  if (v === true) return u8(0xc3);
  if (typeof v === 'number') {
    if (Number.isInteger(v) && v >= 0 && v < 2 ** 32) {
      if (v < 0x80) return u8(v);
      if (v < 0x100) return u8(0xcc, v);
      if (v < 0x10000) return Buffer.concat([u8(0xcd), be(v, 2)]);
      return Buffer.concat([u8(0xce), be(v, 4)]);
    }
    if (Number.isInteger(v) && v < 0 && v >= -(2 ** 31)) {
      if (v >= -32) return u8(v & 0xff);
      const b = Buffer.alloc(5);
      if (v >= -128) return (b.writeInt8(v, 1), (b[0] = 0xd0), b.subarray(0, 2));
      if (v >= -32768) return (b.writeInt16BE(v, 1), (b[0] = 0xd1), b.subarray(0, 3));
      return (b.writeInt32BE(v, 1), (b[0] = 0xd2), b);
    }
    const b = Buffer.alloc(9);
    b[0] = 0xcb;
    b.writeDoubleBE(v, 1);
    return b;
  }
  if (typeof v === 'string') {
    const s = Buffer.from(v, 'utf8');
    const n = s.length;
    const head = n < 32 ? u8(0xa0 | n) : n < 0x100 ? u8(0xd9, n) : n < 0x10000 ? Buffer.concat([u8(0xda), be(n, 2)]) : Buffer.concat([u8(0xdb), be(n, 4)]);
    return Buffer.concat([head, s]);
  }
  const header = (n: number, fix: number, c16: number) => (n < 16 ? u8(fix | n) : n < 0x10000 ? Buffer.concat([u8(c16), be(n, 2)]) : Buffer.concat([u8(c16 + 1), be(n, 4)]));
  if (Array.isArray(v)) return Buffer.concat([header(v.length, 0x90, 0xdc), ...v.map(canonical)]);
  if (typeof v === 'object') {
    const entries = Object.entries(v).filter(([, x]) => x !== undefined);
    return Buffer.concat([header(entries.length, 0x80, 0xde), ...entries.flatMap(([k, x]) => [canonical(k), canonical(x)])]);
  }
  throw new Error(`no msgpack form for ${typeof v}`);
}

const frameNames = Object.keys(FrameType) as Array<keyof typeof FrameType>;
const validFiles = readdirSync(DIR)
  .filter((f) => f.endsWith('.json') && f !== 'invalid.json' && f !== 'handshake.json')
  .sort();
const valid = validFiles.flatMap((file) => load(file).map((c) => ({ file, ...asValid(file, c) })));
const invalid = load('invalid.json').map(asInvalid);

/** Types one side only sends: the other side's decoder must refuse them. */
const bothWays = new Set<number>([FrameType.heartbeat, FrameType.error, FrameType.bye]);

describe('protocol test vectors', () => {
  it('has one file per frame type and covers every frame type', () => {
    expect(validFiles).toEqual(frameNames.map((n) => `${n}.json`).sort());
    const covered = new Set(valid.map((v) => v.frame.t));
    expect([...covered].sort((a, b) => a - b)).toEqual(Object.values(FrameType).sort((a, b) => a - b));
  });

  it('covers both directions of the frames either side may send', () => {
    for (const t of bothWays) {
      const dirs = new Set(valid.filter((v) => v.frame.t === t).map((v) => v.direction));
      expect(dirs, `frame type ${t}`).toEqual(new Set(['hub-to-server', 'server-to-hub']));
    }
  });

  describe.each(validFiles)('%s', (file) => {
    const cases = valid.filter((v) => v.file === file);
    const expectedType = FrameType[file.replace(/\.json$/, '') as keyof typeof FrameType];

    it.each(cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
      expect(c.frame.t).toBe(expectedType);
      const bytes = Buffer.from(c.hex, 'hex');
      const decoded = c.direction === 'hub-to-server' ? decodeHubFrame(bytes) : decodeServerFrame(bytes);
      expect(defined(decoded)).toStrictEqual(c.frame);
      expect(encode(c.frame).toString('hex')).toBe(c.hex);
      expect(canonical(c.frame).toString('hex')).toBe(c.hex);
    });

    if (!bothWays.has(expectedType)) {
      it('is refused by the decoder of the other side', () => {
        for (const c of cases) {
          const bytes = Buffer.from(c.hex, 'hex');
          const other = c.direction === 'hub-to-server' ? decodeServerFrame : decodeHubFrame;
          expect(() => other(bytes), c.name).toThrow(expect.objectContaining({ code: 'unknown_frame_type', field: 't' }));
        }
      });
    }
  });
});

describe('invalid vectors: decodeHubFrame rejects them', () => {
  it('has cases for every rejection the contract names', () => {
    const codes = new Set(invalid.map((c) => c.error));
    for (const code of ['malformed_frame', 'unknown_frame_type', 'invalid_field', 'unsupported_version']) expect(codes).toContain(code);
    expect(new Set(invalid.map((c) => c.name)).size).toBe(invalid.length);
  });

  it.each(invalid.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    let thrown: unknown;
    try {
      decodeHubFrame(Buffer.from(c.hex, 'hex'));
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(ProtocolError);
    const err = thrown as ProtocolError;
    expect(err.code).toBe(c.error);
    // every case says its `f`, null for none (asInvalid): a harness built from the vectors expects exactly it
    expect(err.field ?? null).toBe(c.field);
    // the frame the refusal names (a sequenced one is consumed), or none: bytes that are not msgpack,
    // a frame that has no number of its own, a type a hub may not send (PROTOCOL.md §1)
    expect(err.ref ?? null).toBe(c.ref);
  });
});

interface HandshakeVector {
  name: string;
  secret: string;
  headers: Record<string, string>;
  signed?: string;
  error?: string;
}

describe('handshake vectors: the server checks a signed upgrade as handshake.json says', () => {
  const cases = load('handshake.json') as HandshakeVector[];

  it('has an accepted case with a zero-padded ts and one refused for signing other digits than sent', () => {
    expect(cases.some((c) => c.error === undefined && c.headers['x-hub-ts']!.startsWith('0'))).toBe(true);
    expect(cases.some((c) => c.error === 'bad_signature' && c.headers['x-hub-ts']!.startsWith('0'))).toBe(true);
  });

  it.each(cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const h = c.headers;
    // independent of the server: the signature is HMAC-SHA256 of the string the hub signed
    if (c.signed !== undefined) expect(createHmac('sha256', c.secret).update(c.signed).digest('hex')).toBe(h['x-hub-signature']);
    // accepted exactly when the signed string is hubId, the header's ts digits as sent, nonce
    if (c.error === undefined) expect(c.signed).toBe(`${h['x-hub-id']}\n${h['x-hub-ts']}\n${h['x-hub-nonce']}`);
    let got: string | undefined;
    try {
      if (!signatureMatches(c.secret, readHubCredentials((name) => h[name] ?? '', ''))) got = 'bad_signature';
    } catch (err) {
      got = err instanceof TierError ? err.code : String(err);
    }
    expect(got).toBe(c.error);
  });
});

describe('PROTOCOL.md tables match the code', () => {
  const doc = readFileSync(fileURLToPath(new URL('../../proto/PROTOCOL.md', import.meta.url)), 'utf8');

  it('lists every error code with its number, temporary flag and HTTP status, and no other', () => {
    const rows = [...doc.matchAll(/^\| `([a-z_]+)` \| (\d+) \| (yes|no) \| (\d+) \|/gm)].map((m) => [m[1], Number(m[2]), m[3] === 'yes', Number(m[4])]);
    const table = Object.entries(ErrorCodes).map(([code, e]) => [code, e.code, e.temporary, e.http]);
    expect(rows.sort()).toEqual(table.sort());
  });

  it('lists every close code', () => {
    const rows = [...doc.matchAll(/^\| (\d{4}) \| (\w+) \|/gm)].map((m) => [m[2], Number(m[1])]);
    expect(rows.sort()).toEqual(Object.entries(CloseCode).sort());
  });

  it('lists every frame type with its code in the catalogue', () => {
    const rows = [...doc.matchAll(/^\| (\w+) \| (\d+) \| (?:H→S|S→H|both) \|/gm)].map((m) => [m[1], Number(m[2])]);
    expect(rows.sort()).toEqual(Object.entries(FrameType).sort());
  });
});
