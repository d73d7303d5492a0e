/**
 * A full disk under the embedded store (lmdb-js 3): at the first commit the disk refuses, the
 * process stops with `data error: DATA_DIR …: cannot write hubtier.mdb (<the disk's error>)`,
 * exit 1, and every write it acknowledged is in the store. lmdb-js is not safe to write after a
 * failed commit (its writer corrupted the heap and acknowledged writes went missing); before this,
 * the process died of lmdb-js's unhandled rejections with their stacks. Without root: the child's
 * file size limit (prlimit) stands in for the full disk (LMDB's write of a page past it fails as
 * ENOSPC's does).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openDataStore } from '../../src/ports/lmdb.js';
import { hasPrlimit } from '../helpers/server-process.js';

const ROOT = resolve(import.meta.dirname, '../..');
const dir = mkdtempSync(join(tmpdir(), 'lmdb-full-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!hasPrlimit)('the LMDB store on a full disk (needs util-linux prlimit)', () => {
  it('stops the process with a data error at the first failed commit, keeping every write it acknowledged', async () => {
    const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((done) => {
      const child = execFile(process.execPath, ['--import', 'tsx', 'test/helpers/lmdb-full-disk-child.ts', dir], { cwd: ROOT }, (_err, stdout, stderr) => done({ code: child.exitCode, stdout, stderr }));
    });
    expect(code).toBe(1);
    // LMDB reports a write past the file size limit as EFBIG or EIO (a full disk: ENOSPC)
    expect(stderr).toMatch(new RegExp(`^data error: DATA_DIR ${dir}: cannot write hubtier\\.mdb \\(.*\\((EFBIG|EIO|ENOSPC)\\)\\)\\. Nothing acknowledged is lost`, 'm'));
    expect(stderr).not.toContain('Commit failed');
    expect(stdout).not.toContain('still running');
    const acked = stdout.split('\n').filter((l) => l.startsWith('acked ')).map((l) => l.slice(6));
    expect(acked[0]).toBe('before');
    const data = openDataStore(dir);
    const db = data.db<string>('t');
    expect(acked.filter((key) => db.get(key) === undefined)).toEqual([]);
    await data.close();
  });
});
