// Over 400 lines: one store whose appends, reads, trimming, sweeps and write-behind share each home's state in memory.
import type { BatchObserver } from '../ports.js';
import type { DataStore } from '../lmdb.js';
import type { EventHistory, HistoryEntry, HistoryRead, HistoryRetention, Position, UnevaluatedEntry } from './history.js';
import { PackedChunk, type ChunkEntries } from './history-chunk.js';
import { dropAged, END, MAX_CHUNK, openLayout, openChunks, readStored, storedTop, type Chunks, type Ranges } from './history-lmdb-chunks.js';
import { checkRead } from './history-read.js';
import { LmdbEvaluatedMarks } from './history-lmdb-marks.js';
import { appended, atRest, NONE_IN_FLIGHT, without, type Live } from './history-lmdb-live.js';
import { agingNowMs } from '../../actors/clock.js';
import { EpochStarts } from './history-lmdb-starts.js';

export interface LmdbHistoryOptions {
  /** the clock of entries' times and ages (ms); @default times of the wall clock, aged on agingNowMs (on the wall clock, a step forward removed every home's events: review "clock") */
  now?: () => number;
  /** ms between sweeps that drop chunks past their age in homes nobody appends to; 0: none */
  sweepMs?: number;
  /** told of each write-behind transaction (entries written and chunks removed, its time) */
  batches?: BatchObserver;
}

/** An open chunk is written (and sealed) once its oldest entry is this old, full or not (ms). */
const SEAL_AFTER_MS = 1_000;
/**
 * ms between writes of the chunks sealed meanwhile, so one transaction carries many: each commit is
 * a flush of history.mdb with DATA_SYNC=commit (and a wake-up of the main thread), and nothing is
 * lost by waiting, since an unclean stop discards the file anyway and reads find the chunks in
 * memory until then. 5 ms made 23–24 commits a second at 20,000 events/s, 100 ms six, and a
 * microsecond an event less CPU (BENCHMARKS.md, 2026-12-03 third).
 */
const FLUSH_MS = 100;
/** Homes looked at per sweep. */
const SWEEP_HOMES = 500;
/** A home at rest this long (ms) is read back from the store when next used (`forgetAtRest`). */
const FORGET_AFTER_MS = 60_000;

/**
 * Every home's history in the DataStore's side environment `history.mdb`:
 * sub-database `history-chunks-4` keyed [homeId, first offset], each value up to MAX_CHUNK
 * consecutive entries (`history-chunk.ts`, LZ4-compressed from COMPRESS_FROM bytes, no dictionary); `history-epoch` with the store's epoch, file and layout (`openLayout`); `history-range` with the range of
 * a home whose entries were all removed or aged out (its offsets go on); `rules-marks` (history-lmdb-marks.ts).
 *
 * An append is given its offset at once and is readable at once from the home's open chunk, kept
 * in memory until it is full or SEAL_AFTER_MS old; then it is written as an asynchronous put (with
 * the others of the next FLUSH_MS), which lmdb-js commits on its write thread, and stays readable
 * from memory until committed. So the store does one put and one remove per chunk, not per event:
 * a put and a remove per event cost the sockets' thread 5–6 µs per report at 20,000 reports/s.
 * An unclean stop loses the open chunks, but the epoch changes then anyway, so apps reload rather
 * than trust a history with holes. Trimming removes whole chunks: at least `maxEvents` are kept
 * and exactly the newest `maxEvents` are delivered; a chunk whose newest entry is past the age goes
 * at the next append or sweep, a home's last one too. Offsets survive `remove` and the age.
 */
