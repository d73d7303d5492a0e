import { setFlagsFromString } from 'node:v8';

/** V8's flags for helper threads within a collection's pause: the scavenge, the old generation's compaction, pointer updates. */
export const PARALLEL_GC_FLAGS = ['parallel-scavenge', 'parallel-compaction', 'parallel-pointer-update'] as const;

/**
 * TIER_PARALLEL_GC=false: V8 does the work of a collection's pause on the main thread alone. Where
 * nodes are packed several to a core (or a pod's CPU limit is under one), the helpers wait for a
 * core while the node's loop is stopped: 27 nodes on two cores spent 76 s in scavenges over five
 * minutes with them, 42–44 s without (BENCHMARKS.md, 2026-12-05 seventh). V8 reads these flags at
 * each collection, so setting them at start applies to every pause after. Answers whether it
 * changed anything.
 */
export function applyParallelGc(parallel: boolean, set: (flag: string) => void = setFlagsFromString): boolean {
  if (parallel) return false;
  for (const flag of PARALLEL_GC_FLAGS) set(`--no-${flag}`);
  return true;
}
