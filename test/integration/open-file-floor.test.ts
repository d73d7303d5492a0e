/**
 * A node under too low an open-file limit refuses to start with a configuration error naming the
 * limit (exit 2), before its modules load: under 128 files the start ended with a bare EMFILE
 * stack from the module loader.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { MIN_OPEN_FILES, openFileFloor } from '../../src/config/open-file-floor.js';
import { defaultEntry } from '../../load/harness/index.js';
import { hasPrlimit } from '../helpers/server-process.js';

it('judges the limit: under the floor refused, at it, above it, unlimited or unread (not Linux) taken', () => {
  expect(openFileFloor(128)).toMatch(/open-file limit is 128: a node needs at least 256/);
  for (const limit of [MIN_OPEN_FILES, 20_000, Infinity, undefined]) expect(openFileFloor(limit)).toBeNull();
});

it.skipIf(!hasPrlimit)('a node started under a limit of 128 ends at once, exit 2, saying so (no EMFILE stack)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hubtier-files-'));
  try {
    // the compiled node the suites run, else the sources through tsx as `npm start` runs them
    const entry = defaultEntry();
    const args = entry === undefined ? ['--import', 'tsx', 'src/main.ts'] : [entry];
    const run = spawnSync('prlimit', ['--nofile=128:128', process.execPath, ...args], { env: { ...process.env, DATA_DIR: join(dir, 'data'), PORT: '0', ADMIN_PORT: '0' }, encoding: 'utf8', timeout: 20_000 });
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/^configuration error: the open-file limit is 128: /);
    expect(run.stderr).not.toMatch(/EMFILE/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
