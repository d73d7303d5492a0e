/** What a hub socket keeps of its conduct: its hello so far, and its malformed frames (two small integers). */

/** A hub socket's hello so far: none, one handed to its session, or only ones of a version this node does not speak. */
export const HELLO_NONE = 0;
export const HELLO_SENT = 1;
export const HELLO_REFUSED = 2;

/** Malformed frames tolerated per hub session before it is closed with `malformed`, as a leaky bucket: */
export const MAX_BAD_FRAMES = 10;
/**
 * one is forgiven a minute. A count for the session's life closed a days-long session at its tenth
 * rare mismatch (a newer firmware's frame an hour: a close every ten hours; review "compat").
 */
const LEAK_MS = 60_000;
/** the count takes the low 4 bits of a socket's one number (≤ MAX_BAD_FRAMES), the minute above */
const COUNT_BITS = 4;
const COUNT_MASK = (1 << COUNT_BITS) - 1;

/** The malformed frames a packed state counts now (0 for a socket that sent none). */
export const badFrameCount = (state: number): number => state & COUNT_MASK;

/**
 * A hub socket's state after one more malformed frame: one forgiven per minute since the last,
 * then this one counted. One small integer a socket (minutes of this process, 2^26 of them
 * in 127 years), so a session holds no more than it did before the bucket.
 */
export function countBadFrame(state: number, nowMs = performance.now()): number {
  const minute = Math.floor(nowMs / LEAK_MS);
  const since = Math.floor(state / (COUNT_MASK + 1));
  // whole minutes of the process clock: the part of a minute not spent counts toward the next
  const left = Math.max(0, badFrameCount(state) - (minute - since));
  return minute * (COUNT_MASK + 1) + Math.min(COUNT_MASK, left + 1);
}
