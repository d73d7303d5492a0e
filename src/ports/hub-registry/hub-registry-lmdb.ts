import type { Database } from 'lmdb';
import { TierError } from '../../errors.js';
import type { DataStore } from '../lmdb.js';
import {
  collectPage,
  labelsOf,
  patched,
  rotated,
  scanStart,
  type HubPage,
  type HubPatch,
  type HubQuery,
  infoOf,
  type HubInfo,
  type HubRecord,
  type HubPlacement,
  type HubRegistry,
  holds,
  type HubExpect,
  type NonceStore,
  nonceForgettable,
} from './hub-registry.js';
import { randomInt } from 'node:crypto';
import { monotonicMs } from '../../actors/clock.js';

/**
 * A hub as stored, a tuple (no field names per record): [homeId, secret, enabled, createdAt,
 * model, secretVersion, [previous secret, until, its rotation's key?], labels as [key, value] pairs, firmware], null
 * for what is absent. Labels are pairs, not a map: msgpackr renames a `__proto__` map key.
 * Records of the first layout end after `model`: they are read as version 1 with nothing else.
 */
type StoredHub = [string, string, boolean, number, string | null, number?, ([string, number] | [string, number, string] | null)?, (Array<[string, string]> | null)?, (string | null)?];

/** Home index entries: `[homeId, hubId]` → null, in sub-database `hub-homes`. */
type HomeKey = [string, string];

/**
 * Provisioned hubs on local disk (embedded default): sub-database `hubs`, one entry per hub id,
 * and `hub-homes`, the index of `listHome` (rebuilt from `hubs` at open when it is empty, e.g.
 * after importing a backup of the first layout). Every write checks and writes the record and its
 * index in one LMDB write transaction, so racing creates of one id leave exactly one record; each
 * resolves once that transaction is committed (and, with DATA_SYNC=commit, flushed to disk).
 * Reads are synchronous reads of the last commit.
 */
export class LmdbHubRegistry implements HubRegistry {
  readonly inTurn = true;
  private readonly db: Database<StoredHub, string>;
  private readonly homes: Database<null, HomeKey>;

  /** Does not own `data`: the composition root closes it after every adapter. */
  constructor(private readonly data: DataStore) {
    this.db = data.db<StoredHub>('hubs') as unknown as Database<StoredHub, string>;
    this.homes = data.db<null>('hub-homes') as unknown as Database<null, HomeKey>;
    if (this.homes.getKeysCount() === 0 && this.db.getKeysCount() > 0) {
      data.root.transactionSync(() => {
        for (const { key, value } of this.db.getRange()) void this.homes.put([value[0], key], null);
      });
    }
  }

  async create(record: HubRecord): Promise<void> {
    const created = await this.data.written(
      this.db.transaction(() => {
        if (this.db.get(record.hubId) !== undefined) return false;
        this.write(record, null);
        return true;
      }),
    );
    if (!created) throw new TierError('already_exists', `hub ${record.hubId} is already provisioned`);
  }

  async get(hubId: string): Promise<HubRecord | null> {
    const s = this.db.get(hubId);
    return s === undefined ? null : decodeHubRecord(hubId, s);
  }

  async lookup(hubId: string): Promise<HubInfo | null> {
    return infoOf(await this.get(hubId));
  }

  async setEnabled(hubId: string, enabled: boolean): Promise<boolean> {
    return (await this.update(hubId, { enabled })) !== null;
  }

  async list(query: HubQuery): Promise<HubPage> {
    const start = scanStart(query);
    const range = this.db.getRange(start === undefined ? {} : { start });
    return collectPage(
      (function* () {
        for (const { key, value } of range) yield decodeHubRecord(key, value);
      })(),
      query,
    );
  }

  async listHome(homeId: string, limit: number, after?: string): Promise<HubRecord[]> {
    const out: HubRecord[] = [];
    // [homeId, ''] sorts before every [homeId, id]; the range ends before the next home's. Read
    // lazily, not `limit` keys: an entry without its record must not make a page short (the last)
    for (const key of this.homes.getKeys({ start: [homeId, after ?? ''] })) {
      if (key[0] !== homeId || out.length >= limit) break;
      if (after !== undefined && key[1] <= after) continue;
      const s = this.db.get(key[1]);
      if (s !== undefined) out.push(decodeHubRecord(key[1], s));
    }
    return out;
  }

  async update(hubId: string, patch: HubPatch, expect?: HubExpect): Promise<HubRecord | null> {
    return this.change(hubId, (r) => (holds(r, expect) ? patched(r, patch) : null));
  }

  async rotateSecret(hubId: string, secret: string, graceUntil: number, key?: string): Promise<HubRecord | null> {
    return this.change(hubId, (r) => rotated(r, secret, graceUntil, key));
  }

