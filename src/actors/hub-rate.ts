import { FrameType, type HubToServerFrame } from '../../proto/frames.js';

/** @default 10_000 (ms): window in which rate-limit refusals are counted towards closing */
const VIOLATION_WINDOW_MS = 10_000;

/** What the gate does with a frame: let it through, refuse it (`rate_limited`), or close the session. */
export type RateVerdict = 'pass' | 'refuse' | 'close';

/**
 * One hub's frame budget: a token bucket of `rateBurst` tokens refilled at `ratePerSec`. A frame
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

  constructor(
    private readonly rate: { readonly ratePerSec: number; readonly rateBurst: number },
    now: number,
  ) {
    this.tokens = rate.rateBurst;
    this.tokensAt = now;
  }

  admit(frame: HubToServerFrame, now: number): RateVerdict {
    if (this.free(frame, now) || this.take(now)) return 'pass';
    if (now - this.violationsSince > VIOLATION_WINDOW_MS) {
      this.violations = 0;
      this.violationsSince = now;
    }
    return ++this.violations > this.rate.rateBurst ? 'close' : 'refuse';
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

  private take(now: number): boolean {
    const elapsed = now - this.tokensAt;
    if (elapsed > 0) {
      this.tokens = Math.min(this.rate.rateBurst, this.tokens + (elapsed * this.rate.ratePerSec) / 1000);
      this.tokensAt = now;
    }
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
