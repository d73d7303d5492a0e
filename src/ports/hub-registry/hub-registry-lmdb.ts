import type { Database } from 'lmdb';
import { TierError } from '../../errors.js';
import type { DataStore } from '../lmdb.js';
import type { HubRecord, HubRegistry, NonceStore } from './hub-registry.js';

/** A hub as stored: [homeId, secret, enabled, createdAt, model or null] (a tuple: no field names per record). */
type StoredHub = [string, string, boolean, number, string | null];

/**
 * Provisioned hubs on local disk (embedded default): sub-database `hubs`, one entry per hub id.
 * `create` and `setEnabled` check and write in one LMDB write transaction, so racing creates of
 * one id leave exactly one record; both resolve once that transaction is committed (and, with
 * DATA_SYNC=commit, flushed to disk). Reads are synchronous reads of the last commit.
 */
export class LmdbHubRegistry implements HubRegistry {
  private readonly db: Database<StoredHub, string>;

  /** Does not own `data`: the composition root closes it after every adapter. */
  constructor(private readonly data: DataStore) {
    this.db = data.db<StoredHub>('hubs') as unknown as Database<StoredHub, string>;
  }

  async create(record: HubRecord): Promise<void> {
    const value: StoredHub = [record.homeId, record.secret, record.enabled, record.createdAt, record.model ?? null];
    const created = await this.db.transaction(() => {
      if (this.db.get(record.hubId) !== undefined) return false;
      void this.db.put(record.hubId, value);
      return true;
    });
    if (!created) throw new TierError('already_exists', `hub ${record.hubId} is already provisioned`);
    await this.durable();
  }

  async get(hubId: string): Promise<HubRecord | null> {
    const s = this.db.get(hubId);
    return s === undefined ? null : decodeHubRecord(hubId, s);
  }

  async setEnabled(hubId: string, enabled: boolean): Promise<boolean> {
    const found = await this.db.transaction(() => {
      const s = this.db.get(hubId);
      if (s === undefined) return false;
      if (s[2] !== enabled) void this.db.put(hubId, [s[0], s[1], enabled, s[3], s[4]]);
      return true;
    });
    await this.durable();
    return found;
  }

  async close(): Promise<void> {
    await this.data.flushed();
  }

  private async durable(): Promise<void> {
    // a commit is visible at once; with sync 'commit' it is on disk only once flushed
    if (this.data.sync === 'commit') await this.data.flushed();
  }
}

/** Decodes one record of sub-database `hubs` (a key and value as this adapter stores them, e.g. read from a backup). */
export function decodeHubRecord(key: unknown, value: unknown): HubRecord {
  if (typeof key !== 'string' || !Array.isArray(value) || value.length !== 5) throw new TypeError(`not a hub record: ${JSON.stringify(key)}`);
  const s = value as StoredHub;
  return { hubId: key, homeId: s[0], secret: s[1], enabled: s[2], createdAt: s[3], model: s[4] ?? undefined };
}

export interface LmdbNonceStoreOptions {
  /** @default Date.now: the clock (tests inject one) */
  now?: () => number;
  /** @default 10_000 (ms): how often expired nonces are removed */
  sweepMs?: number;
  /** @default 1_000: the most entries one sweep removes (a sweep that hits it runs again at once) */
  sweepBatch?: number;
}

/**
 * Handshake nonces on local disk: sub-database `nonces`. Each claim is two entries, the nonce
 * (`key` → expiry, ms) and an index entry (`[expiry, key]`), so expired nonces are found in
 * expiry order: numbers sort before strings, the index comes first. `claim` checks and writes in
 * one transaction (exactly one of racing claims wins) and resolves once it is committed: a
 * process crash forgets no claim, a power loss with DATA_SYNC=os may forget the last seconds (the
 * handshake's timestamp check still bounds replays to the ttl). An expired entry counts as absent
 * at once; a sweep every `sweepMs` (timer unref'd, stopped by `close()`) removes at most
 * `sweepBatch` of them per transaction, so the database stays as large as the claims of one ttl.
 */
export class LmdbNonceStore implements NonceStore {
  private readonly db: Database<number | null, string | Array<string | number>>;
  private readonly now: () => number;
  private readonly sweepMs: number;
  private readonly sweepBatch: number;
  private timer: NodeJS.Timeout | null = null;
  private sweeping: Promise<void> | null = null;
  private closed = false;

  /** Does not own `data`: the composition root closes it after every adapter. */
  constructor(data: DataStore, options: LmdbNonceStoreOptions = {}) {
    this.db = data.db<number | null>('nonces') as unknown as Database<number | null, string | Array<string | number>>;
    this.now = options.now ?? Date.now;
    this.sweepMs = options.sweepMs ?? 10_000;
    this.sweepBatch = options.sweepBatch ?? 1_000;
    this.arm(this.sweepMs);
  }

  claim(key: string, ttlMs: number): Promise<boolean> {
    return this.db.transaction(() => {
      const now = this.now();
      const until = this.db.get(key);
      if (typeof until === 'number' && until > now) return false;
      if (typeof until === 'number') void this.db.remove([until, key]);
      const next = now + ttlMs;
      void this.db.put(key, next);
      void this.db.put([next, key], null);
      return true;
    });
  }

  /** Removes expired nonces, at most `sweepBatch`; resolves with how many. */
  async sweep(): Promise<number> {
    return this.db.transaction(() => {
      const now = this.now();
      const expired: Array<[number, string]> = [];
      for (const key of this.db.getKeys({ limit: this.sweepBatch })) {
        // the index entries come first, in expiry order: stop at the first live one or at a nonce
        if (!Array.isArray(key) || typeof key[0] !== 'number' || key[0] > now) break;
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
    await this.sweeping;
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
