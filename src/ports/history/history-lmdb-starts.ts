/**
 * Where each home's offsets went on in each epoch of an embedded history's lineage (openEpoch), in
 * `history.mdb`'s sub-database `history-starts`: [epoch, homeId] → the first offset the home was
 * given in that epoch. An epoch after an unclean stop continues the one before: the stop kept the
 * events it committed and lost its last second's, whose offsets were given again. The first offset
 * a later epoch gave a home tells how far the earlier one's positions still name what is stored
 * (LmdbEventHistory.carried). Noted only by an epoch that continues another; written with the
 * home's chunk, before it, so a chunk committed has its start.
 */
import type { Database, RootDatabase } from 'lmdb';

type Starts = Database<number, [string, string]>;

export class EpochStarts {
  /** this epoch's first offset of each home appended to by this process, and those not written yet */
  private readonly started = new Map<string, number>();
  private toWrite = new Map<string, number>();

  private constructor(
    private readonly db: Starts,
    private readonly epoch: string,
    /** the epochs this one continues, oldest first, itself last */
    private readonly lineage: readonly string[],
  ) {}

  /** Opens them, and removes what was noted in epochs no longer in the lineage (keys sort by epoch). */
  static async open(env: RootDatabase, epoch: string, lineage: readonly string[]): Promise<EpochStarts> {
    const db = env.openDB({ name: 'history-starts', encoding: 'msgpack' }) as unknown as Starts;
    let from: [string, string] = ['', ''];
    for (;;) {
      const [key] = [...db.getKeys({ start: from, limit: 1 })];
      if (!key) return new EpochStarts(db, epoch, lineage);
      const noted = key[0];
      from = [`${noted}\u0000`, ''];
      if (lineage.includes(noted)) continue;
      await db.transaction(() => {
        for (const k of [...db.getKeys({ start: [noted, ''], end: from })]) void db.remove(k);
      });
    }
  }

  /** An append of `offset` to the home: the first of this epoch (in any of its processes) is noted. */
  appended(homeId: string, offset: number): void {
    if (this.lineage.length < 2 || this.started.has(homeId)) return;
    const stored = this.db.get([this.epoch, homeId]);
    this.started.set(homeId, stored ?? offset);
    if (stored === undefined) this.toWrite.set(homeId, offset);
  }

  /** A home let go at rest: its start, written, is read back at its next append. */
  forget(homeId: string): void {
    if (!this.toWrite.has(homeId)) this.started.delete(homeId);
  }

  /** Issues the writes of the starts noted since the last call: before the chunks, so a chunk committed has its start. */
  issue(): void {
    if (this.toWrite.size === 0) return;
    for (const [homeId, start] of this.toWrite) void this.db.put([this.epoch, homeId], start);
    this.toWrite = new Map();
  }

  /**
   * The newest offset of the home that `epoch` (one of the lineage before this one) gave and the
   * store still holds as it gave it: one before the first offset a later epoch gave; `top()` (the
   * home's newest) when none gave one since. Null: an epoch not in the lineage.
   */
  keptThrough(homeId: string, epoch: string, top: () => number): number | null {
    const from = this.lineage.indexOf(epoch);
    if (from < 0 || from === this.lineage.length - 1) return null;
    for (const later of this.lineage.slice(from + 1)) {
      const start = (later === this.epoch ? this.started.get(homeId) : undefined) ?? this.db.get([later, homeId]);
      if (start !== undefined) return start - 1;
    }
    return top();
  }
}
