/**
 * `GET /v1/admin/tokens/revocations` a page at a time: the revocations in force (up to 1,000,000),
 * the longest kept first, then by what they revoke, so that following `next` (as `after`) lists each
 * once; a page alone stopped at 1,000 with no way past (review "apiconform" F8).
 */
import type { Static } from '@sinclair/typebox';
import { ID_RULE, isValidId, type TokenRevocation } from '../../proto/subjects.js';
import { TierError } from '../errors.js';
import type { RevocationListReply } from '../schemas/fleet.js';
import { queryCount, queryOne } from '../transport/http-input.js';

/** Revocations per page: default and most (as the hub list's). */
export const REVOCATIONS_PAGE_DEFAULT = 100;
export const REVOCATIONS_PAGE_MAX = 1_000;

export interface RevocationsQuery {
  jti?: string;
  sub?: string;
  home?: string;
  limit: number;
  /** the last revocation of the previous page, as its `next` named it */
  after?: Position;
}

/** Where a revocation stands in the list's order: `until` (Unix s, descending), then its key (ascending). */
interface Position {
  exp: number;
  key: string;
}

/** `?jti&sub&home&limit&after`; a bad or repeated one answers invalid_field naming it. */
export function revocationsQuery(q: URLSearchParams): RevocationsQuery {
  const bad = (field: string, what: string) => new TierError('invalid_field', `${field}: ${what}`, { field });
  const out: RevocationsQuery = { limit: queryCount(q, 'limit', REVOCATIONS_PAGE_DEFAULT, REVOCATIONS_PAGE_MAX) };
  for (const name of ['jti', 'sub'] as const) {
    const v = queryOne(q, name);
    if (v === null) continue;
    if (v.length === 0 || v.length > 128) throw bad(name, 'must be 1..128 characters');
    out[name] = v;
  }
  const home = queryOne(q, 'home');
  if (home !== null) {
    if (!isValidId(home)) throw bad('home', `must be ${ID_RULE}`);
    out.home = home;
  }
  const after = queryOne(q, 'after');
  if (after !== null) {
    const position = after.length <= 512 ? decodeCursor(after) : null;
    if (position === null) throw bad('after', 'must be the `next` of a previous page');
    out.after = position;
  }
  return out;
}

/** Revocations in the list's order, each with its position: sorted once, paged many times. */
export type SortedRevocations = ReadonlyArray<{ r: TokenRevocation; at: Position }>;

/** `all` in the list's order (longest kept first, then by what each revokes). */
export function sortRevocations(all: readonly TokenRevocation[]): SortedRevocations {
  return all.map((r) => ({ r, at: { exp: r.exp, key: keyOf(r) } })).sort((a, b) => compare(a.at, b.at));
}

/** One page of the revocations matching the query, with the cursor of the next (null on the last). */
export function revocationPage(all: readonly TokenRevocation[], q: RevocationsQuery): Static<typeof RevocationListReply> {
  return pageOf(sortRevocations(all), q);
}

/** One page of `sorted`: the query's filter, then from past `after` by a binary search. */
export function pageOf(sorted: SortedRevocations, q: RevocationsQuery): Static<typeof RevocationListReply> {
  const filtered = q.jti === undefined && q.sub === undefined && q.home === undefined;
  const matching = filtered ? sorted : sorted.filter(({ r }) => (q.jti === undefined || r.jti === q.jti) && (q.sub === undefined || r.sub === q.sub) && (q.home === undefined || r.home === q.home));
  const after = q.after;
  let from = 0;
  if (after !== undefined) {
    // the first past `after` in the list's order
    let hi = matching.length;
    while (from < hi) {
      const mid = (from + hi) >>> 1;
      if (compare(matching[mid]!.at, after) <= 0) from = mid + 1;
      else hi = mid;
    }
  }
  const page = matching.slice(from, from + q.limit);
  const last = page.at(-1);
  const next = last !== undefined && from + page.length < matching.length ? encodeCursor(last.at) : null;
  return { revocations: page.map((e) => view(e.r)), total: matching.length, next };
}

/**
 * The revocations as the list route pages them, read and sorted once, kept `keepMs` and then let go
 * (at the 1,000,000 most, about 165 MB of heap): each page read and sorted the whole set, at
 * 1,000,000 some seconds of the event loop a page, and a listing of every one a thousand pages
 * (review diff18). A revocation made by this node goes into the kept list at once (`added`); one
 * made on another node shows within `keepMs`.
 */
