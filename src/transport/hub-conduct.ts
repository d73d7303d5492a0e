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
 * Time in 6 s ticks, ten to a minute: counted in whole minutes, a burst across a minute's
 * boundary had one forgiven at once, and ten in a burst did not close (review "diff8").
 */
const TICK_MS = 6_000;
const LEAK_TICKS = 10;
/** the count takes the low 4 bits of a socket's one number (≤ MAX_BAD_FRAMES), the tick above */
const COUNT_BITS = 4;
const COUNT_MASK = (1 << COUNT_BITS) - 1;

/** The malformed frames a packed state counts now (0 for a socket that sent none). */
export const badFrameCount = (state: number): number => state & COUNT_MASK;

/**
 * A hub socket's state after one more malformed frame: one forgiven per minute since the bucket's
 * tick, then this one counted. One small integer a socket (6 s ticks of this process, 2^26 of them
 * in 12 years), so a session holds no more than it did before the bucket.
 */
export function countBadFrame(state: number, nowMs = performance.now()): number {
  const tick = Math.floor(nowMs / TICK_MS);
  const since = Math.floor(state / (COUNT_MASK + 1));
  const forgiven = Math.floor((tick - since) / LEAK_TICKS);
  const left = badFrameCount(state) - forgiven;
  // an empty bucket starts its period now; else the part of a period not spent counts toward the next
  const start = left <= 0 ? tick : since + forgiven * LEAK_TICKS;
  return start * (COUNT_MASK + 1) + Math.min(COUNT_MASK, Math.max(0, left) + 1);
}
