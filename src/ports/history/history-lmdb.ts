import type { BatchObserver } from '../ports.js';
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

/** An append: `sent` once its put is issued (it may be in LMDB from then on, so a trim must remove it there). */
type PendingEntry = HistoryEntry & { t: number; sent?: number };

/** A home this node has looked at: its range, and its appends not yet committed (for reads meanwhile). */
interface Live extends Range {
  pending: PendingEntry[];
}

export interface LmdbHistoryOptions {
  now?: () => number;
  /** ms between sweeps that drop entries past their age in homes nobody appends to; 0: none */
  sweepMs?: number;
  /** told of each write-behind transaction (entries appended and trimmed, its time) */
  batches?: BatchObserver;
}

/** Entries looked at per append to drop those past their age: trimming keeps pace without a burst. */
const AGE_TRIM_PER_APPEND = 16;
/** Homes looked at per sweep. */
const SWEEP_HOMES = 500;

/**
 * ms between writes of the appended entries: what an unclean stop may lose (the epoch changes then
 * anyway). Short, so each turn that issues them stays short (at 5,000 events/s, 25 puts).
 */
const FLUSH_MS = 5;
/** Past every offset: the end of a home's keys. */
const END = Number.MAX_SAFE_INTEGER;

/**
 * Every home's history in the DataStore's side environment `history.mdb` (never fsynced): sub-database `history` keyed [homeId, offset]
 * (one put per event, one remove per event trimmed), `history-epoch` with the store's epoch, and
 * `history-range` with the range of a home whose entries were all removed (its offsets go on).
 * A home's range is otherwise its keys: read once, then kept in memory.
 *
 * An append is given its offset at once and is readable here at once; it is written with the
 * others of the next FLUSH_MS as asynchronous writes, which lmdb-js commits as one transaction on
 * its write thread (a synchronous transaction on this thread had blocked the sockets' loop about
 * 0.4 ms every 20 ms and doubled the report → app p99), and kept in memory until committed. A node that did not stop cleanly may have given out offsets whose entries never
 * reached the disk: opening such a store starts a new epoch, so apps reload instead of trusting a
 * history with holes. Offsets survive `remove`, so positions stay comparable.
 */
export class LmdbEventHistory implements EventHistory {
  private readonly entries: Database<StoredEntry, [string, number]>;
  private readonly ranges: Database<Range, string>;
  private readonly homes = new Map<string, Live>();
  private readonly now: () => number;
  private readonly sweeper: NodeJS.Timeout | null;
  private sweepFrom: string | undefined;
  /** homes with entries not written yet, and the trimmed entries to delete: written together every FLUSH_MS */
  private readonly dirty = new Map<string, Live>();
  /** flushes issued; an entry's `sent` is the flush that wrote it */
  private flushes = 0;
  /** the commit of the last flush issued: writes commit in the order they were issued */
  private written: Promise<unknown> = Promise.resolve();
  private removals: Array<[string, number]> = [];
  private flushTimer: NodeJS.Timeout | null = null;

  private readonly batches: BatchObserver | undefined;

  private constructor(
    data: DataStore,
    private readonly epoch: string,
    readonly retention: HistoryRetention,
    options: LmdbHistoryOptions,
  ) {
    // no fsync: after a crash the epoch changes anyway, so a history that lost its last commits is never trusted
    const env = data.side('history');
    this.entries = env.openDB({ name: 'history', encoding: 'msgpack' }) as unknown as Database<StoredEntry, [string, number]>;
    this.ranges = env.openDB({ name: 'history-range', encoding: 'msgpack' }) as unknown as Database<Range, string>;
    this.now = options.now ?? Date.now;
    this.batches = options.batches;
    const sweepMs = options.sweepMs ?? 60_000;
    // a sweep that fails (the store closing) is simply the next one's work
    this.sweeper = sweepMs > 0 ? setInterval(() => void this.sweep().catch(() => undefined), sweepMs).unref() : null;
  }

  static async open(data: DataStore, retention: HistoryRetention, options: LmdbHistoryOptions = {}): Promise<LmdbEventHistory> {
    const meta = data.side('history').openDB({ name: 'history-epoch', encoding: 'msgpack' }) as unknown as Database<string, string>;
    let epoch = meta.get('epoch');
    if (epoch === undefined || data.uncleanStart) {
      epoch = newEpoch();
      await meta.put('epoch', epoch);
      await data.side('history').flushed;
    }
    return new LmdbEventHistory(data, epoch, retention, options);
  }

  append(homeId: string, data: Uint8Array): Promise<Position> {
    return Promise.resolve(this.appendNow(homeId, data));
  }

  appendNow(homeId: string, data: Uint8Array): Position {
    const live = this.home(homeId);
    const t = this.now();
    const offset = ++live.top;
    live.pending.push({ offset, data, t });
    this.trim(homeId, live, t);
    this.dirty.set(homeId, live);
    this.flushTimer ??= setTimeout(this.flush, FLUSH_MS).unref();
    return { epoch: this.epoch, offset };
  }

  read(homeId: string, since: Position, upTo: number, limit: number): Promise<HistoryRead> {
    const live = this.home(homeId);
    const range = live;
    const pos = { epoch: this.epoch, offset: range.top };
    const plan = checkRead(pos, since, upTo, limit);
    if (!plan.ok) return Promise.resolve(plan);
    const from = since.offset + 1;
    const to = since.offset + plan.count;
    if (plan.count === 0) return Promise.resolve({ ok: true, epoch: this.epoch, entries: [] });
    if (from < range.first) return Promise.resolve({ ok: false, reason: 'too_old', pos });
    const found = new Map<number, { t: number; d: Uint8Array }>();
    for (const { key, value } of this.entries.getRange({ start: [homeId, from], end: [homeId, to + 1] })) found.set(key[1], value);
    for (const e of live.pending) if (e.offset >= from && e.offset <= to) found.set(e.offset, { t: e.t, d: e.data });
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
    return Promise.resolve({ epoch: this.epoch, offset: this.home(homeId).top });
  }

