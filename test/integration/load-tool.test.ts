/**
 * The load tool (`npm run load`) end to end against a real embedded node, small: every hub
 * provisioned and connected, reports and commands answered, no error, and the report's latencies
 * split at the steady phase, which begins once the hubs' first reports (their fill frames) are
 * acknowledged: those are in `latencyBeforeSteady`, not in the figures an SLO judges, while the
 * connect latencies stay whole.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.js';

const run = promisify(execFile);
const HUBS = 40;

describe('the load tool against one node', { timeout: 120_000 }, () => {
  let node: ServerProcess;
  beforeAll(async () => {
    node = await startServerProcess();
  }, 60_000);
  afterAll(async () => {
    await node?.stop();
  });

  it('connects, reports and commands with no error, and reports the steady phase apart from what came before', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'load-report-')), 'report.json');
    const args = ['--import', 'tsx', 'load/loadgen.ts', '--url', node.wsUrl, '--admin-token', node.adminToken, '--hubs', String(HUBS), '--apps', '4', '--devices', '4',
      '--scenario', 'commands', '--command-rate', '10', '--report-every', '1', '--duration', '4', '--ramp', '0', '--slo', 'errors=0', '--report', file];
    const out = await run(process.execPath, args, { maxBuffer: 16 * 1024 * 1024 });
    expect(out.stdout).toContain('latency (ms) before the steady phase');
    const report = JSON.parse(readFileSync(file, 'utf8'));
    expect(report.passed).toBe(true);
    expect(report.connect).toMatchObject({ ok: HUBS, failed: 0 });
    expect(report.errors.other).toBe(0);
    // connect latencies are recorded before the steady phase and kept
    expect(report.latency.connect.count).toBe(HUBS);
    // the hubs' first reports (their fill frames), acknowledged before the steady phase began:
    // counted before it, and not again in its figures
    const before = report.latencyBeforeSteady;
    expect(before.reportToAck.count).toBe(HUBS);
    expect(report.latency.reportToAck.count).toBeGreaterThan(0);
    expect(report.latency.reportToAck.count).toBeLessThanOrEqual(report.counters.reportsSent - before.reportToAck.count);
    expect(report.latency.command.count).toBeGreaterThan(0);
    expect(report.latency.reportToApp.count).toBeGreaterThan(0);
  });
});
