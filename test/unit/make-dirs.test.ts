/** DATA_DIR's directories made one level at a time: Node's recursive mkdir looped forever under /proc (review "config"). */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeDirs } from '../../src/ports/make-dirs.js';

describe('makeDirs', () => {
  it('makes every missing level with the mode, and leaves an existing directory as it is', () => {
    const root = mkdtempSync(join(tmpdir(), 'make-dirs-'));
    try {
      const deep = join(root, 'a', 'b', 'c');
      makeDirs(deep, 0o700);
      expect(statSync(deep).isDirectory()).toBe(true);
      expect(statSync(join(root, 'a')).mode & 0o777).toBe(0o700);
      makeDirs(deep, 0o700);
      expect(existsSync(deep)).toBe(true);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it.skipIf(!existsSync('/proc/self'))('under /proc fails at once with ENOENT (in a child process: a loop would hang this one)', () => {
    const script = `import('${new URL('../../src/ports/make-dirs.ts', import.meta.url).href}').then(({ makeDirs }) => { try { makeDirs('/proc/hubtier-test/data', 0o700); console.log('made'); } catch (e) { console.log(e.code); } })`;
    const run = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { encoding: 'utf8', timeout: 20_000 });
    expect(run.signal).toBeNull();
    expect(run.stdout.trim()).toBe('ENOENT');
  });
});
