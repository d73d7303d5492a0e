import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readCounts } from '../../bench/lib/instructions.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A callgrind output file's header, as `--separate-threads=yes` writes one per thread and dump. */
function dump(dir: string, name: string, desc: string, thread: number, summary: number, totals = summary): void {
  writeFileSync(join(dir, name), `# callgrind format\nversion: 1\ncreator: callgrind-3.19.0\npid: 7\ncmd: node\npart: 1\nthread: ${thread}\n\ndesc: I1 cache: \ndesc: Timerange: Basic block 1 - 2\ndesc: Trigger: ${desc}\n\npositions: line\nevents: Ir\nsummary: ${summary}\n\nfn=(1) x\n0 ${summary}\n\ntotals: ${totals}\n`);
}

describe("readCounts (bench/lib/instructions.ts): callgrind's dumps by phase", () => {
  it('sums every thread of a phase (each dump\'s own cost, not the thread\'s running total), tells the main thread (thread 1) apart, and skips dumps that are not a phase', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hubtier-cg-test-'));
    dirs.push(dir);
    dump(dir, 'cg.7.1-01', 'dump floor', 1, 1000);
    dump(dir, 'cg.7.1-02', 'dump floor', 2, 5);
    // a later dump's `totals` holds the earlier ones too (as callgrind writes it): its `summary` is the phase's
    dump(dir, 'cg.7.2-01', 'dump server', 1, 3000, 4000);
    dump(dir, 'cg.7.2-08', 'dump server', 8, 400);
    dump(dir, 'cg.7.2-11', 'dump server', 11, 50);
    dump(dir, 'cg.7-01', 'Program termination', 1, 99_999);
    const counts = readCounts(dir);
    expect([...counts.keys()].sort()).toEqual(['floor', 'server']);
    expect(counts.get('floor')).toEqual({ all: 1005, main: 1000 });
    expect(counts.get('server')).toEqual({ all: 3450, main: 3000 });
  });
});
