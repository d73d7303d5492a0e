/**
 * A store whose files the node's user may not use (a lock file or data file root left: a `sudo npm
 * run data`, a container run as root before) is refused naming the file, its owner and the node's
 * user. lmdb-js crashed with SIGSEGV and no line on a root-owned lock file, and a root-owned data
 * file was called damaged, to be moved aside (review "lifecycle"). Run as uid 1000 through setpriv,
 * so only where this test runs as root (CI does).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { openDataStore } from '../../src/ports/lmdb.js';

const lmdb = fileURLToPath(new URL('../../src/ports/lmdb.ts', import.meta.url));
const asRoot = typeof process.getuid === 'function' && process.getuid() === 0 && spawnSync('setpriv', ['--version']).status === 0;
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A store made and closed as root, then given to uid 1000 but for `rootFile`. */
async function storeWithRootFile(rootFile: string): Promise<string> {
  const parent = mkdtempSync(join(tmpdir(), 'data-access-'));
  dirs.push(parent);
  chmodSync(parent, 0o755);
  const dir = join(parent, 'data');
  const store = openDataStore(dir, { warn: () => {} });
  await store.close();
  spawnSync('chown', ['-R', '1000:1000', dir]);
  chownSync(join(dir, rootFile), 0, 0);
  chmodSync(join(dir, rootFile), 0o644);
  return dir;
}

/** What opening `dir` as uid 1000 ends with: the refusal's message, or how the process died. */
function openAs1000(dir: string): { status: number | null; signal: string | null; out: string } {
  const script = `const { openDataStore } = await import(${JSON.stringify(lmdb)});
    try { const s = openDataStore(${JSON.stringify(dir)}, { warn: () => {} }); await s.close(); console.log('opened'); }
    catch (err) { console.log(err.name + ': ' + err.message); }`;
  const r = spawnSync('setpriv', ['--reuid=1000', '--regid=1000', '--clear-groups', process.execPath, '--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, HOME: '/tmp' } });
  return { status: r.status, signal: r.signal, out: `${r.stdout}${r.stderr}` };
}

describe.skipIf(!asRoot)("a store's files the node's user may not use", { timeout: 60_000 }, () => {
  it('a root-owned lock file is refused naming it, its owner and the user (it was SIGSEGV with no line)', async () => {
    const r = openAs1000(await storeWithRootFile('hubtier.mdb-lock'));
    expect(r.signal).toBeNull();
    expect(r.out).toMatch(/DataStoreError: DATA_DIR .*: hubtier\.mdb-lock cannot be read and written by this process \(EACCES: owned by uid 0, mode 0644; the node runs as uid 1000\)\. Nothing was changed and nothing is damaged: .*chown -R 1000/);
  });

  it('a root-owned data file is a permission matter, never damage to move aside', async () => {
    const r = openAs1000(await storeWithRootFile('hubtier.mdb'));
    expect(r.out).toMatch(/hubtier\.mdb cannot be read and written/);
    expect(r.out).not.toMatch(/damaged: restore|move it aside/);
  });

  it('a read-only secret.key of the user is no refusal: the node only reads it (review "diff14")', async () => {
    const dir = await storeWithRootFile('hubtier.mdb');
    spawnSync('chown', ['-R', '1000:1000', dir]);
    writeFileSync(join(dir, 'secret.key'), 'k'.repeat(64), { mode: 0o400 });
    chownSync(join(dir, 'secret.key'), 1000, 1000);
    chmodSync(join(dir, 'secret.key'), 0o400);
    expect(openAs1000(dir).out).toMatch(/^opened/m);
  });

  it('the same store given wholly to the user opens', async () => {
    const dir = await storeWithRootFile('hubtier.mdb');
    spawnSync('chown', ['-R', '1000:1000', dir]);
    expect(openAs1000(dir).out).toMatch(/^opened/m);
  });
});
