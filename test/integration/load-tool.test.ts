/**
 * The load tool (`npm run load`) end to end against a real embedded node, small: every hub
 * provisioned and connected, reports and commands answered, no error, and the report's latencies
 * split at the steady phase, which begins once the hubs' first reports (their fill frames) are
 * acknowledged: those are in `latencyBeforeSteady`, not in the figures an SLO judges, while the
 * connect latencies stay whole. Then the node frozen (SIGSTOP) through the steady phase: what it
 * never answered is counted as errors and as latencies of its age, and the run fails its SLOs.
 */
import { execFile, spawn } from 'node:child_process';
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
    // everything sent was answered, acknowledged and delivered by the end of the drain
    const c = report.counters;
    expect(c.commandsOk).toBe(c.commandsSent);
    expect(c.reportAcks).toBe(c.reportsSent);
    expect([c.commandsUnanswered, c.reportsUnacknowledged, c.reportsUndelivered]).toEqual([0, 0, 0]);
    expect(c.reportsDelivered).toBeGreaterThan(0);
    expect(out.stdout).toContain('commands sent / ok / failed / unanswered');
  });

  it('counts what a frozen node never answered as errors and as latencies of its age, and fails the run', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'load-report-')), 'report.json');
    const args = ['--import', 'tsx', 'load/loadgen.ts', '--url', node.wsUrl, '--admin-token', node.adminToken, '--hubs', '20', '--apps', '2', '--devices', '2',
      '--scenario', 'commands', '--command-rate', '20', '--report-every', '1', '--duration', '2', '--drain', '1', '--ramp', '0', '--slo', 'errors=0,command.p99=500', '--report', file];
    const load = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    let frozen = false;
    try {
      const exitCode = await new Promise<number | null>((resolve) => {
        load.stdout.on('data', (chunk: Buffer) => {
          stdout += chunk.toString();
          // the first progress line of the steady phase: the node stops answering from here on
          if (!frozen && /s commands\s+\]/.test(stdout)) {
            frozen = true;
            process.kill(node.pid, 'SIGSTOP');
          }
        });
        load.on('exit', resolve);
      });
      expect(frozen).toBe(true);
      expect(exitCode).toBe(1);
    } finally {
      if (frozen) process.kill(node.pid, 'SIGCONT');
    }
    const report = JSON.parse(readFileSync(file, 'utf8'));
    const c = report.counters;
    expect(report.passed).toBe(false);
    expect(c.commandsUnanswered).toBeGreaterThan(0);
    expect(c.commandsSent).toBe(c.commandsOk + c.commandsFailed + c.commandsUnanswered);
    expect(c.reportsUnacknowledged).toBeGreaterThan(0);
    expect(c.reportsUndelivered).toBeGreaterThan(0);
    expect(report.errors.byCode).toMatchObject({ 'command:unanswered': c.commandsUnanswered, 'report:unacknowledged': c.reportsUnacknowledged, 'report:undelivered': c.reportsUndelivered });
    expect(report.slo.find((s: { key: string }) => s.key === 'errors').ok).toBe(false);
    // each unanswered command is a latency at least the drain's wait (1 s): most of the run's commands
    expect(report.latency.command.count).toBe(c.commandsOk + c.commandsUnanswered);
    expect(report.latency.command.p99Ms).toBeGreaterThanOrEqual(1_000);
    expect(report.slo.find((s: { key: string }) => s.key === 'command.p99').ok).toBe(false);
    expect(stdout).toMatch(new RegExp(`commands sent / ok / failed / unanswered\\s+${c.commandsSent} / ${c.commandsOk} / ${c.commandsFailed} / ${c.commandsUnanswered}`));
  });
});
