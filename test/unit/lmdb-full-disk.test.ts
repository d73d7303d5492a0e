/**
 * A full disk under the embedded store (lmdb-js 3): a commit that fails refuses its writes
 * (`unavailable`, never acknowledged), the store says it is failing, the process lives on (lmdb-js
 * rejects promises of its own no caller can reach: unhandled, they ended it), and once the disk has
 * room the store's own test write ends the failure. Without root: the child process's file size
 * limit (prlimit) stands in for the full disk (LMDB's write of a page past it fails as ENOSPC's does).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { hasPrlimit } from '../helpers/server-process.js';

const ROOT = resolve(import.meta.dirname, '../..');
const dir = mkdtempSync(join(tmpdir(), 'lmdb-full-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!hasPrlimit)('the LMDB store on a full disk (needs util-linux prlimit)', () => {
  it('refuses the writes of a failed commit, stays alive and failing, and recovers by itself once the disk has room', async () => {
    const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((done) => {
      const child = execFile(process.execPath, ['--import', 'tsx', 'test/helpers/lmdb-full-disk-child.ts', dir], { cwd: ROOT }, (_err, stdout, stderr) => done({ code: child.exitCode, stdout, stderr }));
    });
    expect({ code, stderr: code === 0 ? '' : stderr }).toEqual({ code: 0, stderr: '' });
    const seen = JSON.parse(stdout.trim()) as Record<string, unknown>;
    expect(seen).toEqual({
      refused: true,
      unavailable: true,
      // LMDB reports a write past the file size limit as EIO (a full disk: ENOSPC)
      failing: expect.stringMatching(/\((EIO|EFBIG|ENOSPC)\)$/),
      refusedAgain: true,
      after: 20_000,
      before: 1000,
    });
  });
});
