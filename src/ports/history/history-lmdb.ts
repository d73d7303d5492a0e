import type { Database } from 'lmdb';
import type { DataStore } from '../lmdb.js';
import type { EventHistory, HistoryEntry, HistoryRead, HistoryRetention, Position } from './history.js';
import { checkRead, newEpoch } from './history-read.js';

interface StoredEntry {
  /** appended at, ms */
  t: number;
  d: Uint8Array;
}

/** The kept range of a home: offsets first..top (first > top: none kept). */
interface Range {
  first: number;
  top: number;
  /** at most the time of entry `first` (ms): the age trim reads that entry only once this is too old */
  t0?: number;
}

/** A home with appends not yet committed: its range and those entries, for reads meanwhile. */
interface Live extends Range {
  pending: Array<HistoryEntry & { t: number }>;
  inflight: number;
}

export interface LmdbHistoryOptions {
  now?: () => number;
  /** ms between sweeps that drop entries past their age in homes nobody appends to; 0: none */
  sweepMs?: number;
}

/** Entries looked at per append to drop those past their age: trimming keeps pace without a burst. */
const AGE_TRIM_PER_APPEND = 16;
/** Homes looked at per sweep. */
const SWEEP_HOMES = 500;

/**
 * Every home's history in the node's DataStore: sub-database `history` keyed [homeId, offset],
 * `history-range` keyed homeId with the kept range, `history-epoch` with the store's epoch.
 *
 * An append is given its offset at once and is readable here at once; its commit follows with the
 * turn's batch. A node that did not stop cleanly may have given out offsets whose entries never
 * reached the disk: opening such a store starts a new epoch, so apps reload instead of trusting a
 * history with holes. Offsets survive `remove`, so positions stay comparable.
 */
export class LmdbEventHistory implements EventHistory {
  private readonly entries: Database<StoredEntry, [string, number]>;
  private readonly ranges: Database<Range, string>;
  private readonly live = new Map<string, Live>();
  private readonly now: () => number;
  private readonly sweeper: NodeJS.Timeout | null;
  private sweepFrom: string | undefined;

  private constructor(
    data: DataStore,
    private readonly epoch: string,
    readonly retention: HistoryRetention,
    options: LmdbHistoryOptions,
  ) {
    this.entries = data.db<StoredEntry>('history') as unknown as Database<StoredEntry, [string, number]>;
    this.ranges = data.db<Range>('history-range') as unknown as Database<Range, string>;
    this.now = options.now ?? Date.now;
    const sweepMs = options.sweepMs ?? 60_000;
    this.sweeper = sweepMs > 0 ? setInterval(() => this.sweep(), sweepMs).unref() : null;
  }

  static async open(data: DataStore, retention: HistoryRetention, options: LmdbHistoryOptions = {}): Promise<LmdbEventHistory> {
    const meta = data.db<string>('history-epoch') as unknown as Database<string, string>;
    let epoch = meta.get('epoch');
    if (epoch === undefined || data.uncleanStart) {
      epoch = newEpoch();
      await meta.put('epoch', epoch);
      await data.durable();
    }
    return new LmdbEventHistory(data, epoch, retention, options);
  }

  append(homeId: string, data: Uint8Array): Promise<Position> {
    let live = this.live.get(homeId);
    if (!live) {
      live = { ...this.range(homeId), pending: [], inflight: 0 };
      this.live.set(homeId, live);
    }
    const t = this.now();
    const offset = ++live.top;
    live.pending.push({ offset, data, t });
    live.inflight++;
    void this.entries.put([homeId, offset], { t, d: data });
    this.trim(homeId, live, t);
    const range: Range = { first: live.first, top: live.top, t0: live.t0 ?? t };
    this.ranges.put(homeId, range).then(
      () => this.settle(homeId, offset),
      () => this.settle(homeId, offset),
    );
    return Promise.resolve({ epoch: this.epoch, offset });
  }

