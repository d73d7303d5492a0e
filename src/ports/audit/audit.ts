/**
 * The audit trail: who did what to which home, hub or device, from where, and how it ended.
 * Entries are built by the node (src/actors/audit-trail.ts); the port stores and lists them.
 */

import type { AuditAction, AuditActor, AuditEntry } from '../../../proto/subjects.js';
import { cutWhole } from '../../protocol/well-formed.js';

export type { AuditAction, AuditActor, AuditEntry };

export interface AuditQuery {
  homeId?: string;
  hubId?: string;
  /** a user's `sub`, or `admin` for the admin token, or a rule id */
  actor?: string;
  /** the actor's kind: `actor=admin` alone also finds a user whose sub is `admin`, and a rule of that id */
  actorKind?: AuditActor['kind'];
  /** an action or its prefix: `rule.` matches every rule action */
  action?: string;
  /** `ok`, an error code, or `error` for every outcome but ok */
  outcome?: string;
  /** ms since the epoch, inclusive */
  since?: number;
  /** ms since the epoch, exclusive */
  until?: number;
  /** 1..AUDIT_PAGE_MAX */
  limit: number;
  /** the `next` of the previous page */
  cursor?: string;
  /** with homeId: only entries after the home's last erasure (what the home's users read: an id given again to another household starts a new trail) */
  afterErasure?: boolean;
}

/** A home's erasure that succeeded: the stores keep its time for `afterErasure` as long as the trail's age. */
export function erasureOf(e: AuditEntry): string | undefined {
  return e.action === 'home.erase' && e.outcome === 'ok' ? e.homeId : undefined;
}

export interface AuditPage {
  /** newest first */
  entries: AuditEntry[];
  /** the cursor of the next (older) page; null when there is none */
  next: string | null;
}

export interface AuditRetention {
  /** entries older than this are removed and never listed (ms) */
  maxAgeMs: number;
  /** entries kept in all; past it the oldest of the largest bucket go first (audit-buckets.ts) */
  maxEntries: number;
}

/**
 * Where the audit trail is kept (LMDB in the embedded default, Redis in a cluster: every node
 * reads what every node recorded).
 *
 * - `record` never throws and never waits: the entry is written with the others of a short window
 *   (100 ms in the disk and Redis adapters; `list` on the same node writes what waits first). A
 *   write that fails loses the entries of that write; they are counted in `lost` and logged, and
 *   the action they describe is not affected. An entry is listable once `flushed()` resolves, and
 *   by a `list` on the same store object that starts after `record` (read your own writes).
 * - `list` answers entries matching every filter given, newest first, at most `limit`: by `at`
 *   (then id) in a store of one process; in a store shared by nodes (Redis) by the order the
 *   entries reached it, which differs from `at` only by the nodes' clock skew. One call examines a bounded number of entries: a page may hold
 *   fewer than `limit`, even none, and still give a `next`; the end is `next: null`. Following
 *   `next` never repeats an entry nor skips one present when the first page was read, except
 *   those trimmed meanwhile. A cursor from another store or a damaged one answers the first page.
 * - `afterErasure` (with `homeId`): only entries after the home's last successful `home.erase`,
 *   whatever `since`, `until` or `cursor` say. The store keeps each home's erasure time as long as
 *   it runs (past the trail's age: a retention raised later must not bring entries back); a home
 *   erased before the store kept it (an earlier release) is looked for in its entries.
 * - Retention: none older than `maxAgeMs` is listed; about `maxEntries` are kept. Past the count
 *   the oldest entry of the largest bucket (a home and an actor: `bucketOf`) is removed first, so
 *   one home's or one caller's flood evicts its own entries before any of a quieter bucket's.
 *   Storage is bounded by the count.
 * - Ids are opaque: `__proto__`, `constructor` and the like are homes, hubs and actors like any other.
 */
export interface AuditLog {
  readonly retention: AuditRetention;
  /** entries lost to failed writes since the store opened */
  readonly lost: number;
  record(entry: AuditEntry): void;
  list(query: AuditQuery): Promise<AuditPage>;
  /** resolves once every entry recorded so far is written (or lost) */
  flushed(): Promise<void>;
  /** writes what is queued, then stops */
  close(): Promise<void>;
}

