import { describe, expect, it } from 'vitest';
import { FrameType } from '../../proto/frames.js';
import { decodeAppRequest } from '../../src/protocol/app-codec.js';
import { decodeHubFrame, encodeValue } from '../../src/protocol/codec.js';
import { checkPlainMsgpack, RefusedValueError } from '../../src/protocol/msgpack-scan.js';
import { ProtocolError } from '../../src/errors.js';
import { withRaw } from '../helpers/msgpack-raw.js';

const str = (s: string) => encodeValue(s).toString('hex');
const hexOf = (v: unknown) => encodeValue(v).toString('hex');

function refusal(bytes: Uint8Array): ProtocolError {
  try {
    decodeHubFrame(bytes);
  } catch (err) {
    expect(err).toBeInstanceOf(ProtocolError);
    return err as ProtocolError;
  }
  throw new Error(`accepted: ${Buffer.from(bytes).toString('hex')}`);
}

describe('map keys are strings (PROTOCOL.md §1)', () => {
  const keys: Array<[string, string]> = [
    ['a positive fixint', '07'],
    ['a negative fixint', 'ff'],
    ['a uint16', 'cd0100'],
    ['a float64', hexOf(1.5)],
    ['true', 'c3'],
    ['false', 'c2'],
    ['nil', 'c0'],
    ['bin', 'c40161'],
    ['a map', '80'],
    ['an array', '9101'],
  ];
  it.each(keys)('%s as a device id is refused invalid_field naming the map, with the frame s', (_name, key) => {
    const err = refusal(withRaw({ t: 4, s: 5, r: '@raw@' }, `81${key}${hexOf({ a: 1 })}`));
    expect(err).toMatchObject({ code: 'invalid_field', field: 'r', ref: 5, frameType: FrameType.report });
    expect(err.message).toContain('map keys must be strings');
  });

  it('as an attribute name, at the top of the frame, and in a result, with the path', () => {
    expect(refusal(withRaw({ t: 4, s: 6, r: { 'dev-1': '@raw@' } }, `8201${hexOf(1)}${str('1')}02`))).toMatchObject({ code: 'invalid_field', field: 'r.dev-1', ref: 6 });
    // {t:4, s:8, r:{}, 5:1}: a top-level integer key
    const top = Buffer.concat([Buffer.from([0x84]), encodeValue({ t: 4, s: 8, r: {} }).subarray(1), Buffer.from([0x05, 0x01])]);
    expect(refusal(top)).toMatchObject({ code: 'invalid_field', field: 'frame', ref: 8 });
    expect(refusal(withRaw({ t: 8, id: 9, ok: true, r: { list: [1, '@raw@'] } }, '81c3c3'))).toMatchObject({ code: 'invalid_field', field: 'r.list[1]', ref: 9, frameType: FrameType.result });
  });

  it('a key that is a string of digits is still a name', () => {
    expect(decodeHubFrame(encodeValue({ t: 4, s: 1, r: { 'dev-1': { '1': 'x' } } }))).toMatchObject({ r: { 'dev-1': { '1': 'x' } } });
  });
});

describe('strings are UTF-8', () => {
  const bad: Array<[string, string]> = [
    ['a lone continuation byte', 'a2' + '61ff'],
    ['a cut sequence', 'a2' + '61c3'],
    ['an overlong encoding', 'a2' + 'c0af'],
    ['a surrogate (CESU-8)', 'a3' + 'eda080'],
  ];
  it.each(bad)('%s in a value, a key, anywhere is refused invalid_field with the path', (_name, s) => {
    expect(refusal(withRaw({ t: 4, s: 2, r: { 'dev-1': { a: '@raw@' } } }, s))).toMatchObject({ code: 'invalid_field', field: 'r.dev-1.a', ref: 2 });
    expect(refusal(withRaw({ t: 4, s: 3, r: { 'dev-1': '@raw@' } }, `81${s}01`))).toMatchObject({ code: 'invalid_field', ref: 3 });
    expect(refusal(withRaw({ t: 5, s: 4, d: 'btn', e: '@raw@' }, s))).toMatchObject({ code: 'invalid_field', field: 'e', ref: 4 });
  });

  it('a frame with valid non-ASCII strings is checked whole: a later fault and its s are still found', () => {
    expect(refusal(withRaw({ t: 4, s: 5, r: { 'dev-1': { name: 'Küche' } }, x: '@raw@' }, 'd40000'))).toMatchObject({ code: 'malformed_frame', field: 'x', ref: 5 });
    expect(refusal(withRaw({ t: 4, s: 6, r: { 'dev-1': { name: 'Küche', b: '@raw@' } } }, 'a2c328'))).toMatchObject({ code: 'invalid_field', field: 'r.dev-1.b', ref: 6 });
    expect(refusal(withRaw({ t: 4, s: 7, r: { 'dev-1': { name: 'Küche' } }, ts: '@raw@' }, 'cf0020000000000000'))).toMatchObject({ code: 'invalid_field', field: 'ts', ref: 7 });
  });

  it('two different invalid keys no longer collapse into one; valid non-ASCII passes', () => {
    expect(refusal(withRaw({ t: 4, s: 1, r: { 'dev-1': '@raw@' } }, `82a261ff01a261fe02`)).code).toBe('invalid_field');
    expect(decodeHubFrame(encodeValue({ t: 4, s: 1, r: { 'dev-1': { name: 'Küche 😀', 'größe': 1 } } }))).toMatchObject({ r: { 'dev-1': { name: 'Küche 😀', 'größe': 1 } } });
  });
});

