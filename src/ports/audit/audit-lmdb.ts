import type { Database } from 'lmdb';
import { agingNowMs } from '../../actors/clock.js';
import type { Logger } from '../../log/logger.js';
import type { DataStore } from '../lmdb.js';
import { BucketCounts, bucketOf, bucketOfStored } from './audit-buckets.js';
import { AUDIT_SCAN_MAX, decodeCursor, encodeCursor, entryOf, erasureOf, matches, type AuditEntry, type AuditLog, type AuditPage, type AuditQuery, type AuditRetention } from './audit.js';

/**
 * ms an entry waits to be written with the others: one commit (and its fsync) per 100 ms at most,
 * instead of one per command turn, which had cost a command 20 µs of CPU saturated and 190 µs at
 * 1,000/s (bench --quick); a crash loses at most these last ms of the trail.
 */
const WRITE_MS = 100;
/** entries that are written at once, whatever the time: the buffer stays bounded */
const WRITE_AT = 1_000;
/** Oldest entries removed per turn with writes: trimming keeps pace without a long transaction. */
const TRIM_PER_TURN = 1_000;
const END = Number.MAX_SAFE_INTEGER;

export interface LmdbAuditOptions {
  log?: Logger;
  now?: () => number;
}

/**
 * The audit trail on local disk (embedded default): sub-database `audit` keyed [at, id] (time
 * order, so the newest page is a reverse range read from the end or from the cursor), and
 * `audit-home` keyed [homeId, at, id] for the home's users, and `audit-bucket` keyed [bucket, at,
 * id] for fair eviction (audit-buckets.ts; its counts are read at open). Entries are written with
 * the others of the last WRITE_MS in one transaction, not awaited (a crash may lose those last ms,
 * a power loss the last ones, as with DATA_SYNC=os); after each write the entries past the age are
 * removed, and past the count the oldest of the largest buckets.
 */
export class LmdbAuditLog implements AuditLog {
  private readonly db: Database<AuditEntry, [number, string]>;
  private readonly byHome: Database<1, [string, number, string]>;
  private readonly byBucket: Database<1, [string, number, string]>;
  private readonly buckets = new BucketCounts();
  private readonly now: () => number;
  private count: number;
  private trimScheduled = false;
  private closed = false;
  #lost = 0;
  /** recorded, not written yet */
  private pending: AuditEntry[] = [];
  private writeTimer: NodeJS.Timeout | null = null;

  /** Does not own `data`: the composition root closes it after every adapter. */
  constructor(
    private readonly data: DataStore,
    readonly retention: AuditRetention,
    private readonly options: LmdbAuditOptions = {},
  ) {
    this.db = data.db<AuditEntry>('audit') as unknown as Database<AuditEntry, [number, string]>;
    this.byHome = data.db<1>('audit-home') as unknown as Database<1, [string, number, string]>;
    // retention on the clock a step of the wall clock does not move (clock.ts)
    this.now = options.now ?? agingNowMs;
    this.byBucket = data.db<1>('audit-bucket') as unknown as Database<1, [string, number, string]>;
    this.count = this.db.getCount();
    // a store written before buckets has entries none indexes: index them all once
    if (this.byBucket.getCount() !== this.count) this.reindex();
    else for (const key of this.byBucket.getKeys()) this.buckets.add(key[0]);
    this.scheduleTrim();
  }

  get lost(): number {
    return this.#lost;
  }

  record(entry: AuditEntry): void {
    if (this.pending.push(entry) >= WRITE_AT) this.write();
    else this.writeTimer ??= setTimeout(this.write, WRITE_MS).unref();
  }

  /** Issues the pending entries' puts: lmdb-js commits them as one transaction. */
  private readonly write = (): void => {
    if (this.writeTimer) clearTimeout(this.writeTimer);
    this.writeTimer = null;
    const batch = this.pending;
    if (batch.length === 0) return;
    this.pending = [];
    this.count += batch.length;
    let last: Promise<boolean> | null = null;
    for (const entry of batch) {
      last = this.db.put([entry.at, entry.id], entry);
      if (entry.homeId !== undefined) last = this.byHome.put([entry.homeId, entry.at, entry.id], 1);
      const erased = erasureOf(entry);
      if (erased !== undefined) last = this.markErased(erased, entry.at);
      const bucket = bucketOf(entry);
      last = this.byBucket.put([bucket, entry.at, entry.id], 1);
      this.buckets.add(bucket);
    }
    // the puts of one batch commit or fail together
    last?.catch((err: unknown) => {
      this.#lost += batch.length;
      this.options.log?.warn({ err, entries: batch.length }, 'audit entries not written');
    });
    this.scheduleTrim();
  };

  async list(q: AuditQuery): Promise<AuditPage> {
    // a reader sees committed entries only: the caller's own last action is in the answer
    this.write();
    await this.data.flushed();
    const oldest = this.now() - this.retention.maxAgeMs;
    const erasedAt = q.afterErasure && q.homeId !== undefined ? await this.erasedAt(q.homeId) : 0;
    const since = Math.max(q.since ?? 0, oldest, erasedAt > 0 ? erasedAt + 1 : 0);
    const from = decodeCursor(q.cursor);
    const out: AuditEntry[] = [];
    let scanned = 0;
    // the last key looked at: where the next page starts
    const seen: { last: [number, string] | null } = { last: null };
    const take = (k: [number, string], v: AuditEntry | undefined): boolean => {
      scanned++;
      seen.last = k;
      const e = v === undefined ? null : entryOf(v);
      if (e && matches(e, { ...q, since })) out.push(e);
      return out.length < q.limit && scanned < AUDIT_SCAN_MAX;
    };
    let more = false;
    if (q.homeId !== undefined) {
      const h = q.homeId;
      const start: [string, number, string] | [string, number] = from ? [h, from[0], from[1]] : [h, q.until ?? END];
      for (const key of this.byHome.getKeys({ start, end: [h, since], reverse: true, exclusiveStart: from !== null })) {
        if (!take([key[1], key[2]], this.db.get([key[1], key[2]]))) {
          more = true;
          break;
        }
      }
    } else {
      const start: [number, string] | [number] = from ?? [q.until ?? END];
      for (const { key, value } of this.db.getRange({ start, end: [since], reverse: true, exclusiveStart: from !== null })) {
        if (!take(key, value)) {
          more = true;
          break;
        }
      }
    }
    const at = seen.last;
    return { entries: out, next: more && at ? encodeCursor(at[0], at[1]) : null };
  }

