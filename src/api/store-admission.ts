/**
 * Writes through the API to a node's own store (the embedded default) while its disk stalls: each
 * waited without a deadline, holding its socket and body, and a client that gave up could not tell
 * whether its write would land (review "slowdisk"). Past the stall warning's bound they are refused
 * at once with nothing done, `503 unavailable` with Retry-After; reads, commands and hub reports go on.
 */
import { TierError } from '../errors.js';

/** How soon a refused caller should try again (ms): a stall seen is rarely over sooner. */
const RETRY_AFTER_MS = 5_000;

/**
 * The admission of API writes, from how long the store's oldest write has waited (`Ports.writesWaitingMs`)
 * against `boundMs` (the stall warning's, STALL_WARN_MS);
 * undefined when the node has no store of its own (cluster mode: Redis calls have their own timeouts).
 */
export function storeWriteAdmission(waitingMs: (() => number) | undefined, boundMs: number): (() => TierError | null) | undefined {
  if (waitingMs === undefined) return undefined;
  return () => {
    const waited = waitingMs();
    if (waited <= boundMs) return null;
    return new TierError('unavailable', `the node's store has waited ${Math.round(waited / 1000)} s for its disk: writes are refused until it is durable again (nothing was changed; try again later)`, { retryAfterMs: RETRY_AFTER_MS });
  };
}
