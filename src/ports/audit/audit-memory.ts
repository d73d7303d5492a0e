import { AUDIT_SCAN_MAX, compareKey, decodeCursor, encodeCursor, matches, type AuditEntry, type AuditLog, type AuditPage, type AuditQuery, type AuditRetention } from './audit.js';

/** The audit trail of this process only (DATA_DIR=:memory:, tests): a restart forgets it. */
export class MemoryAuditLog implements AuditLog {
  /** oldest first, by (at, id) */
  private readonly entries: AuditEntry[] = [];
  readonly lost = 0;

  constructor(
    readonly retention: AuditRetention,
    private readonly now: () => number = Date.now,
  ) {}

  record(entry: AuditEntry): void {
    const e = structuredClone(entry);
    let i = this.entries.length;
    // nearly always appended: entries come in time order from one clock
    while (i > 0 && compareKey(key(this.entries[i - 1]!), key(e)) > 0) i--;
    this.entries.splice(i, 0, e);
    this.trim();
  }

  async list(q: AuditQuery): Promise<AuditPage> {
    this.trim();
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
    if (over > slack) this.entries.splice(0, over);
    const oldest = this.now() - this.retention.maxAgeMs;
    let n = 0;
    while (n < this.entries.length && this.entries[n]!.at < oldest) n++;
    if (n > 0) this.entries.splice(0, n);
  }
}

const key = (e: AuditEntry): [number, string] => [e.at, e.id];