export class LmdbEventHistory implements EventHistory {
  private readonly entries: Chunks;
  private readonly ranges: Ranges;
  private readonly homes = new Map<string, Live>();
  /** homes with an open chunk, in the order their chunks opened (the oldest first) */
  private readonly opens = new Map<string, Live>();
  private readonly now: () => number;
  private readonly ageNow: () => number;
  private readonly chunkSize: number;
  private readonly timers: NodeJS.Timeout[] = [];
  /** runs `sealOld` while any chunk is open: an idle node is not woken for it */
  private sealTimer: NodeJS.Timeout | null = null;
  private sweepFrom: string | undefined;
  /** sealed chunks to write, and chunks to remove, at the next flush */
  private sealed: Array<[string, Live, PackedChunk]> = [];
  private removals: Array<[string, number]> = [];
  /** homes whose every chunk was trimmed by age: their range is written at the next flush, so their offsets go on */
  private emptied = new Map<string, Live>();
  private flushTimer: NodeJS.Timeout | null = null;
  /** the commit of the last flush issued, settled either way: writes commit in the order they were issued */
  private written: Promise<unknown> = Promise.resolve();
  /** a flush asked for by `durable`, at the end of this turn (the turn's events share its commit) */
  private flushing: Promise<unknown> | null = null;
  private readonly batches: BatchObserver | undefined;
  /** how far the node's rules evaluated each home: written with the chunks (history-lmdb-marks.ts) */
  readonly marks: LmdbEvaluatedMarks;
  private constructor(
    data: DataStore,
    private readonly epoch: string,
    private readonly starts: EpochStarts, // where homes' offsets went on in each epoch (`carried`)
    readonly retention: HistoryRetention,
    options: LmdbHistoryOptions,
  ) {
    const env = data.side('history');
    this.entries = openChunks(data);
    this.ranges = env.openDB({ name: 'history-range', encoding: 'msgpack' }) as unknown as Ranges;
    this.now = options.now ?? Date.now;
    this.ageNow = options.now ?? agingNowMs;
    this.batches = options.batches;
    // the file kept through an unclean stop: its marks find their events, numbered on (history-lmdb-marks.ts)
    const marked = { top: (homeId: string) => this.home(homeId, false).top, storedAfter: this.storedAfter, wake: () => void (this.flushTimer ??= setTimeout(this.flush, FLUSH_MS).unref()) };
    this.marks = new LmdbEvaluatedMarks(env, marked, data.uncleanStart);
    // a small retention keeps small chunks: what is stored beyond the count stays under half of it
    this.chunkSize = Math.max(1, Math.min(MAX_CHUNK, Math.ceil(retention.maxEvents / 2)));
    const sweepMs = options.sweepMs ?? 60_000;
    // a sweep that fails (the store closing) is simply the next one's work
    if (sweepMs > 0) this.timers.push(setInterval(() => void this.sweep().catch(() => undefined), sweepMs).unref());
  }

  static async open(data: DataStore, retention: HistoryRetention, options: LmdbHistoryOptions = {}): Promise<LmdbEventHistory> {
    const env = data.side('history');
    const { epoch, lineage } = await openLayout(data);
    const starts = await EpochStarts.open(env, epoch, lineage);
    await env.flushed;
    return new LmdbEventHistory(data, epoch, starts, retention, options);
  }

  append(homeId: string, data: Uint8Array): Promise<Position> {
    return Promise.resolve(this.appendNow(homeId, data));
  }

  appendNow(homeId: string, data: Uint8Array): Position {
    const live = this.home(homeId);
    const t = this.now();
    const offset = ++live.top;
    this.starts.appended(homeId, offset);
    let open = live.open;
    if (!open) {
      open = live.open = new PackedChunk(offset, live.room);
      this.opens.set(homeId, live);
      this.sealTimer ??= setInterval(this.sealOld, SEAL_AFTER_MS / 10).unref();
    }
    open.append(t, data);
    if (open.count >= this.chunkSize) this.seal(homeId, live);
    this.trim(homeId, live, this.ageNow());
    return { epoch: this.epoch, offset };
  }

