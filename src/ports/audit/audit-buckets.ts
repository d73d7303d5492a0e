/**
 * Fair eviction of the audit trail: entries are counted in buckets, and past `maxEntries` the
 * oldest entry of the largest bucket goes first. An entry is only removed while its bucket is the
 * largest, so a bucket of k entries loses none while another holds more than k: a flood only
 * evicts itself until every bucket is as small as the quietest one it would erase (max-min
 * fairness). No bound per bucket is needed on top: it would remove entries while there is room.
 */

import { entryOf, type AuditEntry } from './audit.js';

/**
 * The bucket of an entry: its home (none is a home of its own) and its actor. One actor's flood,
 * or one home's busy users, fill their own buckets only. A user's failed calls share one bucket
 * whatever the home they name: a refused call may name any home id, and a bucket per home would
 * let one user spread a flood over as many buckets as ids (the admin token and rules act for the
 * homes they name, so they keep a bucket per home).
 */
export function bucketOf(e: AuditEntry): string {
  const home = e.actor.kind === 'user' && e.outcome !== 'ok' ? null : (e.homeId ?? '');
  return JSON.stringify([home, e.actor.kind, e.actor.sub ?? '']);
}

/** The bucket of an entry read back from storage; a damaged one has a bucket of its own. */
export function bucketOfStored(v: unknown): string {
  const e = entryOf(v);
  return e ? bucketOf(e) : '';
}

/** Entries per bucket, answering the largest in O(1) (buckets grouped by count; the top moves by one a step). */
export class BucketCounts {
  private readonly count = new Map<string, number>();
  private readonly byCount = new Map<number, Set<string>>();
  private top = 0;

  get buckets(): number {
    return this.count.size;
  }

  add(bucket: string, n = 1): void {
    if (n > 0) this.move(bucket, n);
  }

  remove(bucket: string): void {
    if (this.count.has(bucket)) this.move(bucket, -1);
  }

  /** A bucket holding the most entries; undefined when none holds any. */
  largest(): string | undefined {
    while (this.top > 0 && !this.byCount.has(this.top)) this.top--;
    return this.top > 0 ? this.byCount.get(this.top)!.values().next().value : undefined;
  }

  /** Takes `n` entries off the largest buckets, one at a time: how many come from each. */
  plan(n: number): Map<string, number> {
    const out = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      const b = this.largest();
      if (b === undefined) break;
      this.remove(b);
      out.set(b, (out.get(b) ?? 0) + 1);
    }
    return out;
  }

  private move(bucket: string, by: number): void {
    const was = this.count.get(bucket) ?? 0;
    const now = was + by;
    if (was > 0) {
      const set = this.byCount.get(was)!;
      set.delete(bucket);
      if (set.size === 0) this.byCount.delete(was);
    }
    if (now > 0) {
      this.count.set(bucket, now);
      let set = this.byCount.get(now);
      if (!set) this.byCount.set(now, (set = new Set()));
      set.add(bucket);
      if (now > this.top) this.top = now;
    } else this.count.delete(bucket);
  }
}
