/**
 * Writes that wait long for the disk: the oldest batch of a store not yet durable, for a gauge and a
 * warning line. A stalled disk finishes no batch, so the flush histogram alone showed a node whose
 * acknowledgements had stopped for 90 s as healthy (review "slowdisk").
 */
import type { Logger } from '../log/logger.js';

/** A batch waiting longer than this is said (ms). */
export const STALL_WARN_MS = 5_000;

/** The writes of a store issued and not yet durable, and how long the oldest has waited. */
export class PendingWrites {
  /** start times (performance.now()) of the writes issued and not yet durable */
  private readonly waiting = new Set<{ at: number }>();

  /** A write (or batch) issued now; call the answer once it is durable or failed. */
  begin(): () => void {
    const batch = { at: performance.now() };
    this.waiting.add(batch);
    return () => void this.waiting.delete(batch);
  }

  /** ms the oldest write not yet durable has waited, 0 when none waits */
  oldestMs(now = performance.now()): number {
    let oldest = now;
    for (const b of this.waiting) if (b.at < oldest) oldest = b.at;
    return now - oldest;
  }
}

export class WriteStall extends PendingWrites {
  /** when the stall under way was first said, null when none is */
  private saidAt: number | null = null;

  constructor(
    private readonly log: Logger,
    private readonly store: string,
    private readonly warnMs = STALL_WARN_MS,
  ) {
    super();
  }

  /** Says a stall once when it passes `warnMs`, and once when its batches are durable again (a timer calls it). */
  check(now = performance.now()): void {
    const waited = this.oldestMs(now);
    if (this.saidAt === null && waited > this.warnMs) {
      this.saidAt = now - waited;
      this.log.warn({ store: this.store, waitedMs: Math.round(waited) }, 'store writes wait for the disk (commit and sync): acknowledgements of what they hold wait with them');
    } else if (this.saidAt !== null && waited <= this.warnMs) {
      this.log.info({ store: this.store, stalledMs: Math.round(now - this.saidAt) }, 'store writes durable again');
      this.saidAt = null;
    }
  }
}
