import type { Position } from './history.js';

/**
 * The newest position Redis gave each home a node appended to lately, sent with the home's next
 * append: a Redis found behind it (back from an AOF fsynced each second, or a replica, without its
 * last writes) starts a new epoch rather than hand those offsets out again. Kept `keepMs` after a
 * home's last append (such a Redis loses at most its last seconds), at most `most` homes (about 100
 * bytes each): at rest a node keeps none.
 */
export class KnownPositions {
  /** in order of each home's last append */
  private readonly homes = new Map<string, Position & { at: number }>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    keepMs = 60_000,
    private readonly most = 50_000,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.timer = setInterval(() => this.forget(this.now() - keepMs), keepMs / 6).unref();
  }

  get(homeId: string): Position | undefined {
    return this.homes.get(homeId);
  }

  /** As Redis answered an append of the home; the oldest home goes past the bound. */
  remember(homeId: string, epoch: string, offset: number): void {
    const at = this.now();
    const entry = this.homes.get(homeId);
    // moved to the end; the entry reused (this runs for every home of every append call)
    this.homes.delete(homeId);
    if (entry) {
      entry.epoch = epoch;
      entry.offset = offset;
      entry.at = at;
      this.homes.set(homeId, entry);
      return;
    }
    this.homes.set(homeId, { epoch, offset, at });
    if (this.homes.size > this.most) this.homes.delete(this.homes.keys().next().value!);
  }

  get size(): number {
    return this.homes.size;
  }

  /** Drops the homes last appended to before `before`. */
  forget(before: number): void {
    for (const [homeId, k] of this.homes) {
      if (k.at >= before) return;
      this.homes.delete(homeId);
    }
  }

  close(): void {
    clearInterval(this.timer);
  }
}
