import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ownMaps, replacedAllocator } from '../../src/compose/allocator.js';

const GLIBC_MAPS = [
  '7f0000000000-7f0000022000 r--p 00000000 fe:00 123 /usr/lib/x86_64-linux-gnu/libc.so.6',
  '7f0000100000-7f0000109000 r-xp 00009000 fe:00 456 /work/node_modules/@trufflesuite/uws-js-unofficial/binaries/uws_linux_x64_115.node',
  '7f0000200000-7f0000300000 rw-p 00000000 00:00 0 [heap]',
].join('\n');
const withLibrary = (name: string) => `${GLIBC_MAPS}\n7f0000400000-7f0000409000 r-xp 00009000 fe:00 789 /usr/lib/x86_64-linux-gnu/${name}\n`;

describe('a malloc replacement in the process', () => {
  it('is named from the memory map: jemalloc, mimalloc, tcmalloc; glibc alone is none', () => {
    expect(replacedAllocator(GLIBC_MAPS)).toBeNull();
    expect(replacedAllocator(withLibrary('libjemalloc.so.2'))).toBe('libjemalloc.so.2');
    expect(replacedAllocator(withLibrary('libmimalloc.so.2.0'))).toBe('libmimalloc.so.2.0');
    expect(replacedAllocator(withLibrary('libtcmalloc_minimal.so.4'))).toBe('libtcmalloc_minimal.so.4');
    // a path that merely mentions one is not a mapped library
    expect(replacedAllocator(`${GLIBC_MAPS}\n7f0000500000-7f0000501000 r--p 00000000 fe:00 9 /data/libjemalloc-notes.txt`)).toBeNull();
  });

  it('this test process runs on glibc (the node processes of the test suite too)', () => {
    // where /proc exists the map is read; the node's malloc_trim works on glibc's arenas only
    if (existsSync('/proc/self/maps')) expect(ownMaps()).toMatch(/libc\.so/);
    expect(replacedAllocator(ownMaps())).toBeNull();
  });
});
