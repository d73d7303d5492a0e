import { TierError } from '../../errors.js';

/** Free-form labels of a hub (`site: "plant-3"`): keys are ids, values short strings. */
export type HubLabels = Record<string, string>;

/** The secret a rotation replaced, still accepted until `until` (ms since the Unix epoch). */
export interface PreviousSecret {
  secret: string;
  until: number;
  /** the caller's idempotency key of the rotation that replaced it, when it gave one */
  rotationKey?: string;
}

/** A provisioned hub. */
export interface HubRecord {
  hubId: string;
  homeId: string;
  model: string | undefined;
  /**
   * The handshake secret as the caller gave it: sealed (`src/auth/secret-box.ts`) by every writer
   * of the server, so the store never holds it in clear; a record written before sealing existed
   * holds it in clear and is read as such. The port neither seals nor opens.
   */
  secret: string;
  enabled: boolean;
  /** ms since the Unix epoch */
  createdAt: number;
  /** version of `secret`: absent = 1; each rotation adds one */
  secretVersion?: number;
  /** the secret before the last rotation, accepted during its grace period; absent when none */
  previousSecret?: PreviousSecret;
  /** absent or non-empty */
  labels?: HubLabels;
  /** what the hub said in its last hello (`fw`), when it said anything */
  firmware?: string;
}

/**
 * A hub as every caller but the handshake check and resealing needs it: the record without its
 * secrets, so a node can cache it for commands without holding every hub's secret in memory.
 */
export type HubInfo = Omit<HubRecord, 'secret' | 'previousSecret'>;

/**
 * Fields `update` may change; `null` removes an optional one, absent leaves it. `secret` and
 * `previousSecret` are for sealing the same secrets anew (a new key at rest), never for a new
 * secret: that is `rotateSecret`, which keeps the grace period and the version.
 */
export interface HubPatch {
  homeId?: string;
  model?: string | null;
  enabled?: boolean;
  labels?: HubLabels | null;
  firmware?: string | null;
  secret?: string;
  previousSecret?: PreviousSecret | null;
}

/**
 * What `update` checks in the same write as it changes: each given field must hold, or nothing is
 * written. What a change read first and must not undo if another writer (another node, a rotation)
 * came between its read and its write.
 */
export interface HubExpect {
  homeId?: string;
  secret?: string;
  /** the previous secret's (sealed) value; `null`: the record has none */
  previousSecret?: string | null;
}

/** Whether `r` holds what `expect` asks (the adapters' one reading of HubExpect). */
export function holds(r: HubRecord, expect: HubExpect | undefined): boolean {
  if (expect === undefined) return true;
  if (expect.homeId !== undefined && r.homeId !== expect.homeId) return false;
  if (expect.secret !== undefined && r.secret !== expect.secret) return false;
  return expect.previousSecret === undefined || (r.previousSecret?.secret ?? null) === expect.previousSecret;
}

/** What `list` selects; every given filter must hold (exact match). */
export interface HubQuery {
  /** the `next` of the previous page: hubs with a larger id */
  after?: string;
  /** hubs whose id starts with this */
  prefix?: string;
  homeId?: string;
  model?: string;
  firmware?: string;
  enabled?: boolean;
  /** hubs on the page at most */
  limit: number;
  /** @default 5_000: records examined at most per call (filters that match few hubs end a page early) */
  scanLimit?: number;
}

export interface HubPage {
  /** in ascending id order (UTF-16 code units; ids are ASCII) */
  hubs: HubRecord[];
  /** pass as `after` for the next page; null when no hub beyond this page can match */
  next: string | null;
}

/** @default of HubQuery.scanLimit */
export const DEFAULT_SCAN_LIMIT = 5_000;

