import { FrameType, type HubToServerFrame } from '../../proto/frames.js';

/** @default 10_000 (ms): window in which rate-limit refusals are counted towards closing */
const VIOLATION_WINDOW_MS = 10_000;

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
 */
export class RateGate {
  private tokens: number;
  private tokensAt: number;
  /** frames refused in the current window, and when that window began */
  private violations = 0;
  private violationsSince = 0;
  /** when the last free heartbeat arrived */
  private lastHeartbeat = 0;

  constructor(rate: RateLimit, now: number) {
    this.tokens = rate.rateBurst;
    this.tokensAt = now;
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
    if (frame.t !== FrameType.heartbeat || now - this.lastHeartbeat < 1_000) return false;
    this.lastHeartbeat = now;
    return true;
  }

  private take(now: number, rate: RateLimit): boolean {
    const elapsed = now - this.tokensAt;
    if (elapsed > 0) {
      this.tokens = Math.min(rate.rateBurst, this.tokens + (elapsed * rate.ratePerSec) / 1000);
      this.tokensAt = now;
    }
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