describe('integers are within ±(2^53 − 1)', () => {
  const refused: Array<[string, string]> = [
    ['uint64 2^53', 'cf0020000000000000'],
    ['uint64 2^64 − 1', 'cfffffffffffffffff'],
    ['int64 −2^53', 'd3ffe0000000000000'],
    ['int64 −2^63', 'd38000000000000000'],
    ['int64 2^62', 'd34000000000000000'],
  ];
  it.each(refused)('%s is refused invalid_field with the path, not rounded', (_name, raw) => {
    expect(refusal(withRaw({ t: 4, s: 1, r: { 'dev-1': { big: '@raw@' } } }, raw))).toMatchObject({ code: 'invalid_field', field: 'r.dev-1.big', ref: 1 });
  });
  it('the bounds themselves pass as exact numbers', () => {
    expect(decodeHubFrame(withRaw({ t: 4, s: 1, r: { 'dev-1': { big: '@raw@' } } }, 'cf001fffffffffffff'))).toMatchObject({ r: { 'dev-1': { big: 2 ** 53 - 1 } } });
    expect(decodeHubFrame(withRaw({ t: 4, s: 1, r: { 'dev-1': { big: '@raw@' } } }, 'd3ffe0000000000001'))).toMatchObject({ r: { 'dev-1': { big: -(2 ** 53 - 1) } } });
    // a float64 is a float: 1e300 is a number like any
    expect(decodeHubFrame(encodeValue({ t: 4, s: 1, r: { 'dev-1': { big: 1e300 } } }))).toMatchObject({ r: { 'dev-1': { big: 1e300 } } });
  });
});

describe('duplicate keys at the top of a frame', () => {
  it('s twice (1 then 9) is refused invalid_field naming s, ref the first', () => {
    const bytes = Buffer.concat([Buffer.from([0x84]), encodeValue({ t: 4, s: 1, r: {} }).subarray(1), encodeValue('s'), encodeValue(9)]);
    expect(refusal(bytes)).toMatchObject({ code: 'invalid_field', field: 's', ref: 1 });
  });
  it('t twice (report then heartbeat) is refused, not read as a heartbeat', () => {
    const bytes = Buffer.concat([Buffer.from([0x84]), encodeValue({ t: 4, s: 3, r: {} }).subarray(1), encodeValue('t'), encodeValue(3)]);
    expect(refusal(bytes)).toMatchObject({ code: 'invalid_field', field: 't', ref: 3, frameType: FrameType.report });
  });
  it('among many unknown keys too; deeper, the last of a key given twice wins', () => {
    const many = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, i]));
    const head = encodeValue({ t: 3, ...many });
    expect(decodeHubFrame(head)).toEqual({ t: 3, ts: undefined });
    const twice = Buffer.concat([Buffer.from([0xde, 0x00, 42]), head.subarray(3), encodeValue('k7'), encodeValue(1)]);
    expect(refusal(twice)).toMatchObject({ code: 'invalid_field', field: 'k7' });
    const deeper = withRaw({ t: 4, s: 1, r: { 'dev-1': '@raw@' } }, `82${str('a')}01${str('a')}02`);
    expect(decodeHubFrame(deeper)).toMatchObject({ r: { 'dev-1': { a: 2 } } });
  });
  it('more than 64 keys of two characters or more are refused, naming the frame (2,670 cost a report twelve times over: review "msgpack")', () => {
    const keys = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, null]));
    expect(decodeHubFrame(encodeValue({ t: 4, s: 5, r: {}, ...keys(64) }))).toMatchObject({ t: 4, s: 5 });
    expect(refusal(encodeValue({ t: 4, s: 5, r: {}, ...keys(65) }))).toMatchObject({ code: 'invalid_field', ref: 5, message: expect.stringMatching(/more than 64 keys/) });
    expect(refusal(encodeValue({ t: 4, s: 6, r: {}, ...keys(2_000) }))).toMatchObject({ code: 'invalid_field', ref: 6 });
  });
});