  /**
   * A home's erasures in its index, below every entry: [homeId, 0, "<at>"] (no entry is at 0, and
   * lists end at the trail's age); the last one replaces those before it.
   */
  private markErased(homeId: string, at: number): Promise<boolean> {
    for (const key of this.byHome.getKeys({ start: [homeId, 0], end: [homeId, 1] })) void this.byHome.remove(key).catch(this.failedTrim);
    return this.byHome.put([homeId, 0, String(at)], 1);
  }

  /**
   * The home's last erasure, 0 for none. A home without the record (its erasures, if any, written
   * by a release before 2026-12-06) is looked for in its entries once, and the answer recorded.
   */
  private async erasedAt(homeId: string): Promise<number> {
    let at: number | undefined;
    for (const key of this.byHome.getKeys({ start: [homeId, 0], end: [homeId, 1] })) at = Math.max(at ?? 0, Number(key[2]));
    if (at !== undefined) return at;
    at = 0;
    let read = 0;
    for (const key of this.byHome.getKeys({ start: [homeId, END], end: [homeId, 1], reverse: true })) {
      const entry = this.db.get([key[1], key[2]]);
      if (entry !== undefined && erasureOf(entry) === homeId) {
        at = entry.at;
        break;
      }
      // a home of many entries is read once, in slices: the node serves hubs between them
      if (++read % 2_000 === 0) await new Promise((r) => setImmediate(r));
    }
    void this.byHome.put([homeId, 0, String(at)], 1).catch(this.failedTrim);
    return at;
  }

  async flushed(): Promise<void> {
    this.write();
    await this.data.flushed();
    // a trim sees committed entries only: trimming again once they are, `list` answers within the bounds
    this.runTrim();
    await this.data.flushed();
  }

  async close(): Promise<void> {
    this.write();
    // a trim left for a later turn would read a store its owner closes next (lmdb-js threw from a timer)
    this.closed = true;
    this.trimScheduled = false;
    await this.data.flushed();
  }

  private scheduleTrim(): void {
    if (this.trimScheduled || this.closed) return;
    this.trimScheduled = true;
    setImmediate(() => {
      if (this.trimScheduled) this.runTrim();
    });
  }

  private runTrim(): void {
    this.trimScheduled = false;
    try {
      this.trim();
    } catch (err) {
      this.options.log?.warn({ err }, 'audit trim failed');
    }
  }

  private readonly failedTrim = (err: unknown): void => {
    this.options.log?.warn({ err }, 'audit trim failed');
  };

  /** Builds `audit-bucket` and the counts from the entries: a store of an earlier version, once (about 10 s a million entries). */
  private reindex(): void {
    this.byBucket.clearSync();
    this.data.root.transactionSync(() => {
      for (const { key, value } of this.db.getRange()) {
        const bucket = bucketOfStored(value);
        this.byBucket.putSync([bucket, key[0], key[1]], 1);
        this.buckets.add(bucket);
      }
    });
  }

  /**
   * Removes the entries past the age, then, past the count, the oldest of the largest buckets
   * (audit-buckets.ts), at most TRIM_PER_TURN in all.
   */
  private trim(): void {
    const oldest = this.now() - this.retention.maxAgeMs;
    const doomed = new Map<string, { key: [number, string]; homeId: string | undefined; bucket: string }>();
    for (const { key, value } of this.db.getRange({ limit: TRIM_PER_TURN })) {
      if (key[0] >= oldest) break;
      const bucket = bucketOfStored(value);
      doomed.set(JSON.stringify(key), { key, homeId: value?.homeId, bucket });
      this.buckets.remove(bucket);
    }
    const over = Math.min(this.count - doomed.size - this.retention.maxEntries, TRIM_PER_TURN - doomed.size);
    for (const [bucket, n] of this.buckets.plan(Math.max(0, over))) {
      let found = 0;
      for (const k of this.byBucket.getKeys({ start: [bucket], end: [bucket, END] })) {
        if (found >= n) break;
        const key: [number, string] = [k[1], k[2]];
        const id = JSON.stringify(key);
        // the oldest of a bucket may be past the age, already doomed above
        if (doomed.has(id)) continue;
        doomed.set(id, { key, homeId: this.db.get(key)?.homeId, bucket });
        found++;
      }
      // entries written but not committed yet are not read: counted again, removed next turn
      if (found < n) this.buckets.add(bucket, n - found);
    }
    if (doomed.size === 0) return;
    this.count -= doomed.size;
    for (const d of doomed.values()) {
      this.db.remove(d.key).catch(this.failedTrim);
      if (d.homeId !== undefined) this.byHome.remove([d.homeId, d.key[0], d.key[1]]).catch(this.failedTrim);
      this.byBucket.remove([d.bucket, d.key[0], d.key[1]]).catch(this.failedTrim);
    }
    // more past the bounds than one turn removes: go on next turn
    if (doomed.size === TRIM_PER_TURN) this.scheduleTrim();
  }
}
