import type { TimerHandle, TimerTarget, TimerWheel } from './timer-wheel.js';

/** What the packer packs: a hub session's cache of its devices (HubReports). */
export interface Packable {
  /** makes the cache its idle form; told only after a whole period without `use`. Answers the characters packed (0: none) */
  pack(): number;
}

/**
 * Characters packed in one event-loop turn, about (a hub of 8 devices is about 400, a few µs):
 * a node's thousands idle at once, or a few hubs at their shadow limit, do not hold up its sockets.
 */
const PACK_CHARS_PER_TURN = 256 * 1024;

/**
 * Packs the device caches of hubs that have not used theirs for a while (`periodMs` to twice
 * that): a fleet's hubs report every few minutes, so at any moment most sessions are idle, and an
 * idle cache is one string (cold-devices.ts) at about half the heap. Two generations of the
 * caches used lately, swapped each period on the node's timer wheel: what was used in the older
 * and not since is packed, PACK_CHARS_PER_TURN a turn. The wheel is not woken while nothing is unpacked.
 */
export class ShadowPacker implements TimerTarget {
  private recent = new Set<Packable>();
  private older = new Set<Packable>();
  /** idle a whole period, not packed yet (more than a turn's worth), in the order they came due */
  private readonly due = new Set<Packable>();
  private timer: TimerHandle | null = null;

  constructor(
    private readonly timers: TimerWheel,
    /** ms without use before a cache is packed (up to twice this) */
    readonly periodMs: number,
  ) {}

  /** `cache` is in use (unpacked): packed once it is not used for a period. */
  use(cache: Packable): void {
    this.recent.add(cache);
    this.timer ??= this.timers.schedule(this.periodMs, this, 0, this.periodMs / 10);
  }

  /** `cache` is gone (its session closed): never packed, even one already due. */
  forget(cache: Packable): void {
    this.recent.delete(cache);
    this.older.delete(cache);
    this.due.delete(cache);
  }

  onTimer(): void {
    this.timer = null;
    this.sweep();
    if (this.recent.size !== 0 || this.older.size !== 0) this.timer = this.timers.schedule(this.periodMs, this, 0, this.periodMs / 10);
  }

  /** One period's end: what was used in the older generation and not since is packed. */
  sweep(): void {
    const recent = this.recent;
    const draining = this.due.size !== 0;
    for (const cache of this.older) if (!recent.has(cache)) this.due.add(cache);
    this.older = recent;
    this.recent = new Set();
    if (!draining) this.drain();
  }

  /** Packs due caches up to PACK_CHARS_PER_TURN, and the rest in later turns; one used meanwhile is left. */
  private readonly drain = (): void => {
    const due = this.due;
    let chars = 0;
    for (const cache of due) {
      if (chars >= PACK_CHARS_PER_TURN) break;
      due.delete(cache);
      if (!this.recent.has(cache)) chars += cache.pack() + 1;
    }
    if (due.size !== 0) setImmediate(this.drain);
  };

  /** Caches unpacked and not forgotten (those due counted until packed). */
  get unpacked(): number {
    let n = this.recent.size;
    for (const cache of this.older) if (!this.recent.has(cache)) n++;
    for (const cache of this.due) if (!this.recent.has(cache) && !this.older.has(cache)) n++;
    return n;
  }
}
