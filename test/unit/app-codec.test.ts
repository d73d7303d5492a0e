/**
 * The app socket's requests through the schema of src/schemas/app.ts: what passes, and for what
 * is refused the code, the field and the request id the answer repeats.
 */
import { Kind, type TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../../src/errors.js';
import { decodeAppRequest, validateAppRequest } from '../../src/protocol/app-codec.js';
import { encodeValue, LIMITS } from '../../src/protocol/codec.js';
import { compile } from '../../src/schemas/check.js';
import { Attrs, Id, Params, paramsAccepted, paramsProblem } from '../../src/schemas/common.js';
import { isValidId } from '../../proto/subjects.js';

const cmd = { op: 'cmd', id: 2, hub: 'hub-1', device: 'lamp' };

function refusal(v: unknown, max?: number): { code: string; field?: string; ref?: number; message: string } {
  try {
    validateAppRequest(v, max);
  } catch (err) {
    expect(err).toBeInstanceOf(ProtocolError);
    const e = err as ProtocolError;
    return { code: e.code, field: e.field, ref: e.ref, message: e.message };
  }
  throw new Error(`accepted: ${JSON.stringify(v)}`);
}

describe('app requests', () => {
  it('accepts the four ops and keeps only the fields of the request', () => {
    expect(validateAppRequest({ op: 'ping', id: 1, pad: 'x' })).toEqual({ op: 'ping', id: 1 });
    expect(validateAppRequest({ op: 'sub', id: 3, home: 'home-1' })).toEqual({ op: 'sub', id: 3, home: 'home-1' });
    expect(validateAppRequest({ ...cmd, set: { on: true }, extra: 1 })).toEqual({ ...cmd, set: { on: true } });
    expect(validateAppRequest({ ...cmd, method: 'open', timeoutMs: 5 })).toEqual({ ...cmd, method: 'open', params: {}, timeoutMs: 5 });
    expect(validateAppRequest({ ...cmd, hub: 'toString', device: 'valueOf', set: { constructor_: 1 } })).toMatchObject({ hub: 'toString', device: 'valueOf' });
  });

  it.each([
    [{ ...cmd }, 'set'],
    [{ ...cmd, set: {} }, 'set'],
    [{ ...cmd, set: { a: [1] } }, 'set.a'],
    [{ ...cmd, set: { a: 1 }, method: 'x' }, 'method'],
    [{ ...cmd, set: { a: 1 }, params: {} }, 'params'],
    [{ ...cmd, hub: 'constructor', set: { a: 1 } }, 'hub'],
    [{ ...cmd, device: 'a.b', set: { a: 1 } }, 'device'],
    [{ ...cmd, method: '' }, 'method'],
    [{ ...cmd, method: 'm', timeoutMs: -1 }, 'timeoutMs'],
    [{ ...cmd, method: 'm', timeoutMs: 1.5 }, 'timeoutMs'],
    [{ ...cmd, method: 'm', params: [1] }, 'params'],
    [{ ...cmd, method: 'm', params: JSON.parse('{"a":{"__proto__":{"x":1}}}') }, 'params.a.__proto__'],
    [{ ...cmd, method: 'm', params: { constructor: 1 } }, 'params.constructor'],
    [{ ...cmd, set: JSON.parse('{"__proto__":1}') }, 'set.__proto__'],
    [{ op: 'sub', id: 2, home: 'a.b' }, 'home'],
    [{ op: 'nope', id: 2 }, 'op'],
    [{ id: 2 }, 'op'],
  ])('%j is refused naming %s, answering with its id', (msg, field) => {
    expect(refusal(msg)).toMatchObject({ code: 'invalid_field', field, ref: 2, message: expect.stringMatching(new RegExp(`^${field.replace(/[.[\]]/g, '\\$&')}: `)) });
  });

  it('a bad id is named first and answered without an id', () => {
    expect(refusal({ op: 'nope', id: -1 })).toMatchObject({ code: 'invalid_field', field: 'id', ref: undefined });
    expect(refusal({ op: 'ping', id: 2 ** 53 })).toMatchObject({ field: 'id', ref: undefined });
  });

  it('a value that is not a map is malformed', () => {
    expect(refusal([1])).toMatchObject({ code: 'malformed_frame' });
    expect(refusal('x')).toMatchObject({ code: 'malformed_frame' });
  });

  it('the timeout maximum is the node’s when given', () => {
    expect(validateAppRequest({ ...cmd, set: { on: true }, timeoutMs: 120_000 })).toMatchObject({ timeoutMs: 120_000 });
    expect(refusal({ ...cmd, set: { on: true }, timeoutMs: 60_001 }, 60_000)).toMatchObject({ field: 'timeoutMs', message: 'timeoutMs: must be an integer in 1..60000' });
    expect(validateAppRequest({ ...cmd, set: { on: true }, timeoutMs: 60_000 }, 60_000)).toMatchObject({ timeoutMs: 60_000 });
  });

  it('decodes JSON and msgpack alike; JSON params nested deeper than the limit are refused', () => {
    const deep = (n: number): unknown => (n === 0 ? 1 : { a: deep(n - 1) });
    const msg = { ...cmd, method: 'm', params: { p: deep(8) } };
    const text = (v: unknown) => new TextEncoder().encode(JSON.stringify(v)).buffer as ArrayBuffer;
    expect(decodeAppRequest(new Uint8Array(encodeValue(msg)).buffer as ArrayBuffer, true, 1 << 20)).toEqual(validateAppRequest(msg));
    expect(decodeAppRequest(text(msg), false, 1 << 20)).toEqual(validateAppRequest(msg));
    // msgpack nesting is bounded by the scanner before it is decoded; JSON by the params check
    // params nest one level less than a frame: in the command frame to the hub they are its second level
    expect(decodeAppRequest(text({ ...cmd, method: 'm', params: { p: deep(LIMITS.depth - 2) } }), false, 1 << 20)).toMatchObject({ method: 'm' });
    expect(() => decodeAppRequest(text({ ...cmd, method: 'm', params: { p: deep(LIMITS.depth - 1) } }), false, 1 << 20)).toThrow(
      expect.objectContaining({ code: 'invalid_field', field: expect.stringMatching(/^params\.p(\.a)+$/), ref: 2 }),
    );
  });

  it('refuses a lone surrogate from a JSON escape in any string or key, naming it and the request (the hub got U+FFFD)', () => {
    const text = (s: string) => new TextEncoder().encode(s).buffer as ArrayBuffer;
    const refused = (json: string, field: string) => expect(() => decodeAppRequest(text(json), false, 1 << 20)).toThrow(expect.objectContaining({ code: 'invalid_field', field, ref: 7 }));
    refused('{"op":"cmd","id":7,"hub":"h","device":"d","set":{"label":"a\\ud800"}}', 'set.label');
    refused('{"op":"cmd","id":7,"hub":"h","device":"d","method":"m","params":{"list":["ok","\\udc00x"]}}', 'params.list.1');
    refused('{"op":"cmd","id":7,"hub":"h","device":"d","set":{"a\\ud83d":1}}', 'set');
    // a whole pair escaped, and the same text unescaped, are one emoji
    const pair = decodeAppRequest(text('{"op":"cmd","id":7,"hub":"h","device":"d","set":{"label":"\\ud83d\\udeaa 🚪"}}'), false, 1 << 20);
    expect(pair).toMatchObject({ set: { label: '🚪 🚪' } });
  });
});

/** Values an attribute map or parameters may be sent as, hostile ones first. */
const CORPUS: unknown[] = [
  {},
  { on: true, level: 80, name: 'x', gone: null },
  JSON.parse('{"__proto__": 1}'),
  { constructor: 1 },
  { prototype: 1 },
  { toString: 'x', valueOf: 2 },
  { '': 1 },
  { ['k'.repeat(64)]: 1 },
  { ['k'.repeat(65)]: 1 },
  { s: 'x'.repeat(1024) },
  { s: 'x'.repeat(1025) },
  { n: Number.NaN },
  { n: Infinity },
  { a: [{ n: -Infinity }] },
  { b: new Uint8Array(3) },
  { a: [Buffer.from('x')] },
  { a: [1] },
  { a: { b: 1 } },
  Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`k${i}`, i])),
  Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, i])),
  { deep: JSON.parse('{"x": {"__proto__": {}}}') },
  { a: [{ ['k'.repeat(65)]: 1 }] },
  { a: { b: ['x'.repeat(1025)] } },
  { a: { b: ['x'.repeat(1024)], ['k'.repeat(64)]: 'y' } },
  { '': 1 },
  { a: [{ '': 1 }] },
  [],
  null,
  'str',
  new Uint8Array(2),
  Object.create({ inherited: 1 }),
];

