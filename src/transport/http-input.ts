/**
 * What a request's path segments, query and JSON body decode to, refused where they are not
 * well-formed (a malformed escape, bytes that are not UTF-8, a lone surrogate) with `invalid_field`
 * naming the part: read leniently, such text was stored as U+FFFD.
 */
import { TierError } from '../errors.js';
import { pathOfRounded, roundedInteger, roundedMessage } from '../protocol/json-integers.js';
import { firstLoneSurrogate } from '../protocol/well-formed.js';
import type { HttpCall } from './http.js';

/** A path segment percent-decoded, or null for a malformed escape or invalid UTF-8 (never a throw). */
export function decodeParam(raw: string): string | null {
  if (!raw.includes('%')) return raw;
  try {
    return decodeURIComponent(raw);
  } catch {
    return null;
  }
}

/**
 * The first query parameter whose name or value is a malformed escape or not UTF-8 (its name, cut to
 * 64 characters), or null. URLSearchParams reads such escapes as they are or as U+FFFD, where a path
 * segment is refused: `?actor=%ED%A0%80` was answered 200 (review "unicode").
 */
export function malformedQueryParam(raw: string): string | null {
  if (!raw.includes('%')) return null;
  for (const part of raw.split('&')) {
    const eq = part.indexOf('=');
    const rawName = eq < 0 ? part : part.slice(0, eq);
    const name = decodeParam(rawName.replaceAll('+', ' '));
    if (name === null) return rawName.slice(0, 64);
    if (eq >= 0 && decodeParam(part.slice(eq + 1).replaceAll('+', ' ')) === null) return name.slice(0, 64);
  }
  return null;
}

/**
 * A query parameter's one value, or null when absent. Given twice it is refused `invalid_field`
 * naming it: a proxy or a log may read the other one (the routes took the first, the audit routes refused).
 */
export function queryOne(q: URLSearchParams, name: string): string | null {
  const all = q.getAll(name);
  if (all.length > 1) throw new TierError('invalid_field', `${name}: must be given once`, { field: name });
  return all[0] ?? null;
}

/**
 * An integer parameter in 1..max (`fallback` when absent), written as plain decimal digits: `Number()`
 * also took `0x10`, `1e2`, ` 5` and `1.0`, which the document's `type: integer` does not.
 */
export function queryCount(q: URLSearchParams, name: string, fallback: number, max: number): number {
  const raw = queryOne(q, name);
  if (raw === null) return fallback;
  const n = /^\d{1,16}$/.test(raw) ? Number(raw) : NaN;
  if (!(n >= 1 && n <= max)) throw new TierError('invalid_field', `${name}: must be an integer in 1..${max}`, { field: name });
  return n;
}

/** A body left out; any other refusal of a body (not UTF-8, not JSON) stands where a body is optional. */
class EmptyBody extends TierError {}

/** Refuses bytes that are not UTF-8 (a BOM is dropped). */
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

export async function parseJson(body: Promise<Buffer> | null): Promise<unknown> {
  if (body === null) return undefined;
  const buf = await body;
  if (buf.length === 0) throw new EmptyBody('invalid_field', 'a JSON body is required', { field: 'body' });
  let text: string;
  try {
    text = strictUtf8.decode(buf);
  } catch {
    // decoded leniently, the bytes were stored as U+FFFD where the hub socket refuses them (review "unicode")
    throw new TierError('invalid_field', 'body: not valid UTF-8', { field: 'body' });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new TierError('malformed_frame', 'body is not valid JSON', { field: 'body' });
  }
  const rounded = roundedInteger(text);
  if (rounded !== null) {
    const field = pathOfRounded(value, rounded, 'body');
    throw new TierError('invalid_field', roundedMessage(field, rounded), { field });
  }
  // a lone surrogate comes only from a \u escape (decoded UTF-8 has none): walked only then. Taken,
  // it was answered as given and stored as U+FFFD (a hostile review, 2026-12-06)
  if (text.includes('\\u')) {
    const lone = firstLoneSurrogate(value);
    if (lone) throw new TierError('invalid_field', `${lone.field}: ${lone.key ? 'a key that is ' : ''}not well-formed Unicode (a lone surrogate)`, { field: lone.field });
  }
  return value;
}

/** The JSON body of a route whose body may be left out: undefined when it is empty. */
export async function optionalJson(call: HttpCall): Promise<unknown> {
  try {
    return await call.json();
  } catch (err) {
    if (err instanceof EmptyBody) return undefined;
    throw err;
  }
}
