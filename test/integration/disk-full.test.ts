/**
 * The embedded default on a full disk, with real node processes. A node whose DATA_DIR stops taking
 * writes stops at the first commit the disk refuses with a `data error:` line naming DATA_DIR and
 * the disk's error (exit 1; lmdb-js is not safe to write after a failed commit), and what it
 * acknowledged is there at the next start; a node started on such a disk exits the same way. Without root: the process's file size limit
 * (prlimit) stands in for the full disk (LMDB's write of a page past it fails as ENOSPC's does).
 */
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ExitedError, freshDataDir } from '../../load/harness/index.js';
import { api, fileSizeLimit, hasPrlimit, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

let server: ServerProcess | undefined;
afterAll(async () => {
  await server?.stop();
});

describe.skipIf(!hasPrlimit)('a full data disk (needs util-linux prlimit)', () => {
  it('a running node stops with a data error at the first write the disk refuses; what it acknowledged is there after the restart', async () => {
    const dataDir = freshDataDir();
    // no reserve: the last line of defence, a commit the disk refuses
    server = await startServerProcess({ DATA_DIR: dataDir, TIER_DISK_RESERVE_MB: '0' });
    const node = server;
    const admin = (method: string, path: string, body?: unknown) => api(node.httpUrl, method, path, node.adminToken, body);
    // the disk is full: the store file cannot grow past its size
    execFileSync('prlimit', ['--pid', String(node.pid), `--fsize=${statSync(join(dataDir, 'hubtier.mdb')).size}:`]);
    const stored: string[] = [];
    // each provisioning grows the store: one of the first few finds no room, and the node stops
    for (let n = 0; n < 64; n++) {
      const res = await admin('POST', '/v1/admin/hubs', { hubId: `df-${n}`, homeId: 'home-df', name: 'x'.repeat(3000) }).catch(() => undefined);
      if (res?.status !== 201) break;
      stored.push(`df-${n}`);
    }
    expect(await node.stop()).toBe(1);
    server = undefined;
    const stderr = node.logs.flatMap((l) => (typeof l.stderr === 'string' ? [l.stderr] : [])).join('\n');
    expect(stderr).toMatch(/data error: DATA_DIR .*: cannot write hubtier\.mdb \(.*\((EFBIG|EIO|ENOSPC)\)\)\. Nothing acknowledged is lost/);
    expect(stderr).not.toMatch(/Unhandled|Commit failed|triggerUncaughtException/);

    // room again: a start, and every hub that was answered 201 is there
    server = await startServerProcess({ DATA_DIR: dataDir });
    const again = server;
    for (const hubId of stored) expect((await api(again.httpUrl, 'GET', `/v1/hubs/${hubId}`, again.adminToken)).status).toBe(200);
  });

  it('a node started on a disk that refuses its first writes exits 1 with a data error naming DATA_DIR and the disk error, no stack', async () => {
    const dataDir = freshDataDir();
    const err = await startServerProcess({ DATA_DIR: dataDir, TIER_DISK_RESERVE_MB: '0' }, fileSizeLimit(40 * 1024)).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ExitedError);
    const exited = err as ExitedError;
    expect(exited.exitCode).toBe(1);
    expect(exited.output).toMatch(new RegExp(`data error: DATA_DIR ${dataDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: cannot write hubtier\\.mdb \\(File too large \\(EFBIG\\)\\)`));
    expect(exited.output).not.toMatch(/^\s+at /m);
  });

  it('a running node whose disk has less room than TIER_DISK_RESERVE_MB stops before any write is refused; what it acknowledged is there after', async () => {
    const dataDir = freshDataDir();
    server = await startServerProcess({ DATA_DIR: dataDir, TIER_DISK_RESERVE_MB: '1' });
    const node = server;
    for (let n = 0; n < 5; n++) expect((await api(node.httpUrl, 'POST', '/v1/admin/hubs', node.adminToken, { hubId: `dr-${n}`, homeId: 'home-dr' })).status).toBe(201);
    // half the reserve left to the largest file, and nothing more written: the watch stops it
    const largest = Math.max(...['hubtier.mdb', 'history.mdb'].map((f) => statSync(join(dataDir, f), { throwIfNoEntry: false })?.size ?? 0));
    execFileSync('prlimit', ['--pid', String(node.pid), `--fsize=${largest + 512 * 1024}:`]);
    expect(await node.exited).toBe(1);
    server = undefined;
    const stderr = node.logs.flatMap((l) => (typeof l.stderr === 'string' ? [l.stderr] : [])).join('\n');
    expect(stderr).toMatch(/data error: DATA_DIR .*: 0\.[3-5] MB left for the store to grow \(file size limit\), below the reserve of 1\.0 MB \(TIER_DISK_RESERVE_MB\): the node stops before the disk refuses a write\. Nothing acknowledged is lost: the process's file size limit \(ulimit -f/);
    expect(stderr).not.toMatch(/Write error|cannot write|Commit failed/);
    server = await startServerProcess({ DATA_DIR: dataDir });
    for (let n = 0; n < 5; n++) expect((await api(server.httpUrl, 'GET', `/v1/hubs/dr-${n}`, server.adminToken)).status).toBe(200);
  });

  it('a node is not started on a disk with less room than the reserve (64 MB by default): exit 1, a data error, nothing written', async () => {
    const dataDir = freshDataDir();
    const err = await startServerProcess({ DATA_DIR: dataDir }, fileSizeLimit(40 * 1024)).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ExitedError);
    const exited = err as ExitedError;
    expect(exited.exitCode).toBe(1);
    expect(exited.output).toMatch(/data error: DATA_DIR .*: 0\.0 MB left for the store to grow \(file size limit\), below the reserve of 64\.0 MB \(TIER_DISK_RESERVE_MB\)/);
    expect(exited.output).not.toMatch(/Write error|cannot write/);
  });
});
