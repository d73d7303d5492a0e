import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { getHeapSpaceStatistics, getHeapStatistics, writeHeapSnapshot } from 'node:v8';

/**
 * Preloaded into measured processes (`--expose-gc --import tsx --import ./load/harness/gc-hook.mjs`):
 * on SIGURG it runs a full garbage collection and prints one JSON line on stderr with the heap
 * and resident sizes after it, so memory is read after a collection instead of at a random point.
 * With HEAP_SNAPSHOT_DIR set it also writes a heap snapshot there (its path is in the line).
 * Plain JavaScript: worker threads inherit the flags, and a `.ts` preload failed to load in them
 * (the rule workers of measured nodes never started). SIGURG, not SIGUSR2: the node drains and
 * exits at SIGUSR2 (a stop signal since 2026-12-06); nor SIGWINCH, which a terminal's resize sends
 * the whole process group. A process without this hook ignores SIGURG, and no terminal sends it.
 */
let n = 0;

/**
 * Anonymous and file-backed resident memory (Linux, /proc/self/status; undefined elsewhere): a
 * memory-mapped store's pages (LMDB) are file-backed, so the anonymous part is the process's own.
 */
function residentSplit() {
  try {
    const status = readFileSync('/proc/self/status', 'utf8');
    const kb = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]) * 1024;
    return { rssAnon: kb('RssAnon'), rssFile: kb('RssFile') };
  } catch {
    return {};
  }
}
process.on('SIGURG', () => {
  const gc = globalThis.gc;
  gc?.();
  gc?.();
  // read before a snapshot: writing one takes memory of its own
  let m = process.memoryUsage();
  // committed bytes per V8 space: says which space a step in the committed heap came from; read
  // again when a space grew between the two reads (a page: seen once in a CI run), so they add up
  let spaceStats = getHeapSpaceStatistics();
  for (let i = 0; i < 3 && spaceStats.reduce((n, s) => n + s.space_size, 0) !== m.heapTotal; i++) {
    m = process.memoryUsage();
    spaceStats = getHeapSpaceStatistics();
  }
  const split = residentSplit();
  const spaces = Object.fromEntries(spaceStats.map((s) => [s.space_name, s.space_size]));
  // pages the young generation holds: V8 sizes it by allocation rate, per process, not per session
  const youngPhysical = spaceStats.filter((s) => s.space_name === 'new_space' || s.space_name === 'new_large_object_space').reduce((n, s) => n + s.physical_space_size, 0);
  // pages V8's heap spaces hold: the anonymous RSS beyond them is native (malloc arenas: uWS, LMDB,
  // buffers; stacks) and pages V8 has let go but its unmapper has not yet returned
  const heapPhysical = getHeapStatistics().total_physical_size;
  const dir = process.env.HEAP_SNAPSHOT_DIR;
  const snapshot = dir ? writeHeapSnapshot(join(dir, `heap-${process.pid}-${++n}.heapsnapshot`)) : undefined;
  process.stderr.write(`${JSON.stringify({ gcHook: true, at: Date.now(), collected: gc !== undefined, rss: m.rss, ...split, heapUsed: m.heapUsed, heapTotal: m.heapTotal, heapPhysical, youngPhysical, external: m.external, arrayBuffers: m.arrayBuffers, spaces, snapshot })}\n`);
});
