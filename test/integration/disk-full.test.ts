/**
 * The embedded default on a full disk, with real node processes. A node whose DATA_DIR stops taking
 * writes lives on: the writes are refused `unavailable` (never acknowledged), readiness is 503
 * (`local_store_failing`, the disk's error named) until the disk has room, then the node is ready
 * and writes again without a restart. A node started on a disk that refuses its first writes exits
 * with a `data error:` line (exit 1), no stack. Without root: the process's file size limit
 * (prlimit) stands in for the full disk (LMDB's write of a page past it fails as ENOSPC's does).
 */
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ExitedError, freshDataDir } from '../../load/harness/index.js';
import { eventually } from '../helpers/eventually.js';
import { api, fileSizeLimit, hasPrlimit, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

let server: ServerProcess | undefined;
afterAll(async () => {
  await server?.stop();
});

describe.skipIf(!hasPrlimit)('a full data disk (needs util-linux prlimit)', () => {
  it('a running node refuses writes unavailable, is not ready with the reason, lives on, and is ready and writing again once the disk has room', async ({ signal }) => {
    const dataDir = freshDataDir();
    server = await startServerProcess({ DATA_DIR: dataDir });
    const node = server;
    const admin = (method: string, path: string, body?: unknown) => api(node.httpUrl, method, path, node.adminToken, body);
    expect((await admin('POST', '/v1/admin/hubs', { hubId: 'df-0', homeId: 'home-df' })).status).toBe(201);

    // the disk is full: the store file cannot grow past its size
    execFileSync('prlimit', ['--pid', String(node.pid), `--fsize=${statSync(join(dataDir, 'hubtier.mdb')).size}:`]);
    let refused: { status: number; body: any } | undefined;
    let n = 0;
    // each provisioning grows the store: one of the first few finds no room
    while (!refused && n < 64) {
      const res = await admin('POST', '/v1/admin/hubs', { hubId: `df-${++n}`, homeId: 'home-df', name: 'x'.repeat(3000) });
      if (res.status !== 201) refused = res;
    }
    expect(refused).toMatchObject({ status: 503, body: { code: 'unavailable', temporary: true } });
    const failing = await api(node.adminUrl, 'GET', '/readyz', undefined);
    expect(failing).toMatchObject({ status: 503, body: { ready: false, reasons: ['local_store_failing'], backends: { store: { healthy: false } } } });
    // the disk's error, named (LMDB reports a write past the file size limit as EFBIG or EIO; a full disk as ENOSPC)
    expect(failing.body.backends.store.failing).toMatch(/\((EFBIG|EIO|ENOSPC)\)$/);
    expect((await api(node.adminUrl, 'GET', '/healthz', undefined)).status).toBe(200);
    // the refused hub was never stored
    expect((await admin('GET', `/v1/hubs/df-${n}`)).status).toBe(404);

    // room again: the store's own test write commits, and the node is ready without a restart
    execFileSync('prlimit', ['--pid', String(node.pid), '--fsize=unlimited:']);
    await eventually(signal, 'ready again', async () => ((await api(node.adminUrl, 'GET', '/readyz', undefined)).status === 200 ? true : undefined));
    expect((await admin('POST', '/v1/admin/hubs', { hubId: `df-${n}`, homeId: 'home-df', name: 'x'.repeat(3000) })).status).toBe(201);
    expect(node.logs.filter((l) => typeof l.stderr === 'string' && /Unhandled|triggerUncaughtException/.test(l.stderr))).toEqual([]);
    expect(await node.stop()).toBe(0);
    server = undefined;
  });

  it('a node started on a disk that refuses its first writes exits 1 with a data error naming DATA_DIR and the disk error, no stack', async () => {
    const dataDir = freshDataDir();
    const err = await startServerProcess({ DATA_DIR: dataDir }, fileSizeLimit(40 * 1024)).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ExitedError);
    const exited = err as ExitedError;
    expect(exited.exitCode).toBe(1);
    expect(exited.output).toMatch(new RegExp(`data error: DATA_DIR ${dataDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: cannot write hubtier\\.mdb \\(File too large \\(EFBIG\\)\\)`));
    expect(exited.output).not.toMatch(/^\s+at /m);
  });
});