/**
 * Provisioning of hubs: which hubs exist, their home and their handshake secret.
 *
 * - `create` fails with `already_exists` when the hub id is taken; it never overwrites.
 * - `get` answers null for unknown hubs; reads see every write that resolved before.
 * - `lookup` answers the record without its secrets (`HubInfo`), null for unknown hubs. A caching
 *   adapter may answer it from memory, for a bounded time (commands and rules ask it per call);
 *   `get` always reads the store.
 * - `list` pages through hubs in id order. A page is at most `limit` hubs; a call examines at most
 *   `scanLimit` records, so a page may be short (even empty) with a `next` when filters skip many:
 *   bounded work per call on any fleet size. A hub created or removed meanwhile may or may not
 *   appear; no hub present throughout is skipped or repeated.
 * - `listHome` answers the hubs of a home in id order, those with an id above `after` when given
 *   (the last id of the previous page), at most `limit`: a home's index, not a scan of the fleet.
 *   A page shorter than `limit` is the last. Paging by `after` skips and repeats no hub present
 *   throughout, however many the home has (removing the hubs of a page moves no later one).
 * - `update` changes only the given fields of an existing hub and answers the new record, null
 *   for an unknown hub (nothing created). A change of `homeId` moves it from one home's index to
 *   the other's. Given `expect`, it checks and writes in one step (a compare-and-set): null, and
 *   nothing changed, when the record does not hold it.
 * - `rotateSecret` makes `secret` current (version + 1) and keeps the replaced one as
 *   `previousSecret` until `graceUntil` (one previous secret: an older one is dropped), atomically
 *   per hub; null for an unknown hub. Given a `key` equal to the `rotationKey` of the last rotation,
 *   it changes nothing and answers the record as it is (the caller's retry of that rotation).
 * - `remove` deletes the record and its index entries; false when there was none.
 * - `forget` drops what this process may have cached of the hub, so the next read sees the store
 *   (another node changed it); a no-op where nothing is cached. `forgetAll` drops every cached
 *   record (the bus was down: change notices may have been missed).
 * - `placements` answers each hub's home, whether it is enabled and its `createdAt`, null for an unknown hub, in
 *   the order asked, always from the store: one round trip per call, for re-checking many sessions.
 * - Secrets are returned to the provisioning caller once and to the handshake check (`get`);
 *   nothing else should expose them. Commands, rules and views read with `lookup`; `get` also
 *   serves changes that must start from the stored record (an admin's move or removal).
 */
export interface HubRegistry {
  /**
   * True when `get` settles in its caller's turn (memory, LMDB; a cache over one of them): the hub
   * gateway then answers a hub's upgrade inside uWS's callback, else after it (`HubAdmission.inTurn`).
   */
  readonly inTurn: boolean;
  create(record: HubRecord): Promise<void>;
  get(hubId: string): Promise<HubRecord | null>;
  lookup(hubId: string): Promise<HubInfo | null>;
  setEnabled(hubId: string, enabled: boolean): Promise<boolean>;
  list(query: HubQuery): Promise<HubPage>;
  listHome(homeId: string, limit: number, after?: string): Promise<HubRecord[]>;
  /** null: no such hub, or it no longer holds what `expect` asks (read it again) */
  update(hubId: string, patch: HubPatch, expect?: HubExpect): Promise<HubRecord | null>;
  rotateSecret(hubId: string, secret: string, graceUntil: number, key?: string): Promise<HubRecord | null>;
  remove(hubId: string): Promise<boolean>;
  forget(hubId: string): void;
  forgetAll(): void;
  placements(hubIds: readonly string[]): Promise<Array<HubPlacement | null>>;
  close(): Promise<void>;
}

/** Where a hub belongs now: what a held session is re-checked against. */
export interface HubPlacement {
  homeId: string;
  enabled: boolean;
  /** the record's `createdAt`: another one means the id was deleted and provisioned again */
  createdAt: number;
}

/**
 * What a placement says about a session of `homeId` admitted with the record of `provisioned`
 * (its `provisionMark`, 0: unknown); null: it may stay. The same id provisioned again counts as deleted.
 */
export function placementVerdict(session: { readonly homeId: string; readonly provisioned: number }, placement: HubPlacement | null): 'deleted' | 'disabled' | 'moved' | null {
  if (placement === null) return 'deleted';
  if (session.provisioned !== 0 && provisionMark(placement.createdAt) !== session.provisioned) return 'deleted';
  if (!placement.enabled) return 'disabled';
  return placement.homeId === session.homeId ? null : 'moved';
}