  async remove(homeId: string): Promise<void> {
    this.flush();
    // the synchronous transaction below must come after the writes already issued
    await this.written;
    const live = this.home(homeId);
    const { first, top } = live;
    live.first = top + 1;
    live.t0 = this.now();
    this.entries.transactionSync(() => {
      for (let offset = first; offset <= top; offset++) this.entries.removeSync([homeId, offset]);
      // no key is left to tell the newest offset: the range says it
      this.ranges.putSync(homeId, { first: live.first, top, t0: live.t0! });
    });
  }

  /**
   * Drops entries past their age (keeping each home's newest, which holds its offset) in up to
   * SWEEP_HOMES homes, resuming where the last sweep ended. Homes appended to meanwhile are trimmed
   * by their appends.
   */
  async sweep(): Promise<number> {
    this.flush();
    // what was just issued is read back from the store below
    await this.written;
    let dropped = 0;
    const oldest = this.now() - this.retention.maxAgeMs;
    let start: [string, number] = [this.sweepFrom ?? '', 0];
    let homes = 0;
    for (; homes < SWEEP_HOMES; homes++) {
      const [key] = [...this.entries.getKeys({ start, limit: 1 })];
      if (!key) break;
      const homeId = key[0];
      start = [homeId, END];
      const live = this.homes.get(homeId);
      if (live && live.pending.length > 0) continue;
      const keys = [...this.entries.getKeys({ start: [homeId, 0], end: [homeId, END] })];
      for (const k of keys.slice(0, -1)) {
        if ((this.entries.get(k)?.t ?? 0) >= oldest) break;
        void this.entries.remove(k);
        dropped++;
        if (live) live.first = k[1] + 1;
      }
      if (live) live.t0 = Math.max(live.t0 ?? 0, oldest);
    }
    // a short sweep reached the end: the next starts from the beginning
    this.sweepFrom = homes === SWEEP_HOMES ? start[0] : undefined;
    return dropped;
  }

  async close(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    this.flush();
    await this.written;
  }

  /** The home's range: from memory, or once from its keys (and its stored range, after a remove). */
  private home(homeId: string): Live {
    let live = this.homes.get(homeId);
    if (live) return live;
    const stored = this.ranges.get(homeId);
    const [last] = [...this.entries.getKeys({ start: [homeId, END], end: [homeId, 0], reverse: true, limit: 1 })];
    const [first] = [...this.entries.getKeys({ start: [homeId, 0], end: [homeId, END], limit: 1 })];
    const top = Math.max(stored?.top ?? 0, last?.[1] ?? 0);
    live = { first: first?.[1] ?? top + 1, top, t0: stored?.t0 ?? 0, pending: [] };
    this.homes.set(homeId, live);
    return live;
  }

  /**
   * Drops entries beyond the count, and some past their age (the rest go at later appends or the
   * sweep). Entries are appended in time order, so `t0` stays a lower bound of the head's time as
   * the head moves; the head itself is read only when that bound is past the age.
   */
  private trim(homeId: string, live: Live, now: number): void {
    while (live.top - live.first + 1 > this.retention.maxEvents) this.drop(homeId, live);
    const oldest = now - this.retention.maxAgeMs;
    for (let i = 0; i < AGE_TRIM_PER_APPEND && live.first < live.top && (live.t0 ?? 0) < oldest; i++) {
      const head = live.pending.find((e) => e.offset === live.first) ?? this.entries.get([homeId, live.first]);
      live.t0 = head?.t ?? now;
      if (live.t0 >= oldest) break;
      this.drop(homeId, live);
    }
  }

  /** Trims the home's oldest entry: from memory when it was not written yet, else from the store at the next flush. */
  private drop(homeId: string, live: Live): void {
    const offset = live.first++;
    const head = live.pending[0]?.offset === offset ? live.pending.shift() : undefined;
    // never issued: nothing to remove; issued (in flight or committed): removed after its put
    if (!head || head.sent !== undefined) this.removals.push([homeId, offset]);
  }

  /**
   * Writes what was appended and trimmed since the last flush in one transaction, on this thread:
   * a few µs per entry instead of an asynchronous put each. Not fsynced, like every write here.
   */
  private readonly flush = (): void => {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    if (this.dirty.size === 0 && this.removals.length === 0) return;
    const removals = this.removals;
    this.removals = [];
    const started = this.batches ? performance.now() : 0;
    const flush = ++this.flushes;
    const homes = [...this.dirty];
    this.dirty.clear();
    let size = removals.length;
    let last: Promise<unknown> | null = null;
    for (const [homeId, live] of homes) {
      for (const e of live.pending) {
        if (e.sent !== undefined) continue;
        e.sent = flush;
        size++;
        last = this.entries.put([homeId, e.offset], { t: e.t, d: e.data });
      }
    }
    for (const key of removals) last = this.entries.remove(key);
    if (!last) return;
    this.written = last.then(
      () => {
        this.batches?.flushed(size, (performance.now() - started) / 1000);
        // committed: reads find them in the store from now on
        for (const [, live] of homes) if (live.pending.length > 0 && (live.pending[0]!.sent ?? Infinity) <= flush) live.pending = live.pending.filter((e) => e.sent === undefined || e.sent > flush);
      },
      () => {
        // the side store refused the write: the entries stay readable from memory until trimmed
      },
    );
  };

}
