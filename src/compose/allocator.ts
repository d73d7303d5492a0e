import { readFileSync } from 'node:fs';

/** A malloc replacement's shared library, as a line of /proc/self/maps names it. */
const REPLACEMENT = /\/(lib(?:jemalloc|mimalloc|tcmalloc)[\w.+-]*\.so[\w.]*)$/m;

/**
 * The malloc replacement mapped into the process (LD_PRELOAD or linked), or null: glibc's own.
 * The node trims glibc's arenas itself (src/compose/malloc-trim.ts), not a replacement's.
 */
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