describe('custom kinds agree with what they claim', () => {
  it('Attrs: the codec check it runs and the keywords the document shows answer alike', () => {
    const asKeywords = (s: TSchema) => TypeCompiler.Compile({ ...s, [Kind]: 'Record' } as TSchema);
    for (const schema of [Attrs('x'), Attrs('x', 'at least one')]) {
      const keywords = asKeywords(schema);
      const kind = compile(schema);
      for (const v of CORPUS) {
        // the keywords cannot tell a plain object from one with another prototype; the check refuses those
        if (v !== null && typeof v === 'object' && Object.getPrototypeOf(v) !== Object.prototype && !Array.isArray(v)) expect(kind.is(v)).toBe(false);
        else expect(kind.is(v), JSON.stringify(v)).toBe(keywords.Check(v));
      }
    }
  });

  it('Id: the pattern of the schemas is proto/subjects.ts isValidId (hostile ids behave as before)', () => {
    const id = compile(Id('x'));
    const names = [...Object.getOwnPropertyNames(Object.prototype), 'prototype', '__proto_', '', 'a'.repeat(64), 'a'.repeat(65), 'a.b', 'a b', 'ü', '-', '_', '0', 'hub-7', 'a\nb', 'a\u0000'];
    for (const n of names) expect(id.is(n), n).toBe(isValidId(n));
    expect(id.is('toString') && id.is('valueOf') && !id.is('constructor') && !id.is('__proto__')).toBe(true);
  });

  it('Params: the quick check and the one that names the field answer alike', () => {
    for (const v of CORPUS) expect(paramsAccepted(v), JSON.stringify(v)).toBe(paramsProblem(v, 'params') === null);
    expect(compile(Params('x')).problem({ a: [JSON.parse('{"__proto__": 1}')] }, 'params')).toEqual({ field: 'params.a[0].__proto__', what: '__proto__ is not allowed as a key' });
    // PROTOCOL.md §1's limits, which a hub may size its buffers by
    expect(compile(Params('x')).problem({ data: 'x'.repeat(5000) }, 'params')).toEqual({ field: 'params.data', what: 'must be a string of at most 1024 characters' });
    expect(compile(Params('x')).problem({ list: [{ ['k'.repeat(100)]: 1 }] }, 'params')).toEqual({ field: `params.list[0].${'k'.repeat(100)}`, what: 'a name of 1..64 characters' });
    // names are never empty (§1): an empty key is refused like a long one, at any depth
    expect(compile(Params('x')).problem({ '': 1 }, 'params')).toEqual({ field: 'params.', what: 'a name of 1..64 characters' });
    expect(compile(Params('x')).problem({ list: [{ '': 1 }] }, 'params')).toEqual({ field: 'params.list[0].', what: 'a name of 1..64 characters' });
    // §1 has no binary field and no NaN or ±Infinity: a bin of any size and NaN reached hubs (review "msgpack")
    expect(compile(Params('x')).problem({ a: [1, { n: Number.NaN }] }, 'params')).toEqual({ field: 'params.a[1].n', what: 'must be a finite number (not NaN or ±Infinity)' });
    expect(compile(Params('x')).problem({ blob: new Uint8Array(12_000) }, 'params')).toEqual({ field: 'params.blob', what: expect.stringMatching(/^must not be binary/) });
  });
});