  async remove(hubId: string): Promise<boolean> {
    return this.data.written(
      this.db.transaction(() => {
        const s = this.db.get(hubId);
        if (s === undefined) return false;
        void this.db.remove(hubId);
        void this.homes.remove([s[0], hubId]);
        return true;
      }),
    );
  }

  forget(): void {}

  forgetAll(): void {}

  async placements(hubIds: readonly string[]): Promise<Array<HubPlacement | null>> {
    return hubIds.map((id) => {
      const s = this.db.get(id);
      if (s === undefined) return null;
      const r = decodeHubRecord(id, s);
      return { homeId: r.homeId, enabled: r.enabled, createdAt: r.createdAt };
    });
  }

  async close(): Promise<void> {
    await this.data.flushed();
  }

  /** Reads, changes and writes one record in one transaction. */
  /** `f` answers the record to write, or null to write nothing. */
  private async change(hubId: string, f: (r: HubRecord) => HubRecord | null): Promise<HubRecord | null> {
    return this.data.written(
      this.db.transaction(() => {
        const s = this.db.get(hubId);
        if (s === undefined) return null;
        const old = decodeHubRecord(hubId, s);
        const r = f(old);
        if (r === null) return null;
        this.write(r, old.homeId);
        return r;
      }),
    );
  }

  /** Inside a transaction: the record and its home index entry (moved when the home changed). */
  private write(r: HubRecord, oldHome: string | null): void {
    void this.db.put(r.hubId, encodeHubRecord(r));
    if (oldHome !== r.homeId) {
      if (oldHome !== null) void this.homes.remove([oldHome, r.hubId]);
      void this.homes.put([r.homeId, r.hubId], null);
    }
  }
}

function encodeHubRecord(r: HubRecord): StoredHub {
  const prev = r.previousSecret;
  return [r.homeId, r.secret, r.enabled, r.createdAt, r.model ?? null, r.secretVersion ?? 1, prev ? (prev.rotationKey === undefined ? [prev.secret, prev.until] : [prev.secret, prev.until, prev.rotationKey]) : null, r.labels ? Object.entries(r.labels) : null, r.firmware ?? null];
}

/**
 * Decodes one record of sub-database `hubs` (a key and value as this adapter stores them, e.g. read
 * from a backup); a TypeError naming the field when one has the wrong type.
 */
export function decodeHubRecord(key: unknown, value: unknown): HubRecord {
  if (typeof key !== 'string') throw new TypeError(`not a hub record: key ${JSON.stringify(key)} is not a string`);
  if (!Array.isArray(value) || (value.length !== 5 && value.length !== 9)) throw new TypeError(`not a hub record: ${JSON.stringify(key)} is not an array of 5 or 9 fields`);
  const s = value as unknown[];
  const bad = (field: string, what: string) => new TypeError(`hub record ${JSON.stringify(key)}: ${field} must be ${what}`);
  if (typeof s[0] !== 'string') throw bad('homeId', 'a string');
  if (typeof s[1] !== 'string') throw bad('secret', 'a string');
  if (typeof s[2] !== 'boolean') throw bad('enabled', 'a boolean');
  if (typeof s[3] !== 'number') throw bad('createdAt', 'a number');
  if (s[4] !== null && typeof s[4] !== 'string') throw bad('model', 'a string or null');
  if (s.length === 9) {
    if (!Number.isInteger(s[5])) throw bad('secretVersion', 'an integer');
    const prev = s[6];
    const prevOk = Array.isArray(prev) && (prev.length === 2 || (prev.length === 3 && typeof prev[2] === 'string')) && typeof prev[0] === 'string' && typeof prev[1] === 'number';
    if (prev !== null && !prevOk) throw bad('previous secret', '[secret, until, rotation key?] or null');
    const labels = s[7];
    if (labels !== null && !(Array.isArray(labels) && labels.every((l) => Array.isArray(l) && l.length === 2 && typeof l[0] === 'string' && typeof l[1] === 'string'))) throw bad('labels', '[key, value] string pairs or null');
    if (s[8] !== null && typeof s[8] !== 'string') throw bad('firmware', 'a string or null');
  }
  const h = s as StoredHub;
  const r: HubRecord = { hubId: key, homeId: h[0], secret: h[1], enabled: h[2], createdAt: h[3], model: h[4] ?? undefined };
  if (typeof h[5] === 'number' && h[5] !== 1) r.secretVersion = h[5];
  if (h[6]) r.previousSecret = h[6].length === 3 ? { secret: h[6][0], until: h[6][1], rotationKey: h[6][2] } : { secret: h[6][0], until: h[6][1] };
  const labels = Array.isArray(h[7]) ? labelsOf(Object.fromEntries(h[7])) : undefined;
  if (labels) r.labels = labels;
  if (typeof h[8] === 'string') r.firmware = h[8];
  return r;
}

