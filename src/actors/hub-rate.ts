import { FrameType, type HubToServerFrame } from '../../proto/frames.js';

/** @default 10_000 (ms): window in which rate-limit refusals are counted towards closing */
const VIOLATION_WINDOW_MS = 10_000;
/** ms between the heartbeats that pass free */
const HEARTBEAT_EVERY_MS = 1_000;

/** What the gate does with a frame: let it through, refuse it (`rate_limited`), or close the session. */
export type RateVerdict = 'pass' | 'refuse' | 'close';

/** The budget of every hub of a node. */
export interface RateLimit {
  readonly ratePerSec: number;
  readonly rateBurst: number;
}

/**
 * One hub's frame budget: a token bucket of `rateBurst` tokens refilled at `ratePerSec` (given
 * with each frame, so a session does not hold a copy). A frame
 * over budget is refused; only persistent excess closes: more refusals within one window than the
 * burst allows. Answers to the server's own commands and one heartbeat per second are free.
 *
 * Every field is kept a small integer (a node holds one gate per hub): tokens in thousandths, a
 * refill of `ms × ratePerSec` thousandths exact; times as the session gives them, ms since CLOCK_ORIGIN.
 */
export class RateGate {
  /** thousandths of a token */
  private milliTokens: number;
  private tokensAt: number;
  /** frames refused in the current window, and when that window began */
  private violations = 0;
  private violationsSince: number;
  /** when the last free heartbeat arrived */
  private lastHeartbeat: number;

  /** `t`: ms on the caller's clock (the session's: since CLOCK_ORIGIN), as for `admit` */
  constructor(rate: RateLimit, t: number) {
    this.milliTokens = rate.rateBurst * 1000;
    this.tokensAt = t;
    // as if long ago, yet small integers: the first heartbeat is free, the first refusal opens a window
    this.violationsSince = t - VIOLATION_WINDOW_MS - 1;
    this.lastHeartbeat = t - HEARTBEAT_EVERY_MS;
  }

  admit(frame: HubToServerFrame, now: number, rate: RateLimit): RateVerdict {
    if (this.free(frame, now) || this.take(now, rate)) return 'pass';
    if (now - this.violationsSince > VIOLATION_WINDOW_MS) {
      this.violations = 0;
      this.violationsSince = now;
    }
    return ++this.violations > rate.rateBurst ? 'close' : 'refuse';
  }

  /**
   * Frames that do not spend the budget: results (unknown ids are dropped at once) and one
   * heartbeat per second. Otherwise a hub answering a burst of commands would be refused, and its
   * answers lost.
   */
  private free(frame: HubToServerFrame, now: number): boolean {
    if (frame.t === FrameType.result) return true;
    if (frame.t !== FrameType.heartbeat || now - this.lastHeartbeat < HEARTBEAT_EVERY_MS) return false;
    this.lastHeartbeat = now;
    return true;
  }

  private take(now: number, rate: RateLimit): boolean {
    const elapsed = now - this.tokensAt;
    if (elapsed > 0) {
      this.milliTokens = Math.min(rate.rateBurst * 1000, this.milliTokens + elapsed * rate.ratePerSec);
      this.tokensAt = now;
    }
    if (this.milliTokens < 1000) return false;
    this.milliTokens -= 1000;
    return true;
  }
}
