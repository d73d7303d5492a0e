/**
 * The cluster's clock: this process's wall clock corrected by its offset to Redis's, measured at
 * each liveness refresh (src/compose/node-liveness.ts). Times one node sets and another judges (a
 * command's deadline) are read on it, as the directory's and the history's are on Redis's own: on
 * each node's clock, a holding node 5 s ahead refused every command of a 5 s timeout unsent, and
 * 4 s ahead left the hub 1 s of it (review diff18). Offset 0 in the embedded default (one node).
 */

let offsetMs = 0;

/** ms since 1970 on the cluster's clock */
export function clusterNow(): number {
  return Date.now() + offsetMs;
}

/** Takes a new reading of Redis's clock minus this process's (ms). */
export function setClusterClockOffset(ms: number): void {
  if (Number.isFinite(ms)) offsetMs = Math.round(ms);
}
