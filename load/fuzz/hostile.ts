/**
 * Hostile values, and the fuzzer's own reading of what the protocol accepts (proto/PROTOCOL.md §1
 * and §8), written from the prose rather than imported from src/: the oracle must not share the
 * server's bugs.
 */

/** Every own property name of Object.prototype (`__proto__`, `toString`, `__defineGetter__`, ...) plus `prototype`. */
export const PROTOTYPE_NAMES: readonly string[] = [...Object.getOwnPropertyNames(Object.prototype), 'prototype'];

/** Names the protocol refuses as ids and attribute names (§1 Ids). */
const RESERVED = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * Strings to put where an id, a key or a name goes. Some are valid ids (`toString`, `valueOf`,
 * `__proto_`, 64 characters): the server must accept those and treat them as plain data.
 */
export const HOSTILE_STRINGS: readonly string[] = [
  ...PROTOTYPE_NAMES,
  '__proto_',
  'then',
  'length',
  '',
  'a'.repeat(64),
  'a'.repeat(65),
  'dev.1',
  '.',
  'a..b',
  '*',
  '>',
  'hub.>',
  'a.*',
  'ü',
  'Ωmega-1',
  '😀',
  '\ud800',
  'a\u0000b',
  '\u0000',
  ' ',
  'a b',
  '\n',
  '%',
  '%zz',
  '-',
  '_',
  '0',
  'NaN',
  'null',
  '$ref',
  '..',
  '/',
  'x'.repeat(1024),
  'x'.repeat(1025),
];

/** The string as the server sees it after UTF-8 (lone surrogates become U+FFFD). */
export function asDecoded(s: string): string {
  return Buffer.from(s, 'utf8').toString('utf8');
}

/** §1 Ids: 1–64 characters of [A-Za-z0-9_-], not `__proto__`, `constructor` or `prototype`. */
export function isProtocolId(s: unknown): boolean {
  return typeof s === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(s) && !RESERVED.has(s);
}

/** §8 attribute names: str≤64 (1..64 UTF-16 units), not a reserved name. */
export function isAttrName(s: string): boolean {
  const d = asDecoded(s);
  return d.length >= 1 && d.length <= 64 && !RESERVED.has(d);
}

/** §8 `str≤n`: 1..n UTF-16 units. */
export function isStr(s: string, max: number): boolean {
  const d = asDecoded(s);
  return d.length >= 1 && d.length <= max;
}

/** §8 Attrs: at most 64 attribute names to a string ≤ 1024, a finite number, a boolean or nil. */
export function isAttrs(v: unknown): boolean {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) return false;
  const keys = Object.keys(v);
  if (keys.length > 64) return false;
  for (const k of keys) {
    if (!isAttrName(k)) return false;
    const x = (v as Record<string, unknown>)[k];
    if (x === null || typeof x === 'boolean' || (typeof x === 'number' && Number.isFinite(x))) continue;
    if (typeof x === 'string' && asDecoded(x).length <= 1024) continue;
    return false;
  }
  return true;
}

/**
 * §1 limits anywhere in a command's parameters or a hub's result value: names (map keys) of 1..64
 * characters, strings ≤ 1024.
 */
export function paramsWithinLimits(v: unknown, binAsText = false): boolean {
  if (typeof v === 'string') return asDecoded(v).length <= 1024;
  // a bin in a hub's result is passed on as base64 text, held to a string's length (src/protocol/result-bin.ts);
  // params hold no bin and no NaN or ±Infinity (PROTOCOL.md §1, since review "msgpack")
  if (v instanceof Uint8Array) return binAsText && Math.ceil(v.length / 3) * 4 <= 1024;
  if (typeof v === 'number') return binAsText || Number.isFinite(v);
  if (typeof v !== 'object' || v === null) return true;
  if (Array.isArray(v)) return v.every((x) => paramsWithinLimits(x, binAsText));
  return Object.entries(v).every(([k, x]) => isStr(k, 64) && paramsWithinLimits(x, binAsText));
}