/**
 * What a session keeps of its record's `createdAt` to tell the same id provisioned again: the
 * timestamp folded into 1..2^30-2, a small integer that V8 keeps in the field itself (a ms
 * timestamp is a heap number of its own: 16 bytes a session, twice: the socket and the session).
 * Two provisionings of one id collide only 2^30 ms (12.4 days) apart to the millisecond.
 */
/**
 * The pages of a home's hubs along `listHome`'s cursor (`read(after)`, `size` a page) until a short
 * one. A cursor that does not move on (a listing out of order) throws rather than read the same
 * page for ever.
 */
export async function* homePages<T extends { hubId: string }>(homeId: string, read: (after: string | undefined) => Promise<T[]>, size: number): AsyncGenerator<T[]> {
  for (let after: string | undefined; ; ) {
    const page = await read(after);
    const last = page.at(-1)?.hubId;
    if (after !== undefined && last !== undefined && last <= after) throw new TierError('internal', `the hubs of home ${homeId} were listed out of order (${last} after ${after}): stopped rather than read the same page again`);
    yield page;
    if (last === undefined || page.length < size) return;
    after = last;
  }
}

/** The ids of every hub of a home: a home's rules replay reports from all its hubs (until 2026-12-06 from the first 1,000 only). */
export async function homeHubIds(registry: Pick<HubRegistry, 'listHome'>, homeId: string, page = 1_000): Promise<string[]> {
  const ids: string[] = [];
  for await (const hubs of homePages(homeId, (after) => registry.listHome(homeId, page, after), page)) for (const h of hubs) ids.push(h.hubId);
  return ids;
}

export function provisionMark(createdAt: number): number {
  // `%` of doubles is a double, which V8 boxes even when whole: `| 0` makes it a small integer
  return (1 + (Math.trunc(createdAt) % 0x3fff_fffe)) | 0;
}

/** True when `r` passes the filters of `q` (the id range is the caller's). */
export function matchesQuery(r: HubRecord, q: HubQuery): boolean {
  return (
    (q.homeId === undefined || r.homeId === q.homeId) &&
    (q.model === undefined || r.model === q.model) &&
    (q.firmware === undefined || r.firmware === q.firmware) &&
    (q.enabled === undefined || r.enabled === q.enabled)
  );
}

/**
 * One page of `list` from records in ascending id order that start after `q.after` and may run
 * past the prefix (the scan stops at the first id outside it). Shared by every adapter, so the
 * paging promise is kept once.
 */
export async function collectPage(records: AsyncIterable<HubRecord> | Iterable<HubRecord>, q: HubQuery): Promise<HubPage> {
  const scanLimit = q.scanLimit ?? DEFAULT_SCAN_LIMIT;
  const hubs: HubRecord[] = [];
  let examined = 0;
  let last: string | null = null;
  for await (const r of records) {
    if (q.after !== undefined && r.hubId <= q.after) continue;
    if (q.prefix !== undefined && !r.hubId.startsWith(q.prefix)) {
      if (r.hubId > q.prefix) return { hubs, next: null };
      continue;
    }
    // a full page, or the scan's bound: there is more to look at
    if (hubs.length >= q.limit || examined >= scanLimit) return { hubs, next: last };
    examined++;
    last = r.hubId;
    if (matchesQuery(r, q)) hubs.push(r);
  }
  return { hubs, next: null };
}

/** Where a prefix scan starts: after the cursor or at the prefix, whichever is later. */
export function scanStart(q: HubQuery): string | undefined {
  if (q.prefix === undefined) return q.after;
  if (q.after === undefined) return q.prefix;
  return q.after > q.prefix ? q.after : q.prefix;
}

/** Labels as own string entries only (a `__proto__` key stays an own key), undefined when none. */
export function labelsOf(raw: unknown): HubLabels | undefined {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return undefined;
  const entries = Object.entries(raw).filter(([, v]) => typeof v === 'string');
  return entries.length > 0 ? (Object.fromEntries(entries) as HubLabels) : undefined;
}

