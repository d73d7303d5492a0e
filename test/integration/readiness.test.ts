/**
 * Readiness and self-diagnosis of the embedded default, in-process: a full node and a draining
 * node answer 503 with their reason, a node with room answers 200 again; `/debug/diagnose` needs
 * the admin token and shows the checks that apply (the data directory, no backends); `npm run
 * doctor` prints it and exits 0 when nothing fails.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { HubClient } from '../../load/wire/hub-client.js';
import type { DiagnoseReport } from '../../src/admin/diagnose.js';
import { memoryPorts } from '../../src/compose/memory-ports.js';
import { startServer, type RunningServer } from '../../src/compose/server.js';
import { createLogger } from '../../src/log/logger.js';
import { inProcessConfig } from '../helpers/in-process-config.js';
import { api, rulesWarmedUp, scriptArgs } from '../helpers/server-process.js';
import { CgroupMemory } from '../../src/transport/cgroup-memory.js';

const ADMIN = 'readiness-admin-token-0123456789';
const JWT = 'readiness-jwt-secret-0123456789abcdef';
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const run = promisify(execFile);
const log = createLogger('silent');

/** Polls until `check` returns a value; the test's timeout is the ceiling. */
async function eventually<T>(check: () => Promise<T | undefined>): Promise<T> {
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('readiness of one embedded node', () => {
  let server: RunningServer;
  let admin: string;
  let releaseFlush = () => {};
  const flushGate = new Promise<void>((resolve) => (releaseFlush = resolve));

  afterAll(async () => {
    releaseFlush();
    await server?.close();
  });

  it('answers 503 "full" at its hub session limit, and 200 again when a session ends', async () => {
    const config = { ...inProcessConfig(ADMIN, JWT), maxHubSessions: 1 };
    server = await startServer(config, log, async (timers) => {
      const ports = memoryPorts(config, timers, log);
      // holds the drain at its last step, so the test can ask a draining node
      const flush = ports.shadows.flush.bind(ports.shadows);
      ports.shadows.flush = async () => {
        await flushGate;
        return flush();
      };
      return ports;
    });
    admin = `http://127.0.0.1:${server.adminPort}`;
    await rulesWarmedUp(admin);
    expect(await api(admin, 'GET', '/readyz', undefined)).toMatchObject({ status: 200, body: { ready: true, reasons: [], degraded: [] } });

    const created = await api(`http://127.0.0.1:${server.port}`, 'POST', '/v1/admin/hubs', ADMIN, { hubId: 'full-1', homeId: 'home-full' });
    const hub = new HubClient({ url: `ws://127.0.0.1:${server.port}`, hubId: 'full-1', secret: created.body.secret });
    await hub.connect();
    const full = await api(admin, 'GET', '/readyz', undefined);
    expect(full).toMatchObject({ status: 503, body: { ready: false, reasons: ['full'], hubSockets: { sockets: 1 }, maxHubSessions: 1 } });

    await hub.close();
    expect(await eventually(async () => ((await api(admin, 'GET', '/readyz', undefined)).status === 200 ? true : undefined))).toBe(true);
  });

  it('answers 503 "draining" once the node starts to close', async () => {
    const closing = server.close();
    const r = await api(admin, 'GET', '/readyz', undefined);
    expect(r).toMatchObject({ status: 503, body: { ready: false, draining: true } });
    expect(r.body.reasons).toContain('draining');
    releaseFlush();
    await closing;
  });
});

describe('self-diagnosis of the embedded default on disk', () => {
  let server: RunningServer;
  let admin: string;

  afterAll(async () => {
    await server?.close();
  });

  it('requires the admin token', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'hubtier-diagnose-'));
    server = await startServer({ ...inProcessConfig(ADMIN, JWT), dataDir }, log);
    admin = `http://127.0.0.1:${server.adminPort}`;
    await rulesWarmedUp(admin);
    expect((await api(admin, 'GET', '/debug/diagnose', undefined)).status).toBe(401);
    expect((await api(admin, 'GET', '/debug/diagnose', 'not-the-admin-token')).status).toBe(401);
  });

  it('shows the checks that apply: no backends, the data directory', async () => {
    const r = await api(admin, 'GET', '/debug/diagnose', ADMIN);
    expect(r.status).toBe(200);
    const report = r.body as DiagnoseReport;
    expect(report.mode).toBe('embedded');
    const byName = new Map(report.checks.map((c) => [c.name, c]));
    // the memory check where the node (in this process) has a memory cgroup to read
    const cgroup = !('unavailable' in CgroupMemory.find());
    expect([...byName.keys()].sort()).toEqual(['data-dir', 'event-loop', 'file-descriptors', ...(cgroup ? ['memory'] : []), 'push-sender', 'rule-workers', 'uws-binding']);
    if (cgroup) expect(byName.get('memory')!.detail).toMatch(/MiB .*the kernel cannot reclaim/);
    for (const c of report.checks) {
      expect(['ok', 'warn', 'fail'], c.name).toContain(c.verdict);
      if (c.verdict !== 'ok') expect(c.hint.length, c.name).toBeGreaterThan(0);
    }
    expect(byName.get('data-dir')!.detail).toMatch(/GiB free/);
    expect(byName.get('rule-workers')!.verdict).toBe('ok');
    // no push webhook is configured: notifications only reach the log, which is worth a look
    expect(byName.get('push-sender')!.verdict).toBe('warn');
  });

  it('npm run doctor prints the checklist and exits 0 when nothing fails', async () => {
    const report = (await api(admin, 'GET', '/debug/diagnose', ADMIN)).body as DiagnoseReport;
    expect(report.checks.filter((c) => c.verdict === 'fail')).toEqual([]);
    const out = await run(process.execPath, [...scriptArgs('src/doctor-cli.ts'), '--url', admin], { cwd: ROOT, env: { ...process.env, ADMIN_TOKEN: ADMIN } });
    expect(out.stdout).toMatch(/^✓ data-dir: /m);
    expect(out.stdout).toMatch(/^! push-sender: .*\n {4}→ no push service is configured/m);
    expect(out.stdout).toMatch(/ ok, [1-9]\d* to look at, 0 failing\n$/);
  });

  it('npm run doctor exits 1 with a refused token, naming it', async () => {
    const err = await run(process.execPath, [...scriptArgs('src/doctor-cli.ts'), '--url', admin, '--token', 'wrong-token'], { cwd: ROOT }).then(
      () => null,
      (e: { code: number; stderr: string }) => e,
    );
    expect(err?.code).toBe(1);
    expect(err?.stderr).toMatch(/refused the token \(401\)/);
  });

  it('npm run doctor pointed at the public port says to use the admin port', async () => {
    const err = await run(process.execPath, [...scriptArgs('src/doctor-cli.ts'), '--url', `http://127.0.0.1:${server.port}`, '--token', ADMIN], { cwd: ROOT }).then(
      () => null,
      (e: { code: number; stderr: string }) => e,
    );
    expect(err?.code).toBe(1);
    expect(err?.stderr).toMatch(/answered 404.*\n.*admin port \(ADMIN_PORT, default 9090\), not its public PORT/s);
  });
});