  /**
   * Seals the home's open chunk and flushes at the end of the turn; resolves once each chunk of the
   * home is committed by its own transaction (until 2026-12-06 the last flush's: a later commit that
   * fitted a full disk answered for an earlier chunk the disk refused).
   */
  durable(homeId: string): Promise<void> {
    const live = this.homes.get(homeId);
    if (live?.open) this.seal(homeId, live);
    const committed = () => Promise.all((live?.inflight ?? NONE_IN_FLIGHT).map((c) => c.commit)).then(() => undefined);
    if (!live?.inflight.some((c) => !c.issued)) return committed();
    this.flushing ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
      this.flushing = null;
      this.flush();
    });
    return this.flushing.then(committed);
  }

  read(homeId: string, since: Position, upTo: number, limit: number): Promise<HistoryRead> {
    const live = this.home(homeId, false);
    const pos = { epoch: this.epoch, offset: live.top };
    const plan = checkRead(pos, since, upTo, limit);
    if (!plan.ok) return Promise.resolve(plan);
    if (plan.count === 0) return Promise.resolve({ ok: true, epoch: this.epoch, entries: [] });
    const from = since.offset + 1;
    const to = since.offset + plan.count;
    const tooOld = { ok: false as const, reason: 'too_old' as const, pos };
    if (from < this.firstDelivered(live)) return Promise.resolve(tooOld);
    const entries: HistoryEntry[] = [];
    let oldest = Infinity;
    const take = (chunk: ChunkEntries | undefined, start: number, end: number): void => {
      for (let offset = Math.max(from, start); offset <= Math.min(to, end); offset++) {
        const i = offset - start;
        const data = chunk?.d[i];
        // a chunk the store lost: a hole, which `entries.length` tells below
        if (data === undefined) continue;
        if (offset === from) oldest = chunk!.t[i]!;
        entries.push({ offset, data });
      }
    };
    for (let i = 0; i < live.chunks.length; i++) {
      const start = live.chunks[i]!;
      const end = this.chunkEnd(live, i);
      if (end < from || start > to) continue;
      take(live.inflight.find((c) => c.start === start)?.entries() ?? this.stored(homeId, start), start, end);
    }
    if (live.open) take(live.open.entries(), live.open.start, live.top);
    if (entries.length !== plan.count || oldest < this.ageNow() - this.retention.maxAgeMs) return Promise.resolve(tooOld);
    return Promise.resolve({ ok: true, epoch: this.epoch, entries });
  }

  position(homeId: string): Promise<Position> {
    return Promise.resolve({ epoch: this.epoch, offset: this.home(homeId, false).top });
  }

  /** `since` of an epoch this one continues as this epoch's position, when it names what is stored (history-lmdb-starts.ts); else null. */
  carried(homeId: string, since: Position): Promise<Position | null> {
    const kept = this.starts.keptThrough(homeId, since.epoch, () => this.home(homeId, false).top);
    return Promise.resolve(kept !== null && since.offset <= kept ? { epoch: this.epoch, offset: since.offset } : null);
  }

  /** A home's stored entries past `after`, with their times (the events past its rules mark, at start). */
  private readonly storedAfter = (homeId: string, after: number): UnevaluatedEntry[] => {
    const live = this.home(homeId, false);
    const out: UnevaluatedEntry[] = [];
    for (let i = 0; i < live.chunks.length; i++) {
      const start = live.chunks[i]!;
      const chunk = this.chunkEnd(live, i) > after ? (live.inflight.find((c) => c.start === start)?.entries() ?? this.stored(homeId, start)) : undefined;
      chunk?.d.forEach((data, j) => start + j > after && out.push({ offset: start + j, data, at: chunk.t[j]! }));
    }
    return out;
  };

  /** Homes whose range is held in memory: each written (or removed) since the store opened, and not at rest since (`forgetAtRest`). */
  get homesKept(): number {
    return this.homes.size;
  }

  async remove(homeId: string): Promise<void> {
    const live = this.home(homeId);
    // puts on their way (and the home's start in this epoch, which no chunk may carry now) commit first
    this.starts.issue();
    this.flush();
    await this.written;
    // appends made meanwhile are removed too; what they sealed is not written
    this.sealed = this.sealed.filter(([home]) => home !== homeId);
    live.open = null;
    this.opens.delete(homeId);
    live.inflight = NONE_IN_FLIGHT;
    live.chunks = [];
    live.times = [];
    const top = live.top;
    this.entries.transactionSync(() => {
      for (const key of [...this.entries.getKeys({ start: [homeId, 0], end: [homeId, END] })]) this.entries.removeSync(key);
      // no key is left to tell the newest offset: the range says it
      this.ranges.putSync(homeId, { first: top + 1, top });
    });
  }

  /**
   * Drops chunks past their age, a home's newest too (its range keeps its offsets), in up to
   * SWEEP_HOMES homes, resuming where the last sweep ended. Answers the entries dropped.
   */
  async sweep(): Promise<number> {
    this.flush();
    // what was just issued is read back from the store below
    await this.written;
    this.forgetAtRest(this.ageNow() - FORGET_AFTER_MS);
    const oldest = this.ageNow() - this.retention.maxAgeMs;
    let dropped = 0;
    let start: [string, number] = [this.sweepFrom ?? '', 0];
    let homes = 0;
    for (; homes < SWEEP_HOMES; homes++) {
      const [key] = [...this.entries.getKeys({ start, limit: 1 })];
      if (!key) break;
      const homeId = key[0];
      start = [homeId, END];
      const live = this.homes.get(homeId);
      if (live) {
        dropped += this.trimAge(homeId, live, oldest);
        continue;
      }
      dropped += dropAged(this.entries, this.ranges, homeId, oldest);
    }
    this.flush();
    // a short sweep reached the end: the next starts from the beginning
    this.sweepFrom = homes === SWEEP_HOMES ? start[0] : undefined;
    return dropped;
  }

  /**
   * Lets go of the homes at rest since before `before` (nothing open, in flight, or waiting to be
   * removed or ranged): the store holds what `home` reads back, and the sweep drops their aged
   * chunks from the store's keys. Most homes of a node write seldom, and each kept costs about 250 B.
   */
  private forgetAtRest(before: number): void {
    const pending = new Set(this.removals.map(([homeId]) => homeId));
    for (const [homeId, live] of this.homes) {
      if (live.open !== null || live.inflight.length > 0 || pending.has(homeId) || this.emptied.has(homeId)) continue;
      // NaN: a chunk stored by an earlier process, not written since
      const newest = live.times[live.times.length - 1];
      if (newest === undefined || Number.isNaN(newest) || newest < before) {
        this.homes.delete(homeId);
        this.starts.forget(homeId);
      }
    }
  }

  /** Writes every open chunk and resolves once all is committed (a clean stop loses nothing). */
  async settle(): Promise<void> {
    for (const [homeId, live] of [...this.opens]) this.seal(homeId, live);
    this.marks.urgeAll();
    this.flush();
    await this.written;
  }

  async close(): Promise<void> {
    for (const timer of this.timers) clearInterval(timer);
    if (this.sealTimer) clearInterval(this.sealTimer);
    this.sealTimer = null;
    await this.settle();
  }

  /**
   * The home's range: from memory, or once from its keys (and its stored range, after a remove).
   * Without `keep`, one that has none is answered and not kept: an admin's app may ask of any id.
   */
  private home(homeId: string, keep = true): Live {
    let live = this.homes.get(homeId);
    if (live) return live;
    const chunks = [...this.entries.getKeys({ start: [homeId, 0], end: [homeId, END] })].map((k) => k[1]);
    const range = this.ranges.get(homeId);
    const last = chunks[chunks.length - 1];
    const top = last === undefined ? (range?.top ?? 0) : storedTop(this.entries, this.ranges, homeId, last);
    live = { top, chunks, times: chunks.map(() => NaN), open: null, inflight: NONE_IN_FLIGHT, room: 0 };
    if (keep || last !== undefined || range !== undefined) this.homes.set(homeId, live);
    return live;
  }

  private stored(homeId: string, start: number): ChunkEntries | undefined {
    return readStored(this.entries, homeId, start);
  }

  /** The oldest offset a read may start at: the newest `maxEvents` that are kept. */
  private firstDelivered(live: Live): number {
    const kept = live.chunks[0] ?? live.open?.start ?? live.top + 1;
    return Math.max(kept, live.top - this.retention.maxEvents + 1);
  }

  /** The last offset of sealed chunk `i`. */
  private chunkEnd(live: Live, i: number): number {
    return (live.chunks[i + 1] ?? live.open?.start ?? live.top + 1) - 1;
  }

  /** Drops the chunks wholly beyond the count, and old ones. */
  private trim(homeId: string, live: Live, now: number): void {
    const keepFrom = live.top - this.retention.maxEvents + 1;
    while (live.chunks.length > 0 && this.chunkEnd(live, 0) < keepFrom) this.dropHead(homeId, live);
    this.trimAge(homeId, live, now - this.retention.maxAgeMs);
  }

  /**
   * Drops head chunks whose newest entry is older than `oldest`, the home's last one too: its
   * offsets go on from its range (written at the next flush), as after `remove`.
   */
  private trimAge(homeId: string, live: Live, oldest: number): number {
    let dropped = 0;
    while (live.chunks.length > 0) {
      if (Number.isNaN(live.times[0])) {
        const head = this.stored(homeId, live.chunks[0]!);
        live.times[0] = head ? head.t[head.t.length - 1]! : -Infinity;
      }
      if (live.times[0]! >= oldest) break;
      dropped += this.dropHead(homeId, live);
    }
    if (dropped > 0 && live.chunks.length === 0 && !live.open) this.emptied.set(homeId, live);
    return dropped;
  }

  /** Removes the oldest sealed chunk (after its put, when that was issued); answers its entries. */
  private dropHead(homeId: string, live: Live): number {
    const end = this.chunkEnd(live, 0);
    const start = live.chunks.shift()!;
    live.times.shift();
    const pending = live.inflight.find((c) => c.start === start);
    if (pending && !pending.issued) {
      // never written: nothing to remove
      live.inflight = without(live.inflight, pending);
      this.sealed = this.sealed.filter(([, , c]) => c !== pending);
    } else {
      this.removals.push([homeId, start]);
      this.flushTimer ??= setTimeout(this.flush, FLUSH_MS).unref();
    }
    return end - start + 1;
  }

  /** Closes the home's open chunk: written at the next flush, readable from memory until committed. */
  private seal(homeId: string, live: Live): void {
    const chunk = live.open!;
    live.open = null;
    // a chunk sealed by age holds what came in a second: a room for it would outlive the home's burst
    live.room = chunk.count >= this.chunkSize ? chunk.size : 0;
    this.opens.delete(homeId);
    live.chunks = appended(live.chunks, chunk.start);
    live.times = appended(live.times, chunk.lastAt);
    live.inflight = appended(live.inflight, chunk);
    this.sealed.push([homeId, live, chunk]);
    this.flushTimer ??= setTimeout(this.flush, FLUSH_MS).unref();
  }

  /** Seals the chunks opened SEAL_AFTER_MS ago or earlier (`opens` is in opening order). */
  private readonly sealOld = (): void => {
    const before = this.now() - SEAL_AFTER_MS;
    for (const [homeId, live] of this.opens) {
      if (live.open!.firstAt > before) break;
      this.seal(homeId, live);
    }
    // a wake-up costs an idle process 0.1–0.3 ms of CPU on these VMs: none while nothing is open
    if (this.opens.size === 0 && this.sealTimer) {
      clearInterval(this.sealTimer);
      this.sealTimer = null;
    }
  };

  /** Issues the puts of the sealed chunks and rules marks, then the removals, as asynchronous writes (one transaction). */
  private readonly flush = (): void => {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    if (this.sealed.length === 0 && this.removals.length === 0 && this.emptied.size === 0 && !this.marks.pending) return;
    const sealed = this.sealed;
    const removals = this.removals;
    const emptied = this.emptied;
    this.sealed = [];
    this.removals = [];
    this.emptied = new Map();
    const started = this.batches ? performance.now() : 0;
    let size = removals.length;
    this.starts.issue();
    // a home's first mark goes before its first chunk, in this transaction
    let last = this.marks.issue(sealed.map(([homeId, , chunk]) => [homeId, chunk.start] as const), this.now());
    for (const [homeId, , chunk] of sealed) {
      chunk.issued = true;
      size += chunk.count;
      // its own put's promise: lmdb-js may split a turn's writes into several transactions
      last = chunk.commit = this.entries.put([homeId, chunk.start], chunk.packed(homeId));
      chunk.commit.catch(() => {}); // a refused commit stops the node (lmdb.ts); `durable` callers hear of it
    }
    // before the removals of the same transaction: no commit leaves a home without its newest offset
    for (const [homeId, live] of emptied) last = this.ranges.put(homeId, { first: live.top + 1, top: live.top });
    for (const key of removals) last = this.entries.remove(key);
    this.written = last!.then(
      () => {
        this.batches?.flushed(size, (performance.now() - started) / 1000);
        // committed: reads find them in the store from now on
        for (const [, live, chunk] of sealed) {
          live.inflight = without(live.inflight, chunk);
          atRest(live);
        }
      },
      () => {
        // the side store refused the write: the chunks stay readable from memory
      },
    );
  };
}