/** A copy of a record with `patch` applied (the adapters' one reading of HubPatch). */
export function patched(r: HubRecord, patch: HubPatch): HubRecord {
  const out: HubRecord = { ...r };
  if (patch.homeId !== undefined) out.homeId = patch.homeId;
  if (patch.model !== undefined) out.model = patch.model ?? undefined;
  if (patch.enabled !== undefined) out.enabled = patch.enabled;
  if (patch.labels !== undefined) {
    if (patch.labels === null || Object.keys(patch.labels).length === 0) delete out.labels;
    else out.labels = labelsOf(patch.labels)!;
  }
  if (patch.firmware !== undefined) {
    if (patch.firmware === null) delete out.firmware;
    else out.firmware = patch.firmware;
  }
  if (patch.secret !== undefined) out.secret = patch.secret;
  if (patch.previousSecret !== undefined) {
    if (patch.previousSecret === null) delete out.previousSecret;
    else out.previousSecret = { ...patch.previousSecret };
  }
  return out;
}

/** A copy of a record after a rotation to `secret` with a grace period until `graceUntil`; the record itself for a retry of the last rotation (same `key`). */
export function rotated(r: HubRecord, secret: string, graceUntil: number, key?: string): HubRecord {
  if (key !== undefined && r.previousSecret?.rotationKey === key) return r;
  const previousSecret: PreviousSecret = { secret: r.secret, until: graceUntil };
  if (key !== undefined) previousSecret.rotationKey = key;
  return { ...r, secret, secretVersion: (r.secretVersion ?? 1) + 1, previousSecret };
}

/**
 * A deep-enough copy (labels and the previous secret are objects of their own), as every adapter
 * returns records: version 1 and empty labels left out.
 */
export function copyRecord<R extends HubInfo>(r: R): R {
  const out: R = { ...r };
  const labels = labelsOf(r.labels);
  if (labels) out.labels = labels;
  else delete out.labels;
  const previous = (r as Partial<HubRecord>).previousSecret;
  if (previous) (out as Partial<HubRecord>).previousSecret = { ...previous };
  if (out.secretVersion === 1) delete out.secretVersion;
  return out;
}

/** The record without its secrets; shares `labels` with `r` (a record the caller owns, as `get` answers). */
export function infoOf(r: HubRecord): HubInfo;
export function infoOf(r: HubRecord | null): HubInfo | null;
export function infoOf(r: HubRecord | null): HubInfo | null {
  if (r === null) return null;
  const { secret: _secret, previousSecret: _previous, ...info } = r;
  return info;
}

/**
 * Nonces of hub handshakes seen recently, to refuse replays.
 * `claim` answers true the first time a key is claimed within `ttlMs`, false on every repeat
 * (exactly one of racing claims wins: within the process, or across nodes for Redis); after
 * `ttlMs` the key is forgotten (the timestamp check refuses anything that old anyway). Where the
 * store keeps time itself (memory, LMDB), `ttlMs` must have passed on both clocks
 * (`nonceForgettable`): a step of the wall clock alone never forgets a nonce. A claim
 * outlives a restart once written: memory never, LMDB once its window is written (at most 100 ms
 * later; `close()` waits for it), Redis before the answer. Memory and LMDB (while its writes
 * succeed) answer in the caller's turn, so a hub's upgrade is answered inside uWS's callback;
 * Redis a turn later, and the hub is then admitted after its upgrade (`inTurn`; docs/ARCHITECTURE.md,
 * "A socket's upgrade").
 */
export interface NonceStore {
  /** True when `claim` settles in its caller's turn (memory, LMDB while its writes succeed), as `HubRegistry.inTurn`. */
  readonly inTurn: boolean;
  claim(key: string, ttlMs: number): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * When a nonce store may forget a claim: only once its hello could no longer be accepted. The
 * timestamp check reads the wall clock, which steps (a VM resumed, then NTP): a claim is kept until
 * its expiry has passed on the wall clock (`wallUntil`, ms since 1970) AND its ttl has really passed
 * on the monotonic clock (`steadyUntil`, monotonicMs). Judged by the wall alone, a step forward
 * expired nonces, the sweep deleted them, and after the step back their hellos were in the window
 * again: a captured hello opened a session. `steadyUntil` undefined: claimed by an earlier process
 * (the monotonic clock does not survive a restart), the wall rule alone.
 */
export function nonceForgettable(wallUntil: number, steadyUntil: number | undefined, wallNow: number, steadyNow: number): boolean {
  return wallUntil <= wallNow && (steadyUntil === undefined || steadyUntil <= steadyNow);
}