  read(homeId: string, since: Position, upTo: number, limit: number): Promise<HistoryRead> {
    const live = this.live.get(homeId);
    const range = live ?? this.range(homeId);
    const pos = { epoch: this.epoch, offset: range.top };
    const plan = checkRead(pos, since, upTo, limit);
    if (!plan.ok) return Promise.resolve(plan);
    const from = since.offset + 1;
    const to = since.offset + plan.count;
    if (plan.count === 0) return Promise.resolve({ ok: true, epoch: this.epoch, entries: [] });
    if (from < range.first) return Promise.resolve({ ok: false, reason: 'too_old', pos });
    const found = new Map<number, { t: number; d: Uint8Array }>();
    for (const { key, value } of this.entries.getRange({ start: [homeId, from], end: [homeId, to + 1] })) found.set(key[1], value);
    for (const e of live?.pending ?? []) if (e.offset >= from && e.offset <= to) found.set(e.offset, { t: e.t, d: e.data });
    const oldest = found.get(from);
    if (!oldest || oldest.t < this.now() - this.retention.maxAgeMs) return Promise.resolve({ ok: false, reason: 'too_old', pos });
    const entries: HistoryEntry[] = [];
    for (let offset = from; offset <= to; offset++) {
      const e = found.get(offset);
      // trimmed between the range read and now: the caller starts over
      if (!e) return Promise.resolve({ ok: false, reason: 'too_old', pos });
      entries.push({ offset, data: e.d });
    }
    return Promise.resolve({ ok: true, epoch: this.epoch, entries });
  }

  position(homeId: string): Promise<Position> {
    return Promise.resolve({ epoch: this.epoch, offset: (this.live.get(homeId) ?? this.range(homeId)).top });
  }

  async remove(homeId: string): Promise<void> {
    const live = this.live.get(homeId);
    const range = live ?? this.range(homeId);
    for (let offset = range.first; offset <= range.top; offset++) void this.entries.remove([homeId, offset]);
    range.first = range.top + 1;
    if (live) live.pending = [];
    await this.ranges.put(homeId, { first: range.first, top: range.top, t0: this.now() });
  }

  /** Drops entries past their age in up to SWEEP_HOMES homes, resuming where the last sweep ended. */
  sweep(): number {
    let seen = 0;
    let dropped = 0;
    let last: string | undefined;
    const oldest = this.now() - this.retention.maxAgeMs;
    for (const { key, value } of this.ranges.getRange(this.sweepFrom === undefined ? {} : { start: this.sweepFrom })) {
      if (seen++ >= SWEEP_HOMES) break;
      last = key;
      if (this.live.has(key) || key === this.sweepFrom) continue;
      let first = value.first;
      while (first <= value.top && (this.entries.get([key, first])?.t ?? 0) < oldest) void this.entries.remove([key, first++]);
      if (first !== value.first) {
        dropped += first - value.first;
        void this.ranges.put(key, { first, top: value.top, t0: oldest });
      }
    }
    // a short page means the end: the next sweep starts from the beginning
    this.sweepFrom = seen > SWEEP_HOMES ? last : undefined;
    return dropped;
  }

  async close(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
  }

  private range(homeId: string): Range {
    const r = this.ranges.get(homeId);
    return r ? { first: r.first, top: r.top, t0: r.t0 ?? 0 } : { first: 1, top: 0 };
  }

  /**
   * Drops entries beyond the count, and some past their age (the rest go at later appends or the
   * sweep). Entries are appended in time order, so `t0` stays a lower bound of the head's time as
   * the head moves; the head itself is read only when that bound is past the age.
   */
  private trim(homeId: string, live: Live, now: number): void {
    while (live.top - live.first + 1 > this.retention.maxEvents) void this.entries.remove([homeId, live.first++]);
    const oldest = now - this.retention.maxAgeMs;
    for (let i = 0; i < AGE_TRIM_PER_APPEND && live.first < live.top && (live.t0 ?? 0) < oldest; i++) {
      const head = live.pending.find((e) => e.offset === live.first) ?? this.entries.get([homeId, live.first]);
      live.t0 = head?.t ?? now;
      if (live.t0 >= oldest) break;
      void this.entries.remove([homeId, live.first++]);
    }
  }

  private settle(homeId: string, offset: number): void {
    const live = this.live.get(homeId);
    if (!live) return;
    live.inflight--;
    live.pending = live.pending.filter((e) => e.offset > offset);
    if (live.inflight === 0) this.live.delete(homeId);
  }
}
