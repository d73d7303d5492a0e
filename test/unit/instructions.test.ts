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
    expect(counts.get('floor')).toEqual({ all: 1005, main: 1000, events: { Ir: 1005 } });
    expect(counts.get('server')).toEqual({ all: 3450, main: 3000, events: { Ir: 3450 } });
  });

  it("takes a thread's totals when callgrind printed its summary negative (a new thread under a number whose old thread had counted more)", () => {
    const dir = mkdtempSync(join(tmpdir(), 'hubtier-cg-test-'));
    dirs.push(dir);
    dump(dir, 'cg.7.1-12', 'dump floor', 12, 62_485_748);
    // as callgrind 3.19 wrote it: 131,007 counted by the new thread 12, less the old one's 62,485,748
    dump(dir, 'cg.7.2-12', 'dump server', 12, 2 ** 64 - 62_354_741, 131_007);
    dump(dir, 'cg.7.2-01', 'dump server', 1, 1000, 5000);
    expect(readCounts(dir).get('server')).toEqual({ all: 132_007, main: 1000, events: { Ir: 132_007 } });
  });

  it('with the caches simulated, sums every event of every thread by its name, instructions still from Ir', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hubtier-cg-test-'));
    dirs.push(dir);
    const cached = (name: string, thread: number, values: number[]): void =>
      writeFileSync(join(dir, name), `# callgrind format\nversion: 1\nthread: ${thread}\ndesc: Trigger: dump server\n\npositions: line\nevents: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw\nsummary: ${values.join(' ')}\n\nfn=(1) x\n0 ${values.join(' ')}\n\ntotals: ${values.map((v) => v * 2).join(' ')}\n`);
    cached('cg.7.1-01', 1, [1000, 300, 200, 7, 20, 10, 1, 3, 2]);
    cached('cg.7.1-08', 8, [500, 100, 50, 3, 5, 5, 0, 1, 1]);
    expect(readCounts(dir).get('server')).toEqual({
      all: 1500,
      main: 1000,
      events: { Ir: 1500, Dr: 400, Dw: 250, I1mr: 10, D1mr: 25, D1mw: 15, ILmr: 1, DLmr: 4, DLmw: 3 },
    });
  });
});