/** Most entries one page holds. */
export const AUDIT_PAGE_MAX = 500;
/** Entries one `list` call looks at before it answers with what it found and a `next`. */
export const AUDIT_SCAN_MAX = 5_000;
/** Longest kept string of an entry field (ids are shorter; detail is cut here). */
export const DETAIL_MAX = 256;

/** True when the entry passes every filter of the query but the time bounds and cursor. */
export function matches(e: AuditEntry, q: AuditQuery): boolean {
  if (q.homeId !== undefined && e.homeId !== q.homeId) return false;
  if (q.hubId !== undefined && e.hubId !== q.hubId) return false;
  if (q.actor !== undefined && (e.actor.sub ?? e.actor.kind) !== q.actor) return false;
  if (q.actorKind !== undefined && e.actor.kind !== q.actorKind) return false;
  if (q.action !== undefined && !e.action.startsWith(q.action)) return false;
  if (q.outcome !== undefined && (q.outcome === 'error' ? e.outcome === 'ok' : e.outcome !== q.outcome)) return false;
  if (q.since !== undefined && e.at < q.since) return false;
  if (q.until !== undefined && e.at >= q.until) return false;
  return true;
}

/** Bounds every string of an entry (an entry built from a hostile request stays small). */
export function bounded(e: AuditEntry): AuditEntry {
  // never through an emoji: half of it read back as U+FFFD from one store, a lone \ud83d from another (review "unicode")
  const cut = (s: string) => cutWhole(s, DETAIL_MAX);
  const out: AuditEntry = { id: cut(e.id), at: e.at, actor: { kind: e.actor.kind }, from: { node: cut(e.from.node) }, action: cut(e.action) as AuditAction, outcome: cut(e.outcome) };
  if (e.actor.sub !== undefined) out.actor.sub = cut(e.actor.sub);
  if (e.from.ip !== undefined) out.from.ip = cut(e.from.ip);
  if (e.homeId !== undefined) out.homeId = cut(e.homeId);
  if (e.hubId !== undefined) out.hubId = cut(e.hubId);
  if (e.deviceId !== undefined) out.deviceId = cut(e.deviceId);
  if (e.target !== undefined) out.target = cut(e.target);
  if (e.requestId !== undefined) out.requestId = cut(e.requestId);
  if (e.detail !== undefined) out.detail = cut(e.detail);
  return out;
}

/** An entry read back from storage (JSON or msgpack), or null when it is not one. */
export function entryOf(v: unknown): AuditEntry | null {
  if (typeof v !== 'object' || v === null) return null;
  const o = v as Record<string, unknown>;
  const actor = o.actor as Record<string, unknown> | undefined;
  const from = o.from as Record<string, unknown> | undefined;
  if (typeof o.id !== 'string' || typeof o.at !== 'number' || typeof o.action !== 'string' || typeof o.outcome !== 'string') return null;
  if (typeof actor !== 'object' || actor === null || typeof actor.kind !== 'string') return null;
  if (typeof from !== 'object' || from === null || typeof from.node !== 'string') return null;
  const e: AuditEntry = { id: o.id, at: o.at, actor: { kind: actor.kind as AuditActor['kind'] }, from: { node: from.node }, action: o.action as AuditAction, outcome: o.outcome };
  if (typeof actor.sub === 'string') e.actor.sub = actor.sub;
  if (typeof from.ip === 'string') e.from.ip = from.ip;
  for (const k of ['homeId', 'hubId', 'deviceId', 'target', 'requestId', 'detail'] as const) {
    const s = o[k];
    if (typeof s === 'string') e[k] = s;
  }
  return e;
}

/** A position in a time-ordered trail: an entry's time and id (LMDB and memory adapters). */
export function encodeCursor(at: number, id: string): string {
  return Buffer.from(JSON.stringify([at, id])).toString('base64url');
}

/** The position a cursor names, or null for a damaged one (the caller then starts from the newest). */
export function decodeCursor(cursor: string | undefined): [number, string] | null {
  if (cursor === undefined) return null;
  try {
    const v: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(v) && v.length === 2 && typeof v[0] === 'number' && typeof v[1] === 'string') return [v[0], v[1]];
  } catch {
    // not JSON: treated as no cursor
  }
  return null;
}

/** Orders (at, id) positions: time, then id. */
export function compareKey(a: readonly [number, string], b: readonly [number, string]): number {
  return a[0] - b[0] || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0);
}