export interface LmdbNonceStoreOptions {
  /** @default Date.now: the wall clock (tests inject one) */
  now?: () => number;
  /** @default monotonicMs: the monotonic clock (tests inject one) */
  monotonic?: () => number;
  /** @default 10_000 (ms): how often expired nonces are removed */
  sweepMs?: number;
  /** @default 1_000: the most entries one sweep removes (a sweep that hits it runs again at once) */
  sweepBatch?: number;
  /** @default 100 (ms): how long a claim waits for others to share its write */
  writeMs?: number;
}

interface QueuedClaim {
  key: string;
  /** its expiry on the wall clock (ms since 1970) */
  next: number;
  /** its expiry on the monotonic clock (monotonicMs) */
  steadyUntil: number;
  /** made while writes failed: its caller waits for this write */
  waits: boolean;
}

/** An index entry's value: the store that claimed it (`run`) and the claim's monotonic expiry; null before it was kept. */
type SteadyMark = [run: number, steadyUntil: number] | null;

/**
 * Handshake nonces on local disk: sub-database `nonces`. Each claim is two entries, the nonce
 * (`key` → expiry on the wall clock, ms) and an index entry (`[expiry, key]` → `[run, monotonic
 * expiry]`), so expired nonces are found in expiry order: numbers sort before strings, the index
 * comes first. A claim is forgotten once both its expiries passed (`nonceForgettable`); the
 * monotonic one only counts in the store that claimed it (`run`, random per store opened): after
 * a restart the wall rule alone applies.
 *
 * `claim` decides at once, in its caller's turn, from what is committed and the claims of this
 * process still being written (`unwritten`): one process per data directory, so exactly one of
 * racing claims wins. The write follows within `writeMs`, and `close()` waits for it.
 * Why not wait for the commit: a hub's upgrade answered in a later turn goes through uWS's
 * `res.cork`, which in the v20.30 binaries can close the new socket right after `open`
 * (uNetworking/uWebSockets#1928). What a crash forgets is the same either way: a claim not yet
 * committed. A replay of it needs the signed request itself, and the handshake's timestamp check
 * bounds that to the ttl. A claim whose write failed stays in memory until it expires; after a
 * failed write, claims wait for their own commit again until one succeeds.
 *
 * Claims wait up to `writeMs` in memory for others to share their transaction: written as they came,
 * each was a transaction callback that lmdb-js runs on this thread inside the write transaction;
 * together, a burst of handshakes cost the node less CPU, kernel time most (BENCHMARKS.md,
 * 2026-12-02 fifth). A crash forgets at most that window's claims.
 *
 * An expired entry counts as absent at once; a sweep every `sweepMs` (timer unref'd, stopped by
 * `close()`) removes at most `sweepBatch` of them per transaction, in wall expiry order, stopping
 * at the first it must keep: the database stays as large as the claims of one ttl, plus those a
 * step back of the wall clock holds longer (only hellos within the window are claimed: few).
 */
export class LmdbNonceStore implements NonceStore {
  private readonly db: Database<number | SteadyMark, string | Array<string | number>>;
  private readonly now: () => number;
  private readonly monotonic: () => number;
  /** marks this store's claims: their monotonic expiry means nothing to another process */
  private readonly run = randomInt(2 ** 31);
  private readonly sweepMs: number;
  private readonly sweepBatch: number;
  private timer: NodeJS.Timeout | null = null;
  private sweeping: Promise<void> | null = null;
  private closed = false;
  private readonly writeMs: number;
  /** claims decided and not yet committed: key → its claim (the object queued for the write) */
  private readonly unwritten = new Map<string, QueuedClaim>();
  /** claims decided and not yet handed to the store, in the order made */
  private queued: QueuedClaim[] = [];
  private writeTimer: NodeJS.Timeout | null = null;
  /** settles after the last claim's write (transactions commit in order) */
  private lastWrite: Promise<void> = Promise.resolve();
  /** the last write failed: claims wait for their own until one succeeds */
  private failing = false;

  /** Does not own `data`: the composition root closes it after every adapter. */
  constructor(data: DataStore, options: LmdbNonceStoreOptions = {}) {
    this.db = data.db<number | SteadyMark>('nonces') as unknown as Database<number | SteadyMark, string | Array<string | number>>;
    this.now = options.now ?? Date.now;
    this.monotonic = options.monotonic ?? monotonicMs;
    this.sweepMs = options.sweepMs ?? 10_000;
    this.sweepBatch = options.sweepBatch ?? 1_000;
    this.writeMs = options.writeMs ?? 100;
    this.arm(this.sweepMs);
  }