/**
 * Raw path segments for the HTTP API, sent byte for byte. Malformed percent-escapes must be
 * refused (400 or 404), never thrown into uWS.
 */
export const MALFORMED_ESCAPES: readonly string[] = ['%', '%zz', '%E0%A4%A', '%C0', '%FF', 'a%', '%%', '%2', '%u0041', '%C0%AF', '%ED%A0%80', '%F4%90%80%80'];

/** Path segments that decode fine but are not ids, or are ids that reach Object.prototype. */
export const HOSTILE_SEGMENTS: readonly string[] = [
  ...PROTOTYPE_NAMES,
  '%5F%5Fproto%5F%5F',
  'constructor%00',
  '%00',
  '%2e%2e',
  '%2F',
  'a%20b',
  '%F0%9F%98%80',
  '*',
  '>',
  'a.b',
  'a'.repeat(64),
  'a'.repeat(65),
  'a'.repeat(300),
  'a'.repeat(3000),
];

/** encodeURIComponent, keeping a lone surrogate as the bytes a broken client would send. */
export function encodeSegment(s: string): string {
  try {
    return encodeURIComponent(s);
  } catch {
    return '%ED%A0%80';
  }
}

/** decodeURIComponent, or null for a malformed escape. */
export function tryDecodeSegment(raw: string): string | null {
  try {
    return decodeURIComponent(raw);
  } catch {
    return null;
  }
}

/** Authorization header values that must all be refused with 401 (a JSON error body). */
export function badAuthorizations(jwtLike: { wrongKey: string; algNone: string; expired?: string; badClaims: string }): string[] {
  return [
    'Bearer',
    'Bearer ',
    'Bearer a b',
    'Basic YWRtaW46YWRtaW4=',
    'bearer',
    `Bearer ${'A'.repeat(8_000)}`,
    `Bearer ${'A'.repeat(70_000)}`,
    'Bearer ..',
    'Bearer eyJhbGciOiJIUzI1NiJ9.e30.',
    `Bearer ${jwtLike.wrongKey}`,
    `Bearer ${jwtLike.algNone}`,
    `Bearer ${jwtLike.badClaims}`,
    ...(jwtLike.expired ? [`Bearer ${jwtLike.expired}`] : []),
  ];
}

/** JSON texts that are not JSON, or not an object, or an object hostile in itself. */
export const HOSTILE_JSON_TEXTS: readonly string[] = [
  '',
  '{',
  '{"a":',
  'nul',
  '[]',
  '1',
  '"x"',
  'null',
  'true',
  '\ufeff{}',
  '{"a":1}garbage',
  '{"a":1,"a":2}',
  '{"__proto__":{"admin":true}}',
  '{"constructor":{"prototype":{"admin":true}}}',
  '{"x":"\\ud800"}',
  '{"x":1e400}',
  '{"x":5149013111111111111}',
  '{"x":-0}',
  '\u0000',
];

/** `[[[...]]]` nested `depth` deep, as JSON text. */
export function deepJsonArray(depth: number): string {
  return '['.repeat(depth) + ']'.repeat(depth);
}

/** `{"a":{"a":...}}` nested `depth` deep, as JSON text. */
export function deepJsonObject(depth: number): string {
  return '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
}

/** An object whose own key `__proto__` is data (as JSON.parse makes it), not the prototype. */
export function withProtoKey(base: Record<string, unknown>, value: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  Object.defineProperty(out, '__proto__', { value, enumerable: true, writable: true, configurable: true });
  return out;
}

/** An object with the given own keys (any of them may be `__proto__`). */
export function objectWithKeys(entries: ReadonlyArray<readonly [string, unknown]>): Record<string, unknown> {
  const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const [k, v] of entries) Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  // a plain prototype back, so JSON.stringify and the msgpack writer see an ordinary object
  return Object.setPrototypeOf(out, Object.prototype) as Record<string, unknown>;
}
