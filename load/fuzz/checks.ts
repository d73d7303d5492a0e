import type { HubEvent } from '../../proto/app.js';
import { CloseCode, ErrorCodes, isErrorCode } from '../../proto/errors.js';
import { MpMap, pack } from './msgpack.js';

/**
 * The invariants every answer of the server keeps, whatever it was sent: error frames, app
 * replies and HTTP error bodies carry a code of proto/errors.ts with its number and temporary
 * flag, and every close the server decides carries a code of CloseCode. Each check returns a
 * description of what is wrong, or null.
 */

export const CLOSE_CODES: ReadonlySet<number> = new Set(Object.values(CloseCode));

// a Record needs every kind of proto/app.ts: the list cannot drift from the protocol
const EVENT_KINDS: Record<HubEvent['kind'], true> = { state: true, event: true, devices: true, online: true, offline: true, removed: true };

/** Frame types a server sends (PROTOCOL.md §8). */
const SERVER_FRAME_TYPES = new Set([2, 3, 6, 7, 10, 11, 12]);

const isUint = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function codeProblem(code: unknown, num: unknown, temporary: unknown, what: string): string | null {
  if (!isErrorCode(code)) return `${what}: code ${JSON.stringify(code)} is not in proto/errors.ts`;
  const row = ErrorCodes[code];
  if (num !== row.code) return `${what}: code ${code} with number ${JSON.stringify(num)} (the table says ${row.code})`;
  if (temporary !== row.temporary) return `${what}: code ${code} with temporary ${JSON.stringify(temporary)} (the table says ${row.temporary})`;
  return null;
}

/** A decoded server → hub frame (null-prototype map from the fuzzer's own reader). */
export function checkServerFrame(v: unknown): string | null {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) return 'server frame is not a map';
  const f = v as Record<string, unknown>;
  if (!isUint(f.t) || !SERVER_FRAME_TYPES.has(f.t)) return `server frame type ${JSON.stringify(f.t)} is not one a server sends`;
  switch (f.t) {
    case 2:
      for (const k of ['v', 'ep', 'hb', 'idle', 'max', 'ts', 's']) if (!isUint(f[k])) return `welcome: ${k} is not an unsigned integer`;
      if (typeof f.dl !== 'object' || f.dl === null || Array.isArray(f.dl)) return 'welcome: dl is not a map';
      return null;
    case 6:
      return isUint(f.s) ? null : 'ack: s is not an unsigned integer';
    case 7:
      if (!isUint(f.id) || typeof f.d !== 'string' || typeof f.m !== 'string' || !isUint(f.to)) return 'command: id, d, m or to malformed';
      return null;
    case 10:
      if (typeof f.msg !== 'string' && f.msg !== undefined) return 'error: msg is not a string';
      return codeProblem(f.e, f.c, f.tmp, 'error frame');
    case 12:
      if (f.e !== undefined && f.e !== null && !isErrorCode(f.e)) return `bye: reason ${JSON.stringify(f.e)} is not in proto/errors.ts`;
      return null;
    default:
      return null;
  }
}

/** An HTTP error answer (status ≥ 400): the JSON error body of README "HTTP API". */
export function checkErrorBody(status: number, text: string): string | null {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return `status ${status} with a body that is not JSON: ${JSON.stringify(text.slice(0, 80))}`;
  }
  if (typeof body !== 'object' || body === null) return `status ${status} with a JSON body that is not an object`;
  const b = body as Record<string, unknown>;
  if (b.ok !== false) return `status ${status} with ok ${JSON.stringify(b.ok)}`;
  const problem = codeProblem(b.code, b.num, b.temporary, `status ${status}`);
  if (problem) return problem;
  if (typeof b.message !== 'string') return `status ${status}: message is not a string`;
  const http = ErrorCodes[b.code as keyof typeof ErrorCodes].http;
  if (http !== status) return `status ${status} with code ${String(b.code)}, whose status in the table is ${http}`;
  return null;
}

/** The code of an HTTP error body, or null. */
export function errorCodeOf(text: string): string | null {
  try {
    const b = JSON.parse(text) as { code?: unknown };
    return typeof b.code === 'string' ? b.code : null;
  } catch {
    return null;
  }
}

/** A message the server sends on an app socket (§11). */
export function checkAppMessage(v: unknown): string | null {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'app message is not a map';
  const m = v as Record<string, unknown>;
  switch (m.op) {
    case 'ok':
      return isUint(m.id) ? null : 'ok reply without a valid id';
    case 'err':
      if (m.id !== undefined && !isUint(m.id)) return `err reply with id ${JSON.stringify(m.id)}`;
      if (typeof m.msg !== 'string') return 'err reply: msg is not a string';
      return codeProblem(m.code, m.num, m.temporary, 'err reply');
    case 'evt':
      return Object.hasOwn(EVENT_KINDS, m.kind as string) ? null : `evt of kind ${JSON.stringify(m.kind)}`;
    default:
      return `app message with op ${JSON.stringify(m.op)}`;
  }
}

/**
 * The value as it looks after a UTF-8 round trip (lone surrogates become U+FFFD): a server may
 * forward an ill-formed JSON string only in its well-formed UTF-8 form.
 */
export function utf8Normalized(v: unknown): unknown {
  const fix = (s: string) => Buffer.from(s, 'utf8').toString('utf8');
  if (typeof v === 'string') return fix(v);
  if (Array.isArray(v)) return v.map(utf8Normalized);
  if (typeof v === 'object' && v !== null && !(v instanceof Uint8Array)) {
    const out = Object.create(null) as Record<string, unknown>;
    for (const k of Object.keys(v)) out[fix(k)] = utf8Normalized((v as Record<string, unknown>)[k]);
    return out;
  }
  return v;
}

/** Own-key deep equality (null-prototype and plain objects alike; `__proto__` is a key like any other). */
export function sameData(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a === 'number' && typeof b === 'number') return Number.isNaN(a) && Number.isNaN(b);
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    return a instanceof Uint8Array && b instanceof Uint8Array && Buffer.from(a).equals(Buffer.from(b));
  }
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  for (const k of ka) {
    if (!Object.hasOwn(b, k)) return false;
    if (!sameData((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
  }
  return true;
}

/**
 * A code that says the server failed rather than the input: `internal` (a bug), or `unavailable`
 * (a backend away, which no input of a run whose backends stay up may cause).
 */
export function serverFault(code: unknown): boolean {
  return code === 'internal' || code === 'unavailable';
}

/**
 * Whether the frame of a command to a hub fits the `max` of its welcome (PROTOCOL.md §5; over it
 * the command is refused `frame_too_large`), sized by the fuzzer's own writer: `either` when the
 * command id the node picks (1 to 5 bytes) or an absent `to` (the node's default) could tip it.
 */
export function commandFrameFit(d: string, m: string, p: unknown, to: number | undefined, max: number): 'fits' | 'over' | 'either' {
  const least = pack(new MpMap([['t', 7], ['id', 0], ['d', d], ['m', m], ['p', p], ['to', to ?? 0]])).length;
  const most = least + 4 + (to === undefined ? 4 : 0);
  return least > max ? 'over' : most <= max ? 'fits' : 'either';
}
