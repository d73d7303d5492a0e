/**
 * TIER_PARALLEL_GC: the flags it sets, and their effect on V8 itself. A child process applies the
 * setting at start, as src/main.ts does, and makes garbage; V8's own trace of each scavenge
 * (`--trace-gc-nvp`) says how long helper threads worked in it (`background.scavenge.parallel`).
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { applyParallelGc, PARALLEL_GC_FLAGS } from '../../src/compose/parallel-gc.js';

const ROOT = new URL('../../', import.meta.url).pathname;

/** The helpers' ms of each scavenge after a child applied `parallel` (pipes to stdout are synchronous: its marker comes in order). */
function helperMsPerScavenge(parallel: boolean): number[] {
  const script = `
    const { applyParallelGc } = await import('./src/compose/parallel-gc.ts');
    applyParallelGc(${String(parallel)});
    process.stdout.write('APPLIED\\n');
    const keep = [];
    for (let i = 0; i < 6e6; i++) { keep.push({ i }); if (keep.length > 200000) keep.length = 0; }`;
  const out = spawnSync(process.execPath, ['--trace-gc-nvp', '--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8' });
  expect(out.status, out.stderr).toBe(0);
  // the scavenges while tsx loaded came before the setting
  expect(out.stdout).toContain('APPLIED');
  return out.stdout
    .slice(out.stdout.indexOf('APPLIED'))
    .split('\n')
    .filter((l) => l.includes('gc=s '))
    .map((l) => Number(/ background\.scavenge\.parallel=([\d.]+)/.exec(l)![1]));
}

describe('TIER_PARALLEL_GC', () => {
  it('false sets the three helper flags off; true (the default) sets none', () => {
    const set: string[] = [];
    expect(applyParallelGc(true, (f) => set.push(f))).toBe(false);
    expect(set).toEqual([]);
    expect(applyParallelGc(false, (f) => set.push(f))).toBe(true);
    expect(set).toEqual(PARALLEL_GC_FLAGS.map((f) => `--no-${f}`));
  });

  it("V8 scavenges without helper threads once it is applied at start, and with them otherwise", () => {
    const on = helperMsPerScavenge(true);
    const off = helperMsPerScavenge(false);
    // many scavenges: helpers that found no core in one still work in another
    expect(on.length).toBeGreaterThan(10);
    expect(off.length).toBeGreaterThan(10);
    expect(on.some((ms) => ms > 0)).toBe(true);
    // the first may have been under way (or its job posted) as the flags changed: once seen in CI
    expect(off.slice(1).every((ms) => ms === 0)).toBe(true);
  });
});