describe('the top-level fields of a refused frame are read by the scanner, exactly', () => {
  it('a float s or id that is not an exact integer is refused, not rounded, and names nothing', () => {
    for (const raw of ['ca3f800001', hexOf(1.5), 'ca3fc00000']) {
      const err = refusal(withRaw({ t: 4, s: '@raw@', r: {} }, raw));
      expect(err).toMatchObject({ code: 'invalid_field', field: 's', ref: undefined });
      expect(refusal(withRaw({ t: 8, id: '@raw@', ok: true }, raw))).toMatchObject({ code: 'invalid_field', field: 'id', ref: undefined });
    }
    // a float holding an integer is an integer (§1): with a rule broken elsewhere it names the frame
    const named = Buffer.from(withRaw({ t: 4, s: '@raw@', r: {}, x: 'y' }, 'ca41200000').toString('hex').replace(str('y'), 'd40000'), 'hex');
    expect(refusal(named)).toMatchObject({ code: 'malformed_frame', ref: 10 });
  });

  it('past a rule broken the walk goes on: a later s and bytes that are not msgpack are found', () => {
    // the extension comes before s in the bytes
    const ext = Buffer.concat([Buffer.from([0x84]), encodeValue('ts'), Buffer.from('d6ff00000001', 'hex'), encodeValue({ t: 4, s: 12, r: {} }).subarray(1)]);
    expect(refusal(ext)).toMatchObject({ code: 'malformed_frame', field: 'ts', ref: 12, frameType: FrameType.report });
    expect(refusal(ext)).toBeInstanceOf(RefusedValueError);
    // the same, cut short or with 0xc1 after it: not msgpack, named by nothing
    for (const bytes of [ext.subarray(0, -1), Buffer.concat([ext.subarray(0, -1), Buffer.from([0xc1])]), Buffer.concat([ext, Buffer.from([0])])]) {
      const err = refusal(bytes);
      expect(err).toMatchObject({ code: 'malformed_frame', ref: undefined });
      expect(err).not.toBeInstanceOf(RefusedValueError);
    }
  });

  it('nesting too deep still names the frame, even when the depth comes first', () => {
    const deep = Buffer.concat([Buffer.from([0x84]), encodeValue('x'), Buffer.alloc(40, 0x91), Buffer.from([0x01]), encodeValue({ t: 4, s: 13, r: {} }).subarray(1)]);
    expect(refusal(deep)).toMatchObject({ code: 'malformed_frame', ref: 13 });
    // a nest deeper than the flat count may hold is malformed, never a wrong count
    expect(() => checkPlainMsgpack(Buffer.concat([Buffer.from([0x81, 0xa1, 0x78]), Buffer.alloc(40, 0x92), Buffer.from([0x01])]))).toThrow(ProtocolError);
  });

  it('an error frame that fails validation names the command it answers (its ref)', () => {
    expect(refusal(encodeValue({ t: 10, c: 403, e: 'command_failed', tmp: 'no', ref: 77 }))).toMatchObject({ code: 'invalid_field', field: 'tmp', ref: 77, frameType: FrameType.error });
    expect(refusal(encodeValue({ t: 10, c: 403, e: 'command_failed', tmp: false, ref: 78, msg: '' }))).toMatchObject({ field: 'msg', ref: 78 });
  });

  it('an app request refused for a non-string key carries its id', () => {
    const bytes = withRaw({ op: 'cmd', id: 42, hub: 'h', device: 'd', method: 'm', params: '@raw@' }, '810101');
    const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) as ArrayBuffer;
    let err: unknown;
    try {
      decodeAppRequest(ab, true, 65_536);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'invalid_field', field: 'params', ref: 42 });
  });
});
