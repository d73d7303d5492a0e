/** Malformed frames tolerated per hub session before it is closed with `malformed`, as a leaky bucket: */
export const MAX_BAD_FRAMES = 10;
/**
 * one is forgiven per this many seconds. A count for the session's life closed a days-long session
 * at its tenth rare mismatch (a newer firmware's frame an hour: a close every ten hours; review "compat").
 */
export const BAD_FRAME_LEAK_S = 60;

/** What a hub socket keeps of its malformed frames: two small integers. */
export interface BadFrameCount {
  badFrames: number;
  /** when the bucket's current period began, in whole seconds of this process (a small integer, kept unboxed) */
  badAtS: number;
}

/** Counts one more malformed frame, after forgiving one per BAD_FRAME_LEAK_S since the bucket's period began; the count. */
export function countBadFrame(link: BadFrameCount, nowS = Math.floor(performance.now() / 1000)): number {
  const forgiven = Math.floor((nowS - link.badAtS) / BAD_FRAME_LEAK_S);
  const left = link.badFrames - forgiven;
  // an empty bucket starts its period now; else the part of a period not spent counts toward the next
  link.badAtS = left <= 0 ? nowS : link.badAtS + forgiven * BAD_FRAME_LEAK_S;
  link.badFrames = Math.max(0, left) + 1;
  return link.badFrames;
}
