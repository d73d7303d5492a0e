import { MAX_DELAY_MS } from './delay.js';

/** How long to wait before reconnecting: exponential growth, capped, with random jitter. */
export interface BackoffOptions {
  /** @default 500 (ms): the ceiling of the first retry's delay */
  initialMs: number;
  /** @default 30_000 (ms): the ceiling never grows past this */
  maxMs: number;
  /** @default 2: the ceiling's growth per failed attempt */
  factor: number;
  /**
   * @default 0.5: the random share of each delay, 0..1. A delay falls in
   * [ceiling × (1 − jitter), ceiling], so clients dropped together by one node do not return together.
   */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 500, maxMs: 30_000, factor: 2, jitter: 0.5 };

/** The options with defaults filled in; a value out of range throws a RangeError naming it. */
export function backoffOptions(given: Partial<BackoffOptions> = {}): BackoffOptions {
  const o = { ...DEFAULT_BACKOFF, ...given };
  const bad = (key: keyof BackoffOptions, rule: string) => new RangeError(`backoff.${key} must be ${rule} (got ${String(o[key])})`);
  if (!(o.initialMs > 0)) throw bad('initialMs', 'a positive number of ms');
  // past 2^31 − 1 ms a timer fires at once: reconnects with no delay at all (delay.ts)
  if (!(o.maxMs >= o.initialMs && o.maxMs <= MAX_DELAY_MS)) throw bad('maxMs', `at least initialMs, at most ${MAX_DELAY_MS}`);
  if (!(o.factor >= 1)) throw bad('factor', 'at least 1');
  if (!(o.jitter >= 0 && o.jitter <= 1)) throw bad('jitter', 'between 0 and 1');
  return o;
}

/**
 * The delay (ms) before reconnect attempt `attempt` (0 for the first retry after a drop).
 * `random` returns a number in [0, 1), as Math.random does; tests pass their own.
 */
export function backoffDelay(attempt: number, o: BackoffOptions, random: () => number): number {
  // factor ** attempt overflows to Infinity for large attempts; min() still caps it at maxMs
  const ceiling = Math.min(o.maxMs, o.initialMs * o.factor ** attempt);
  return Math.round(ceiling * (1 - o.jitter * random()));
}
