/**
 * The embedded history's rules marks (EvaluatedMarks): sub-database `rules-marks` of `history.mdb`,
 * homeId → the offset through which the node's rules evaluated the home's events. In the history's
 * own file, so marks and events are kept, or discarded (an unclean stop with DATA_SYNC=os), together,
 * and offsets compare across the new epoch an unclean start begins: the file goes on numbering them.
 * Written by the history's flush, in the transaction that carries its chunks (`issue`): the mark of
 * an event that ran actions in the next one, any other with the home's next chunk, so that a node
 * whose reports trigger nothing writes no more records than before marks existed (one per chunk).
 */
import type { Database, RootDatabase } from 'lmdb';
import type { EvaluatedMarks, UnevaluatedEntry, UnevaluatedHome } from './history.js';

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
  /** marks noted past an event that ran actions, for the next flush: the newest per home */
  private noted = new Map<string, number>();
  /** marks noted past other events only: written with the home's next chunk */
  private readonly lazy = new Map<string, number>();
  /** homes known to have a stored mark (or one issued) */
  private readonly known = new Set<string>();
  private replayed = false;

  constructor(
    env: RootDatabase,
    private readonly history: MarkedHistory,
    /** the last process did not stop cleanly and the file was kept */
    private readonly unclean: boolean,
  ) {
    this.db = env.openDB({ name: 'rules-marks', encoding: 'msgpack' }) as unknown as Database<number, string>;
  }

  note(homeId: string, offset: number, ran: boolean): void {
    if (ran || this.noted.has(homeId)) {
      this.noted.set(homeId, offset);
      this.lazy.delete(homeId);
      this.history.wake();
    } else this.lazy.set(homeId, offset);
  }

  /** Every mark noted goes with the next flush (a clean stop). */
  urgeAll(): void {
    for (const [homeId, offset] of this.lazy) this.noted.set(homeId, offset);
    this.lazy.clear();
  }

  /** Whether a flush has marks to write. */
  get pending(): boolean {
    return this.noted.size > 0;
  }

  /**
   * Issues the noted marks as asynchronous puts, in the turn of the history's flush (one
   * transaction with its chunks), with the lazy ones of the homes in `chunks` (homeId, first offset).
   * A home there with no mark yet gets one just before its chunk: its events are not evaluated yet.
   * Answers the last write, if any.
   */
  issue(chunks: Iterable<readonly [string, number]>): Promise<unknown> | null {
    for (const [homeId, start] of chunks) {
      const lazy = this.lazy.get(homeId);
      if (lazy !== undefined) {
        this.lazy.delete(homeId);
        this.noted.set(homeId, lazy);
      }
      if (this.known.has(homeId) || this.noted.has(homeId)) continue;
      this.known.add(homeId);
      if (this.db.get(homeId) === undefined) this.noted.set(homeId, start - 1);
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
    if (!this.unclean || this.replayed) return [];
    this.replayed = true;
    const out: UnevaluatedHome[] = [];
    const back: Array<[string, number]> = [];
    for (const { key: homeId, value: mark } of this.db.getRange()) {
      const top = this.history.top(homeId);
      if (mark > top) back.push([homeId, top]);
      else if (mark < top) out.push({ homeId, entries: this.history.storedAfter(homeId, mark) });
    }
    if (back.length > 0) await this.db.transaction(() => {
      for (const [homeId, top] of back) void this.db.put(homeId, top);
    });
    return out;
  }
}
