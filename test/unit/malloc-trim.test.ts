import { execFile } from 'node:child_process';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ROOT } from '../../load/harness/index.js';
import { MallocTrimmer } from '../../src/compose/malloc-trim.js';

const MB = 1024 * 1024;

/** A trimmer over a resident size the test sets, and the trims it made. */
function fixture(startMb: number, followUps = 0) {
  let rss = startMb * MB;
  let afterTrim = 0;
  const trims: Array<[number, number]> = [];
  const trimmer = new MallocTrimmer({
    trim: () => {
      rss = afterTrim * MB;
      return 1;
    },
    rss: () => rss,
    intervalMs: 1_000,
    growthBytes: 16 * MB,
    followUps,
    onTrim: (before, after) => trims.push([before / MB, after / MB]),
  });
  trimmer.start();
  return {
    trimmer,
    trims,
    at(mb: number, trimsTo = mb) {
      rss = mb * MB;
      afterTrim = trimsTo;
    },
  };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('MallocTrimmer', () => {
  it('trims once the resident size stands the growth above its lowest since the last trim, and measures from what the trim left', () => {
    const f = fixture(100);
    f.at(115);
    expect(f.trimmer.look()).toBe(false);
    // a lower reading lowers the mark: 90 + 16 is the next threshold
    f.at(90);
    expect(f.trimmer.look()).toBe(false);
    f.at(106, 95);
    expect(f.trimmer.look()).toBe(true);
    expect(f.trims).toEqual([[106, 95]]);
    // the next burst counts from 95, not from 90
    f.at(110);
    expect(f.trimmer.look()).toBe(false);
    f.at(111, 96);
    expect(f.trimmer.look()).toBe(true);
    expect(f.trims).toEqual([[106, 95], [111, 96]]);
    f.trimmer.stop();
  });

  it('trims again at the looks after a trim made for growth, then stops while the size holds still', () => {
    const f = fixture(100, 2);
    f.at(130, 110);
    expect(f.trimmer.look()).toBe(true);
    // what the burst frees after the first trim: the follow-ups return it whatever the growth
    f.at(112, 104);
    expect(f.trimmer.look()).toBe(true);
    f.at(104, 103);
    expect(f.trimmer.look()).toBe(true);
    f.at(105);
    expect(f.trimmer.look()).toBe(false);
    expect(f.trims).toEqual([[130, 110], [112, 104], [104, 103]]);
    // the mark is the lowest the follow-ups left: 103 + 16
    f.at(118);
    expect(f.trimmer.look()).toBe(false);
    f.at(119, 100);
    expect(f.trimmer.look()).toBe(true);
    f.trimmer.stop();
  });

  it('looks every interval until stopped', () => {
    vi.useFakeTimers();
    const f = fixture(100);
    f.at(200, 120);
    vi.advanceTimersByTime(999);
    expect(f.trims).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(f.trims).toEqual([[200, 120]]);
    f.trimmer.stop();
    f.at(300, 100);
    vi.advanceTimersByTime(10_000);
    expect(f.trims).toEqual([[200, 120]]);
  });

  it('a resident size that cannot be read (EMFILE at the open-file limit) skips the look, told to onError: the timer never throws', () => {
    vi.useFakeTimers();
    const emfile = Object.assign(new Error('EMFILE: too many open files, uv_resident_set_memory'), { code: 'EMFILE' });
    let failing = true;
    let rss = 100 * MB;
    const errors: unknown[] = [];
    const trims: number[] = [];
    const trimmer = new MallocTrimmer({
      trim: () => {
        trims.push(rss);
        return 1;
      },
      rss: () => {
        if (failing) throw emfile;
        return rss;
      },
      intervalMs: 1_000,
      growthBytes: 16 * MB,
      followUps: 0,
      onError: (err) => errors.push(err),
    });
    // at start too: the node may start with its files nearly used up
    trimmer.start();
    expect(trimmer.look()).toBe(false);
    // a throw here would be uncaught in the timer and end the process
    vi.advanceTimersByTime(3_000);
    expect(errors).toHaveLength(5);
    expect(errors[0]).toBe(emfile);
    // once files are back it looks again as before
    failing = false;
    expect(trimmer.look()).toBe(false);
    rss = 130 * MB;
    expect(trimmer.look()).toBe(true);
    expect(trims).toEqual([130 * MB]);
    trimmer.stop();
  });

  it.skipIf(process.platform !== 'linux')("gives glibc's free pages back: 70 MB of native blocks freed under live ones stay resident until trimmed", async () => {
    // a child of its own with --expose-gc: 20,000 malloc'd 4 KB blocks, every tenth kept, the rest freed
    const script = `
      import { loadMallocTrim } from ${JSON.stringify(`${ROOT}/src/compose/malloc-trim.ts`)};
      const loaded = loadMallocTrim();
      if ('unavailable' in loaded) { console.log(JSON.stringify(loaded)); process.exit(0); }
      const keep = [];
      let freed = [];
      for (let i = 0; i < 20000; i++) {
        const b = Buffer.allocUnsafeSlow(4096);
        b.fill(1);
        (i % 10 === 0 ? keep : freed).push(b);
      }
      const freedBytes = freed.length * 4096;
      freed = [];
      gc(); gc();
      await new Promise((r) => setTimeout(r, 200));
      const before = process.memoryUsage.rss();
      loaded.trim(0);
      const after = process.memoryUsage.rss();
      console.log(JSON.stringify({ freedBytes, before, after, kept: keep.length }));
    `;
    const out = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, ['--expose-gc', '--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT }, (err, stdout) => (err ? reject(err) : resolve(stdout))),
    );
    const r = JSON.parse(out) as { unavailable?: string; freedBytes: number; before: number; after: number };
    expect(r.unavailable).toBeUndefined();
    // after the collection and a wait glibc still held them; the trim gave them back
    expect(r.before - r.after).toBeGreaterThan(r.freedBytes / 2);
  });
});
