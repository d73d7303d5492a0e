/**
 * What sessions keep of times (a hub's last frame, its rate gate's refill, timer deadlines) is
 * kept as ms since this origin, not since 1970: V8 stores such a number in the object itself (a
 * small integer, for 24 days of uptime) instead of a 16-byte heap number per field, and a node
 * holds several per hub. Past 24 days they are heap numbers again: the same values, more bytes.
 */
export const CLOCK_ORIGIN = Date.now();

/**
 * ms since the process started on a monotonic clock, a small integer (for 24 days), as
 * `sinceOrigin` keeps them: what intervals are measured on (idle checks, frame and connect
 * budgets, timer deadlines, cache ages). The wall clock can step (an NTP correction, a VM
 * resumed); measured on it, a step forward closed every hub of a node as silent at once and a step
 * back stalled every timer and refused every new hub until the clock had caught up.
 */
export function monotonicMs(): number {
  const t = Math.floor(performance.now());
  const small = t | 0;
  return small === t ? small : t;
}

/** `ms` (since 1970, as Date.now() gives it) as ms since CLOCK_ORIGIN. */
export function sinceOrigin(ms: number): number {
  const t = ms - CLOCK_ORIGIN;
  // a difference of two doubles is a heap number even when whole: `| 0` gives the same value as a
  // small integer (a fraction, or 24 days from the origin, stays as it is)
  const small = t | 0;
  return small === t ? small : t;
}

/**
 * The wall clock as the process found it at its start, advanced by the monotonic clock: what
 * retention is judged on (the audit trail's age, expired revocations removed). A step of the wall
 * clock while the node runs (NTP, a VM resumed) then removes nothing early: judged on it, a clock
 * a month ahead for a moment deleted every revocation and the whole audit trail for good (2026-12-06).
 * A process started with a wrong clock keeps it: keep nodes on NTP before they start.
 */
export function steadyWallMs(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * The earlier of the wall clock and `steadyWallMs`: what the age of a time stored from the wall
 * clock is judged against (retention, dedup windows). Times are stored as the wall clock gives them,
 * so they mean the same to the next process; judged on the earlier clock, a step of the wall clock
 * either way, before a restart or while the node runs, ages nothing early (stored on `steadyWallMs`
 * alone, they looked a step old to the next process: every home's history `too_old`, review diff26).
 */
export function agingNowMs(): number {
  return Math.min(Date.now(), steadyWallMs());
}

/** The later of the two: what a stored due time (a push retry) is checked against, so a step back of the wall clock delays nothing. */
export function dueNowMs(): number {
  return Math.max(Date.now(), steadyWallMs());
}

/** Retry delay: 100 ms doubling up to `capMs`, ±20 % jitter so nodes (or a node's many waiters) do not retry in step. */
export function backoff(attempt: number, capMs: number): number {
  const base = Math.min(100 * 2 ** Math.min(Math.max(attempt - 1, 0), 16), capMs);
  return Math.round(base * (0.8 + Math.random() * 0.4));
}