  /** False while writes fail: a claim then waits for its own commit, a later turn. */
  get inTurn(): boolean {
    return !this.failing;
  }

  claim(key: string, ttlMs: number): Promise<boolean> {
    const now = this.now();
    const steady = this.monotonic();
    if (this.holds(key, now, steady)) return Promise.resolve(false);
    // while writes fail, a claim waits for its own write and fails with it (the handshake answers
    // `internal`): claims held only in memory would grow with every handshake until they expire
    const claim: QueuedClaim = { key, next: now + ttlMs, steadyUntil: steady + ttlMs, waits: this.failing };
    this.unwritten.set(key, claim);
    this.queued.push(claim);
    if (claim.waits) return this.write().then(() => true);
    // unref'd: close() writes what waits
    if (!this.writeTimer) this.writeTimer = setTimeout(() => void this.write().catch(() => {}), this.writeMs).unref();
    return Promise.resolve(true);
  }

  /** True while `key` has a claim that may not be forgotten yet (one not yet written first). */
  private holds(key: string, now: number, steady: number): boolean {
    const pending = this.unwritten.get(key);
    if (pending) return !nonceForgettable(pending.next, pending.steadyUntil, now, steady);
    const until = this.db.get(key);
    if (typeof until !== 'number') return false;
    return until > now || !nonceForgettable(until, this.steadyUntil(this.db.get([until, key])), now, steady);
  }

  /** The monotonic expiry of an index entry's value, when this store wrote it. */
  private steadyUntil(mark: number | SteadyMark | undefined): number | undefined {
    return Array.isArray(mark) && mark[0] === this.run ? mark[1] : undefined;
  }

  /** Hands the queued claims to the store in one transaction; settles once it commits (or fails). */
  private write(): Promise<void> {
    if (this.writeTimer) clearTimeout(this.writeTimer);
    this.writeTimer = null;
    const claims = this.queued;
    this.queued = [];
    if (claims.length === 0) return this.lastWrite;
    const written = this.db
      .transaction(() => {
        for (const { key, next, steadyUntil } of claims) {
          const until = this.db.get(key);
          if (typeof until === 'number') void this.db.remove([until, key]);
          void this.db.put(key, next);
          void this.db.put([next, key], [this.run, steadyUntil]);
        }
      })
      .then(
        () => {
          this.failing = false;
          for (const c of claims) if (this.unwritten.get(c.key) === c) this.unwritten.delete(c.key);
        },
        (err: unknown) => {
          this.failing = true;
          // an answered claim stays in memory until it expires (the sweep forgets it then)
          for (const c of claims) if (c.waits && this.unwritten.get(c.key) === c) this.unwritten.delete(c.key);
          throw err;
        },
      );
    this.lastWrite = written.catch(() => {});
    return written;
  }

  /** Writes the claims waiting for their window now; settles once every claim made so far is committed (or its write failed). */
  written(): Promise<void> {
    if (this.queued.length > 0) this.write().catch(() => {});
    return this.lastWrite;
  }

  /** Claims of this process not yet committed (or whose write failed and that have not expired). */
  get unwrittenClaims(): number {
    return this.unwritten.size;
  }

  /** Removes expired nonces (both clocks past: `nonceForgettable`), at most `sweepBatch`; resolves with how many. */
  async sweep(): Promise<number> {
    const startedAt = this.now();
    const steadyAt = this.monotonic();
    for (const [key, c] of this.unwritten) if (nonceForgettable(c.next, c.steadyUntil, startedAt, steadyAt)) this.unwritten.delete(key);
    return this.db.transaction(() => {
      const now = this.now();
      const steady = this.monotonic();
      const expired: Array<[number, string]> = [];
      for (const { key, value } of this.db.getRange({ limit: this.sweepBatch })) {
        // the index entries come first, in wall expiry order: stop at the first to keep or at a
        // nonce (one the monotonic clock keeps holds the rest back at most one ttl)
        if (!Array.isArray(key) || typeof key[0] !== 'number' || !nonceForgettable(key[0], this.steadyUntil(value), now, steady)) break;
        expired.push(key as [number, string]);
      }
      // removed after the scan, not under the cursor that reads the range
      for (const [until, nonce] of expired) {
        void this.db.remove([until, nonce]);
        if (this.db.get(nonce) === until) void this.db.remove(nonce);
      }
      return expired.length;
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await Promise.all([this.sweeping, this.written()]);
  }

  private arm(ms: number): void {
    if (this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.sweeping = this.sweep().then(
        (removed) => this.arm(removed >= this.sweepBatch ? 0 : this.sweepMs),
        // the store was closed under the sweep, or a write failed: the next sweep tries again
        () => this.arm(this.sweepMs),
      );
    }, ms);
    this.timer.unref();
  }
}
