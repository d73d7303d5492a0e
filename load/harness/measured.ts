import { fileURLToPath } from 'node:url';
import type { Proc } from './proc.js';

const GC_HOOK = fileURLToPath(new URL('./gc-hook.mjs', import.meta.url));

/** Node flags of a measured process: `gc()` exposed and `gc-hook.mjs` preloaded (TypeScript via tsx). */
export const MEASURED_NODE_FLAGS: readonly string[] = ['--expose-gc', '--import', 'tsx', '--import', GC_HOOK];
/** The same for a compiled node (`npm run build`): no TypeScript loader. */
export const MEASURED_COMPILED_FLAGS: readonly string[] = ['--expose-gc', '--import', GC_HOOK];

export interface GcReading {
  /** when it was read (ms since the Unix epoch) */
  at?: number;
  rss: number;
  /** of `rss`, the anonymous and the file-backed pages (Linux; absent elsewhere): a memory-mapped store's are file-backed */
  rssAnon?: number;
  rssFile?: number;
  heapUsed: number;
  /** V8 heap committed (used or not) */
  heapTotal: number;
  /** of `heapTotal`, the pages V8's spaces hold (touched): anonymous RSS less this is native memory, and pages V8 let go but has not yet returned */
  heapPhysical?: number;
  /** of `heapPhysical`, the young generation's pages (new space and its large objects): sized by allocation rate, not by what is held */
  youngPhysical?: number;
  external: number;
  arrayBuffers: number;
  /** committed bytes per V8 heap space (`new_space`, `old_space`, …) */
  spaces?: Record<string, number>;
  /** heap snapshot written after the collection (HEAP_SNAPSHOT_DIR set for the process) */
  snapshot?: string;
}

/** Asks a process started with MEASURED_NODE_FLAGS to collect; its memory after the collection. */
export async function collect(proc: Proc): Promise<GcReading> {
  const line = proc.waitLine((l) => l.startsWith('{"gcHook":true'), 300_000);
  // SIGUSR2 stops a node since 2026-12-06: bench:memory's node exited at its first reading
  proc.child.kill('SIGURG');
  return JSON.parse(await line) as GcReading;
}
