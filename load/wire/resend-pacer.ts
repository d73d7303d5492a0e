import type { Outbox } from './outbox.js';

/** frames a resend sends at once: half the server's default burst (TIER_HUB_RATE_BURST 200) */
export const RESEND_BURST = 100;
/**
 * then this many every RESEND_STEP_MS, the hub's new frames among them: 50 a second, the server's
 * default sustained rate (TIER_HUB_RATE_PER_SEC); at 40 a hub sending 41-50 a second never caught up
 */
export const RESEND_STEP = 25;
export const RESEND_STEP_MS = 500;

/**
 * A hub's unacknowledged frames sent again (after a reconnect, a `sequence_gap`, a refusal for now),
 * paced: a backlog sent at once passed the server's frame rate, was refused `rate_limited` and the
 * hub closed 4004 (review "slowdisk"). While it runs, new frames wait in the outbox and go in their
 * turn: sent at once they would reach the server out of order.
 */
export class ResendPacer {
  /** the sequence number sent next, null when no resend runs */
  private at: number | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly outbox: Outbox,
    private readonly send: (bytes: Buffer) => void,
  ) {}

  get running(): boolean {
    return this.at !== null;
  }

  /** Resends from `fromSeq` (a running resend goes back to it); answers how many frames are queued from there. */
  from(fromSeq: number): number {
    let n = 0;
    for (const _ of this.outbox.from(fromSeq)) n++;
    if (n === 0) return 0;
    const running = this.at !== null;
    this.at = Math.min(this.at ?? fromSeq, fromSeq);
    if (!running) this.pump(RESEND_BURST);
    return n;
  }

  /** The server refused `seq` for now and still expects it: resent after a step, with what follows it. */
  refused(seq: number): void {
    if (!this.outbox.holds(seq) || (this.at !== null && this.at <= seq)) return;
    const running = this.at !== null;
    this.at = seq;
    if (!running) this.timer = setTimeout(() => this.pump(RESEND_STEP), RESEND_STEP_MS).unref();
  }

  /** The socket closed: nothing more is sent (the next welcome starts a resend of its own). */
  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.at = null;
  }

  private pump(n: number): void {
    this.timer = null;
    if (this.at === null) return;
    let sent = 0;
    for (const { seq, bytes } of this.outbox.entriesFrom(this.at)) {
      if (sent === n) {
        this.at = seq;
        this.timer = setTimeout(() => this.pump(RESEND_STEP), RESEND_STEP_MS).unref();
        return;
      }
      this.send(bytes);
      sent++;
    }
    this.at = null;
  }
}
