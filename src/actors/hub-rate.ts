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

/** Refusals counted towards closing, in the window that began at `since`. */
interface Violations {
  count: number;
  since: number;
}

/**
 * One hub's frame budget: a token bucket of `rateBurst` tokens refilled at `ratePerSec` (given
 * with each frame, so a session does not hold a copy). A frame over budget is refused; only
 * persistent excess closes: more refusals within one window than the burst allows. Answers to the
 * commands the session waits for (a result, or an error frame whose `ref` names one) and one
 * heartbeat per second are free; an answer for no such command (an id never sent, answered
 * already, timed out) spends the budget as any frame does.
 *
 * The fields live on the hub session itself (a node holds one budget per hub, and an object of its
 * own would cost each 40 bytes more); `admit` is the gate. Every field is kept a small integer:
 * tokens in thousandths, a refill of `ms × ratePerSec` thousandths exact; times as the session
 * gives them, on the monotonic clock (`monotonicMs`).
 */
export interface RateBudget {
  /** thousandths of a token */
  rateTokens: number;
  /** when the tokens were last refilled */
  rateRefilled: number;
  /** when the last free heartbeat arrived */
  rateHeartbeat: number;
  /** made on the first refusal: most hubs are never refused */
  rateViolations: Violations | null;
  /** whether command `commandId` waits for the hub's answer: only answers to such are free */
  awaits(commandId: number): boolean;
}

/** A full budget at `t` (ms on the caller's clock, as for `admit`), written into `budget`. */
export function fillBudget(budget: RateBudget, rate: RateLimit, t: number): void {
  budget.rateTokens = rate.rateBurst * 1000;
  budget.rateRefilled = t;
  // as if long ago, yet a small integer: the first heartbeat is free
  budget.rateHeartbeat = t - HEARTBEAT_EVERY_MS;
  budget.rateViolations = null;
}

export function admit(budget: RateBudget, frame: HubToServerFrame, now: number, rate: RateLimit): RateVerdict {
  if (free(budget, frame, now)) return 'pass';
  return spend(budget, now, rate, frame.t === FrameType.report ? reportTokens(frame.r, rate) : 1);
}

/**
 * A WebSocket ping (or unsolicited pong) of the hub: uWS answers a ping by itself, so a flood was
 * never refused (843,000 a second for 20 s, 2.1 GB of pongs, 0.85 of a core: review "conn"). One a
 * second passes free, sharing the heartbeat's allowance (a hub may keep its session alive with pings
 * alone); the others spend the budget, and past the burst of refusals the session is closed.
 */
export function admitPing(budget: RateBudget, now: number, rate: RateLimit): RateVerdict {
  if (now - budget.rateHeartbeat >= HEARTBEAT_EVERY_MS) {
    budget.rateHeartbeat = now;
    return 'pass';
  }
  return spend(budget, now, rate);
}

/**
 * Devices of a report one token covers: each device changed is a state event, with its history,
 * rules and fan-out. 64, so that a hub reporting up to 64 devices a frame spends what it did when
 * frames alone were counted (16 closed hubs that kept 50 frames/s of 17 devices: review diff10).
 */
const DEVICES_PER_TOKEN = 64;

/**
 * A report's tokens: one per DEVICES_PER_TOKEN devices it changes (at least one), at most the burst
 * (so a full bucket passes it). Counted by frames, a hub sent 50 reports of 256 devices a second,
 * 12,800 events, each home's history turned over 100 times a second (review "complexity"); now 3,200.
 */
function reportTokens(devices: object, rate: RateLimit): number {
  let n = 0;
  for (const _ in devices) n++;
  return n <= DEVICES_PER_TOKEN ? 1 : Math.min(rate.rateBurst, Math.ceil(n / DEVICES_PER_TOKEN));
}

/** The part of a budget `spend` uses: an app socket's requests have one too (app-gateway.ts). */
export type TokenBucket = Pick<RateBudget, 'rateTokens' | 'rateRefilled' | 'rateViolations'>;

/** A full bucket at `t` (ms on the monotonic clock). */
export function fullBucket(rate: RateLimit, t: number): TokenBucket {
  return { rateTokens: rate.rateBurst * 1000, rateRefilled: t, rateViolations: null };
}

/**
 * The verdict on a frame that is not free: `tokens` of the budget, else a refusal counted towards
 * closing. The gateway asks it for a result read no further than its id (`admit` for the rest).
 */
export function spend(budget: TokenBucket, now: number, rate: RateLimit, tokens = 1): RateVerdict {
  if (take(budget, now, rate, tokens * 1000)) return 'pass';
  let v = budget.rateViolations;
  if (v === null) v = budget.rateViolations = { count: 0, since: now };
  else if (now - v.since > VIOLATION_WINDOW_MS) {
    v.count = 0;
    v.since = now;
  }
  return ++v.count > rate.rateBurst ? 'close' : 'refuse';
}

/**
 * Frames that do not spend the budget: answers (results, error frames) to commands the session waits
 * for (bounded by the commands in flight) and one heartbeat per second. Otherwise a hub answering a burst of commands
 * would be refused, and its answers lost. Any other result spends it: free, a flood of them would
 * cost the node what the budget exists to bound.
 */
function free(budget: RateBudget, frame: HubToServerFrame, now: number): boolean {
  if (frame.t === FrameType.result) return budget.awaits(frame.id);
  // a hub refusing a waiting command with an error frame answers it, as a result would
  if (frame.t === FrameType.error) return frame.ref !== undefined && budget.awaits(frame.ref);
  if (frame.t !== FrameType.heartbeat || now - budget.rateHeartbeat < HEARTBEAT_EVERY_MS) return false;
  budget.rateHeartbeat = now;
  return true;
}

function take(budget: TokenBucket, now: number, rate: RateLimit, cost: number): boolean {
  const elapsed = now - budget.rateRefilled;
  if (elapsed > 0) {
    budget.rateTokens = Math.min(rate.rateBurst * 1000, budget.rateTokens + elapsed * rate.ratePerSec);
    budget.rateRefilled = now;
  }
  if (budget.rateTokens < cost) return false;
  budget.rateTokens -= cost;
  return true;
}
