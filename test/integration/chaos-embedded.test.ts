/**
 * `npm run chaos -- --mode embedded` at CI size: one node of the embedded default killed twice
 * with `kill -9` and once stopped with SIGTERM under reports and commands, restarted each time on
 * its data directory, with a share of the hubs dropping their sockets between faults so faults find
 * hubs on later sessions too. Nothing acknowledged may be lost, and every hub must end online with
 * every report acknowledged: a restarted node that takes reports without storing them (as it did
 * for reconnected hubs until 2026-12-04) fails here.
 */
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../../load/harness/index.js';
import type { RunReport } from '../../load/chaos/summary.js';

const HUBS = 60;

function runChaos(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'load/chaos.ts', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('chaos, embedded default (real node process restarted on its data directory)', () => {
  it('loses no acknowledged report through kill -9 and SIGTERM restarts, and keeps acknowledging hubs that had reconnected', async () => {
    const run = await runChaos(['--mode', 'embedded', '--hubs', String(HUBS), '--kills', '2', '--gap', '2', '--blip', '0.3', '--seed', '7', '--max-time', '240', '--json']);
    // the table and the progress lines are on stderr: shown when an assertion fails
    expect(run.code, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout) as RunReport;
    expect(report.failures).toEqual([]);
    expect(report.events.map((e) => [e.kind, e.hubsOnNode, e.allBack, e.ledger.checked])).toEqual([
      ['kill', HUBS, true, HUBS],
      ['kill', HUBS, true, HUBS],
      ['rolling', HUBS, true, HUBS],
    ]);
    // hubs dropped before each fault came back on a new session (a later epoch) and were checked
    expect(report.events.every((e) => e.blipped === Math.round(HUBS * 0.3))).toBe(true);
    expect(report.blips.checked).toBe(report.blips.sessionsEnded);
    expect(report.blips.sessionsEnded).toBeGreaterThanOrEqual(3 * Math.round(HUBS * 0.3));
    expect(report.totals.lostAckedReports).toBe(0);
    expect(report.end).toMatchObject({ notIdle: 0, stalled: 0, checked: HUBS, lost: 0 });
    expect(report.totals.reportsSent).toBeGreaterThan(HUBS * 4);
    expect(report.commands.ok).toBeGreaterThan(0);
  }, 300_000);
});
