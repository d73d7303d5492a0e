/** The longest delay setTimeout takes as given: past it (or at Infinity) a timer fires at once. */
export const MAX_DELAY_MS = 2 ** 31 - 1;

/**
 * `value` when it is a delay a timer takes (0 to MAX_DELAY_MS ms), else a RangeError naming the
 * option: `connectTimeoutMs: 2 ** 31` gave up every attempt at once, so the client never connected,
 * and `keepaliveMs: Infinity` ran a 1 ms timer loop (review "wrap").
 */
export function delayMs(name: string, value: number, least = 0): number {
  if (!(value >= least && value <= MAX_DELAY_MS)) throw new RangeError(`${name} must be a number of ms from ${least} to ${MAX_DELAY_MS} (24.8 days) (got ${String(value)})`);
  return value;
}