export class RevocationPages {
  private sorted: Array<{ r: TokenRevocation; at: Position }> | null = null;
  private reading: Promise<SortedRevocations> | null = null;
  /** made while a read was under way: put into its answer */
  private addedDuringRead: TokenRevocation[] = [];
  private forget: NodeJS.Timeout | undefined;
  /** revocations put into the kept list since it was read */
  private inserts = 0;

  constructor(
    private readonly read: () => Promise<TokenRevocation[]>,
    readonly keepMs = 30_000,
  ) {}

  /**
   * A revocation this node made: into the kept list where it belongs, one of the same key replaced;
   * past INSERTS_KEPT since the read, the list is let go instead (each insert walks it: a storm of
   * revocations beside a listing walked a million entries per revocation).
   */
  added(r: TokenRevocation): void {
    if (this.reading !== null) this.addedDuringRead.push(r);
    if (this.sorted === null) return;
    if (++this.inserts > INSERTS_KEPT) this.sorted = null;
    else insert(this.sorted, r);
  }

  async page(q: RevocationsQuery): Promise<Static<typeof RevocationListReply>> {
    return pageOf(await this.list(), q);
  }

  /** Lets the kept list go now (a node stopping). */
  close(): void {
    clearTimeout(this.forget);
    this.sorted = null;
  }

  private list(): Promise<SortedRevocations> {
    if (this.sorted !== null) return Promise.resolve(this.sorted);
    // pages asked at once share one read
    return (this.reading ??= (async () => {
      try {
        const list = sortRevocations(await this.read()) as Array<{ r: TokenRevocation; at: Position }>;
        for (const r of this.addedDuringRead) insert(list, r);
        this.sorted = list;
        this.inserts = 0;
        clearTimeout(this.forget);
        this.forget = setTimeout(() => (this.sorted = null), this.keepMs).unref();
        return list;
      } finally {
        this.reading = null;
        this.addedDuringRead = [];
      }
    })());
  }
}

/** Revocations put into a kept list before it is let go instead. */
const INSERTS_KEPT = 100;

/** `r` into `list` at its place in the list's order; one of the same key (a revocation widened) taken out first. */
function insert(list: Array<{ r: TokenRevocation; at: Position }>, r: TokenRevocation): void {
  const at = { exp: r.exp, key: keyOf(r) };
  const same = list.findIndex((e) => e.at.key === at.key);
  if (same >= 0) list.splice(same, 1);
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compare(list[mid]!.at, at) < 0) lo = mid + 1;
    else hi = mid;
  }
  list.splice(lo, 0, { r, at });
}

/** What a revocation covers, as one string: distinct for distinct revocations in force. */
function keyOf(r: TokenRevocation): string {
  const [kind, id] = r.jti !== undefined ? ['jti', r.jti] : r.sub !== undefined ? ['sub', r.sub] : ['home', r.home ?? ''];
  return `${kind}\u0000${id}\u0000${r.before ?? ''}`;
}

function compare(a: Position, b: Position): number {
  return b.exp - a.exp || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
}

function encodeCursor(p: Position): string {
  return Buffer.from(JSON.stringify([p.exp, p.key]), 'utf8').toString('base64url');
}

function decodeCursor(text: string): Position | null {
  if (!/^[A-Za-z0-9_-]+$/.test(text)) return null;
  try {
    const v: unknown = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
    if (Array.isArray(v) && v.length === 2 && Number.isSafeInteger(v[0]) && typeof v[1] === 'string') return { exp: v[0] as number, key: v[1] };
  } catch {
    // not JSON: refused below
  }
  return null;
}

const iso = (s: number) => new Date(s * 1000).toISOString();

function view(r: TokenRevocation): Static<typeof RevocationListReply>['revocations'][number] {
  return {
    ...(r.jti === undefined ? {} : { jti: r.jti }),
    ...(r.sub === undefined ? {} : { sub: r.sub }),
    ...(r.home === undefined ? {} : { home: r.home }),
    ...(r.before === undefined ? {} : { before: iso(r.before) }),
    until: iso(r.exp),
  };
}
