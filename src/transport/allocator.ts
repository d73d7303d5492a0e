import { readFileSync } from 'node:fs';

/** The uWS build whose asynchronous upgrade reads freed memory (uNetworking/uWebSockets#1928). */
const V20_30_PACKAGE = '@trufflesuite/uws-js-unofficial';

/** A malloc replacement's shared library, as a line of /proc/self/maps names it. */
const REPLACEMENT = /\/(lib(?:jemalloc|mimalloc|tcmalloc)[\w.+-]*\.so[\w.]*)$/m;

/** The malloc replacement mapped into the process (LD_PRELOAD or linked), or null: glibc's own. */
export function replacedAllocator(maps: string): string | null {
  return REPLACEMENT.exec(maps)?.[1] ?? null;
}

/** This process's memory map ('' where there is none to read: not Linux). */
export function ownMaps(): string {
  try {
    return readFileSync('/proc/self/maps', 'utf8');
  } catch {
    return '';
  }
}

/**
 * Why this node must not start, or null. Cluster mode answers hub upgrades after a Redis round
 * trip, through `res.cork`, which in uWS v20.30 reads the socket's memory after the upgrade has
 * moved it. glibc's malloc leaves that memory as it was (28,500 such upgrades with MALLOC_PERTURB_,
 * no failure); with jemalloc preloaded the node died of SIGSEGV in `res_cork` within 10,000 (BENCHMARKS.md).
 */
export function allocatorRefusal(packageName: string, cluster: boolean, maps: string): string | null {
  const library = replacedAllocator(maps);
  if (!cluster || packageName !== V20_30_PACKAGE || library === null) return null;
  return (
    `${library} replaces glibc's malloc in this process (LD_PRELOAD?), and cluster mode on ${packageName} (uWS v20.30) ` +
    `answers hub upgrades through res.cork, which then reads freed memory (uNetworking/uWebSockets#1928): with jemalloc ` +
    `the node crashed within 10,000 handshakes. Run it on glibc's malloc (unset LD_PRELOAD), or install the official ` +
    `uWebSockets.js build (README "The uWebSockets.js build")`
  );
}
