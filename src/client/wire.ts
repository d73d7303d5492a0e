import type { AppEventMessage, AppReloadMessage, Position, RecoveryFailure, SubResult } from '../../proto/app.js';
import { ClientError, isErrReply } from './errors.js';

/** A message from the server, checked enough that the client can act on it without trusting it. */
export type Incoming =
  | { type: 'answer'; id: number; outcome: { ok: true; result: unknown } | { ok: false; error: ClientError } }
  | { type: 'event'; event: AppEventMessage }
  | { type: 'reload'; reload: AppReloadMessage }
  /** the server ended the subscription to `home` (its token lost the home) */
  | { type: 'end'; home: string; error: ClientError };

const FAILURES: ReadonlySet<string> = new Set<RecoveryFailure>(['epoch_changed', 'too_old', 'unavailable']);

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function isPosition(v: unknown): v is Position {
  return isRecord(v) && typeof v.epoch === 'string' && Number.isSafeInteger(v.offset) && (v.offset as number) >= 0;
}

function isFailure(v: unknown): v is RecoveryFailure {
  return typeof v === 'string' && FAILURES.has(v);
}

/** One text frame; null for anything the client does not understand (it is ignored). */
export function parseIncoming(text: string): Incoming | null {
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isRecord(m)) return null;
  switch (m.op) {
    case 'ok':
      return typeof m.id === 'number' ? { type: 'answer', id: m.id, outcome: { ok: true, result: m.result } } : null;
    case 'err':
      // an err without an id answers a request the server could not read: nothing waits for it
      return isErrReply(m) && typeof m.id === 'number' ? { type: 'answer', id: m.id, outcome: { ok: false, error: ClientError.fromReply(m) } } : null;
    case 'evt': {
      if (typeof m.home !== 'string' || typeof m.kind !== 'string' || typeof m.hub !== 'string') return null;
      // a malformed position cannot be placed: the event is delivered as one without a position
      if (m.pos !== undefined && !isPosition(m.pos)) delete m.pos;
      return { type: 'event', event: m as unknown as AppEventMessage };
    }
    case 'reload':
      // a reason this client does not know (a newer server's) is still a reload: dropped, the app
      // missed it and every event of the new epoch after it (review "compat")
      if (typeof m.home !== 'string' || !isPosition(m.pos)) return null;
      return { type: 'reload', reload: { op: 'reload', home: m.home, reason: isFailure(m.reason) ? m.reason : 'unavailable', pos: m.pos } };
    case 'end':
      // the same fields as an `err`, with the home in place of the request's id
      const reply = { ...m, op: 'err' };
      if (typeof m.home !== 'string' || !isErrReply(reply)) return null;
      return { type: 'end', home: m.home, error: ClientError.fromReply(reply) };
    default:
      return null;
  }
}

/** The `result` of a `sub` answer; an older server answers `{home}` only (no positions, no recovery). */
export function parseSubResult(raw: unknown, home: string): SubResult {
  const r = isRecord(raw) ? raw : {};
  const out: SubResult = { home, pos: isPosition(r.pos) ? r.pos : null };
  if (typeof r.recovered === 'boolean') out.recovered = r.recovered;
  if (isFailure(r.reason)) out.reason = r.reason;
  return out;
}
