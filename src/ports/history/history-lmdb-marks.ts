/**
 * The embedded history's rules marks (EvaluatedMarks): sub-database `rules-marks` of `history.mdb`,
 * homeId → the offset through which the node's rules evaluated the home's events. In the history's
 * own file, so marks and events are kept, or discarded (an unclean stop with DATA_SYNC=os), together,
 * and offsets compare across the new epoch an unclean start begins: the file goes on numbering them.
 * Written by the history's flush, in the transaction that carries its chunks (`issue`): a mark past
 * an event a rule was evaluated on in the next one, the others (events no rule listens to) in the
 * first one LAZY_MS after the last such write, so that a node whose reports trigger nothing writes a
 * record per home every few seconds, not one per event or per chunk (a put costs the main thread
 * about as much as a report's other history work: callgrind, BENCHMARKS.md 2026-12-04).
 * A clean stop that left stored events unevaluated (`owe`: dropped from a backlog, say) leaves `rules-owed` in
 * `history-epoch`, so the next start replays past the marks as after an unclean one.
 */
import type { Database, RootDatabase } from 'lmdb';
import type { EvaluatedMarks, MarkedHome, UnevaluatedEntry, UnevaluatedHome } from './history.js';

/** ms between writes of the marks past events no rule listens to: a crash replays (and skips) up to this much more */
const LAZY_MS = 5_000;
/** the key, in the file's `history-epoch`, of a clean stop that left events its rules were not done with (`owe`) */
const OWED = 'rules-owed';

export interface MarkedHistory {
  /** the home's newest stored offset (0: none) */
  top(homeId: string): number;
  /** the home's stored entries past `after`, oldest first */
  storedAfter(homeId: string, after: number): UnevaluatedEntry[];
  /** asks for a flush within the history's write interval (it calls `issue`) */
  wake(): void;
}

export class LmdbEvaluatedMarks implements EvaluatedMarks {
  private readonly db: Database<number, string>;
  private readonly meta: Database<boolean, string>;
  /** the last process stopped cleanly owing a replay (`owe`) */
  private readonly owed: boolean;
  /** marks noted past an event a rule was evaluated on, for the next flush: the newest per home */
  private noted = new Map<string, number>();
  /** marks noted past events no rule listens to: written every LAZY_MS */
  private lazy = new Map<string, number>();
  private lazyAt = 0;
  /** homes known to have a stored mark (or one issued) */
  private readonly known = new Set<string>();
  private answered = false;
  /** what `unevaluated` found: every home with a mark */
  private found: MarkedHome[] = [];

  constructor(
    env: RootDatabase,
    private readonly history: MarkedHistory,
    /** the last process did not stop cleanly and the file was kept */
    private readonly unclean: boolean,
  ) {
    this.db = env.openDB({ name: 'rules-marks', encoding: 'msgpack' }) as unknown as Database<number, string>;
    // the file's meta sub-database: its eight are taken (history-lmdb-chunks.ts)
    this.meta = env.openDB({ name: 'history-epoch', encoding: 'msgpack' }) as unknown as Database<boolean, string>;
    this.owed = this.meta.get(OWED) === true;
  }

  /** The next start replays past the marks (a clean stop left events unevaluated): written before the history's last flush. */
  async owe(): Promise<void> {
    await this.meta.put(OWED, true);
  }

  note(homeId: string, offset: number, evaluated: boolean): void {
    if (!evaluated) this.lazy.set(homeId, offset);
    else {
      this.noted.set(homeId, offset);
      this.history.wake();
    }
  }

  /** Every mark noted goes with the next flush (a clean stop). */
  urgeAll(): void {
    this.takeLazy();
  }

  /** The lazy marks join the noted ones (the newer of a home's two). */
  private takeLazy(): void {
    const lazy = this.lazy;
    this.lazy = new Map();
    for (const [homeId, offset] of lazy) if (!((this.noted.get(homeId) ?? -1) >= offset)) this.noted.set(homeId, offset);
  }

  /** Whether a flush has marks to write. */
  get pending(): boolean {
    return this.noted.size > 0;
  }

  /**
   * Issues the noted marks as asynchronous puts, in the turn of the history's flush (one
   * transaction with its chunks), and the lazy ones every LAZY_MS (`now`, ms). A home of `chunks`
   * (homeId, first offset) with no mark yet gets one, at most its lazy one: never past its events
   * not evaluated yet. Answers the last write, if any.
   */
  issue(chunks: Iterable<readonly [string, number]>, now: number): Promise<unknown> | null {
    for (const [homeId, start] of chunks) {
      if (this.known.has(homeId)) continue;
      this.known.add(homeId);
      if (!this.noted.has(homeId) && this.db.get(homeId) === undefined) this.noted.set(homeId, Math.max(start - 1, this.lazy.get(homeId) ?? 0));
    }
    if (now - this.lazyAt >= LAZY_MS) {
      this.lazyAt = now;
      this.takeLazy();
    } else {
      // a lazy mark newer than a noted one of its home goes with it
      for (const [homeId, mark] of this.noted) {
        const offset = this.lazy.get(homeId);
        if (offset === undefined) continue;
        this.lazy.delete(homeId);
        if (offset > mark) this.noted.set(homeId, offset);
      }
    }
    let last: Promise<unknown> | null = null;
    for (const [homeId, offset] of this.noted) {
      this.known.add(homeId);
      last = this.db.put(homeId, offset);
    }
    this.noted = new Map();
    return last;
  }

  async unevaluated(): Promise<UnevaluatedHome[]> {
    if (!(this.unclean || this.owed) || this.answered) return [];
    this.answered = true;
    const out: UnevaluatedHome[] = [];
    const back: Array<[string, number]> = [];
    for (const { key: homeId, value: mark } of this.db.getRange()) {
      const top = this.history.top(homeId);
      this.found.push({ homeId, mark: Math.min(mark, top), top });
      if (mark > top) back.push([homeId, top]);
      else if (mark < top) out.push({ homeId, entries: this.history.storedAfter(homeId, mark) });
    }
    // owed once: a clean stop leaving this replay's events unevaluated owes it again
    if (back.length > 0 || this.owed) await this.db.transaction(() => {
      for (const [homeId, top] of back) void this.db.put(homeId, top);
      if (this.owed) void this.meta.remove(OWED);
    });
    return out;
  }

  marked(): readonly MarkedHome[] {
    // once: a node with many homes does not keep the list
    const found = this.found;
    this.found = [];
    return found;
  }

  stored(homeId: string): UnevaluatedEntry[] {
    return this.history.storedAfter(homeId, 0);
  }
}
