import { BucketCounts, bucketOf } from './audit-buckets.js';
import { AUDIT_SCAN_MAX, compareKey, decodeCursor, encodeCursor, erasureOf, matches, type AuditEntry, type AuditLog, type AuditPage, type AuditQuery, type AuditRetention } from './audit.js';

/** The audit trail of this process only (DATA_DIR=:memory:, tests): a restart forgets it. */
export class MemoryAuditLog implements AuditLog {
  /** oldest first, by (at, id) */
  private entries: AuditEntry[] = [];
  /** the same entries by bucket (audit-buckets.ts), each oldest first */
  private readonly byBucket = new Map<string, AuditEntry[]>();
  private readonly counts = new BucketCounts();
  readonly lost = 0;
  /** home → the time of its last erasure */
  private readonly erased = new Map<string, number>();

  constructor(
    readonly retention: AuditRetention,
    private readonly now: () => number = Date.now,
  ) {}

  record(entry: AuditEntry): void {
    const e = structuredClone(entry);
    const b = bucketOf(e);
    let list = this.byBucket.get(b);
    if (!list) this.byBucket.set(b, (list = []));
    insert(this.entries, e);
    insert(list, e);
    this.counts.add(b);
    const home = erasureOf(e);
    if (home !== undefined) this.erased.set(home, Math.max(e.at, this.erased.get(home) ?? 0));
    this.trim();
  }

  async list(query: AuditQuery): Promise<AuditPage> {
    this.trim();
    const erasedAt = query.afterErasure && query.homeId !== undefined ? this.erased.get(query.homeId) : undefined;
    const q = erasedAt === undefined ? query : { ...query, since: Math.max(query.since ?? 0, erasedAt + 1) };
    const from = decodeCursor(q.cursor);
    let i = this.entries.length - 1;
    if (from) while (i >= 0 && compareKey(key(this.entries[i]!), from) >= 0) i--;
    const out: AuditEntry[] = [];
    let scanned = 0;
    for (; i >= 0 && out.length < q.limit && scanned < AUDIT_SCAN_MAX; i--, scanned++) {
      const e = this.entries[i]!;
      if (q.since !== undefined && e.at < q.since) return { entries: out, next: null };
      if (matches(e, q)) out.push(structuredClone(e));
    }
    const last = this.entries[i + 1];
    return { entries: out, next: i >= 0 && last ? encodeCursor(last.at, last.id) : null };
  }

  async flushed(): Promise<void> {}

  async close(): Promise<void> {}

  private trim(): void {
    // removed in chunks: one splice per record at a million entries would cost a millisecond each
    const slack = Math.min(this.retention.maxEntries, 1_024);
    const over = this.entries.length - this.retention.maxEntries;
    if (over > slack) {
      const doomed = new Set<AuditEntry>();
      for (const [b, n] of this.counts.plan(over)) for (const e of this.take(b, n)) doomed.add(e);
      this.entries = this.entries.filter((e) => !doomed.has(e));
    }
    const oldest = this.now() - this.retention.maxAgeMs;
    let n = 0;
    // the oldest of all is the oldest of its bucket
    for (; n < this.entries.length && this.entries[n]!.at < oldest; n++) {
      const b = bucketOf(this.entries[n]!);
      this.take(b, 1);
      this.counts.remove(b);
    }
    if (n > 0) this.entries.splice(0, n);
  }

  /** Removes the `n` oldest entries of a bucket from its list (not from `entries`). */
  private take(b: string, n: number): AuditEntry[] {
    const list = this.byBucket.get(b);
    if (!list) return [];
    const out = list.splice(0, n);
    if (list.length === 0) this.byBucket.delete(b);
    return out;
  }
}

/** Inserts in (at, id) order: nearly always appended, entries come in time order from one clock. */
function insert(list: AuditEntry[], e: AuditEntry): void {
  let i = list.length;
  while (i > 0 && compareKey(key(list[i - 1]!), key(e)) > 0) i--;
  list.splice(i, 0, e);
}

const key = (e: AuditEntry): [number, string] => [e.at, e.id];