describe('integers JSON.parse would round (review "msgpack")', () => {
  const text = (s: string) => new TextEncoder().encode(s).buffer as ArrayBuffer;
  it('are refused on the JSON socket, naming the field and the request, as the msgpack socket refuses a uint64', () => {
    const refused = (json: string, field: string) => expect(() => decodeAppRequest(text(json), false, 1 << 20)).toThrow(expect.objectContaining({ code: 'invalid_field', field, ref: 7, message: expect.stringMatching(/beyond ±\(2\^53 − 1\) and would be rounded.*as a string/) }));
    refused('{"op":"cmd","id":7,"hub":"h","device":"d","set":{"eui":5149013111111111111}}', 'set.eui');
    refused('{"op":"cmd","id":7,"hub":"h","device":"d","method":"m","params":{"ids":[1,-9007199254740993]}}', 'params.ids[1]');
    // the first in the document's order, not a float of the same value after it (review "diff14")
    refused('{"op":"cmd","id":7,"hub":"h","device":"d","set":{"bad":10000000000000001,"fine":1e16}}', 'set.bad');
    expect(() => decodeAppRequest(new Uint8Array(encodeValue({ ...cmd, id: 7, set: { eui: 5149013111111111111n } })).buffer as ArrayBuffer, true, 1 << 20)).toThrow(expect.objectContaining({ code: 'invalid_field' }));
  });

  it('leave alone what is exact or meant as a float: 2^53 − 1, digits in strings, fractions and exponents', () => {
    const ok = (json: string) => expect(decodeAppRequest(text(json), false, 1 << 20)).toMatchObject({ op: 'cmd' });
    ok('{"op":"cmd","id":7,"hub":"h","device":"d","set":{"max":9007199254740991,"min":-9007199254740991}}');
    // written back as read: 2^53, and 2^60 as the node itself writes a hub's float64 (review "diff14")
    expect(decodeAppRequest(text('{"op":"cmd","id":7,"hub":"h","device":"d","set":{"a":9007199254740992,"b":1152921504606847000}}'), false, 1 << 20)).toMatchObject({ set: { a: 2 ** 53, b: 2 ** 60 } });
    ok('{"op":"cmd","id":7,"hub":"h","device":"d","set":{"eui":"5149013111111111111","q":"say \\"12345678901234567\\" 12345678901234567"}}');
    ok('{"op":"cmd","id":7,"hub":"h","device":"d","set":{"big":1e20,"f":12345678901234567.5,"e":1.2345678901234567E+30}}');
  });
});
