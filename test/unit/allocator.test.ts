import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../../load/harness/index.js';
import { allocatorRefusal, ownMaps, replacedAllocator } from '../../src/transport/allocator.js';

const V20_30 = '@trufflesuite/uws-js-unofficial';
/** Debian's jemalloc (a dependency of its redis-server package, which the integration tests need) */
const JEMALLOC = '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2';

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

  it('refuses cluster mode on the v20.30 build only: embedded upgrades are answered synchronously, other builds have the fix', () => {
    const jemalloc = withLibrary('libjemalloc.so.2');
    expect(allocatorRefusal(V20_30, true, jemalloc)).toMatch(/^libjemalloc\.so\.2 replaces glibc's malloc .*uNetworking\/uWebSockets#1928/);
    expect(allocatorRefusal(V20_30, false, jemalloc)).toBeNull();
    expect(allocatorRefusal('uWebSockets.js', true, jemalloc)).toBeNull();
    expect(allocatorRefusal(V20_30, true, GLIBC_MAPS)).toBeNull();
  });

  it('this test process runs on glibc (the node processes of the test suite too)', () => {
    // where /proc exists the map is read; a replacement here would make the cluster tests refuse to start
    if (existsSync('/proc/self/maps')) expect(ownMaps()).toMatch(/libc\.so/);
    expect(replacedAllocator(ownMaps())).toBeNull();
  });

  it.skipIf(!existsSync(JEMALLOC))('a cluster node with jemalloc preloaded exits 1 with the reason, before connecting anywhere', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      cwd: ROOT,
      env: {
        ...process.env,
        LD_PRELOAD: JEMALLOC,
        HOST: '127.0.0.1',
        PORT: '0',
        ADMIN_PORT: '0',
        // nothing listens there: the refusal comes first
        NATS_URL: 'nats://127.0.0.1:1',
        REDIS_URL: 'redis://127.0.0.1:1',
        ADMIN_TOKEN: 'admin-token-of-24-chars!',
        JWT_SECRET: 'jwt-secret-of-at-least-32-chars!',
        TIER_SECRET_KEY: 'a3f1c2e4b5d6978800112233445566778899aabbccddeeff0011223344556677',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(stderr).toMatch(/^uWebSockets\.js error: libjemalloc\.so\.2 replaces glibc's malloc/m);
    expect(code).toBe(1);
  });
});
