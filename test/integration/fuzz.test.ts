import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HubFrameGen, loadVectors } from '../../load/fuzz/hub-frames.js';
import { crashCause, reproducer } from '../../load/fuzz/report.js';
import { Rng } from '../../load/fuzz/rng.js';
import { runFuzz, type FuzzReport } from '../../load/fuzz/run.js';

/**
 * `npm run fuzz` at CI size against a real node process: a few thousand hub frames and a few
 * hundred app messages and HTTP requests with a fixed seed. The node must never exit and every
 * invariant must hold; a failure lists each crash and violation with its reproducer, and the
 * replay files are kept in the directory printed.
 */
describe('fuzz (CI size, real node process)', () => {
  it('generates the same inputs for the same seed', () => {
    const frames = (seed: string) => {
      const gen = new HubFrameGen(new Rng(seed).fork('hub/0'), loadVectors(), 'g0-');
      const out: string[] = [];
      for (let i = 0; i < 500; i++) {
        const f = gen.next({ max: 16_384, known: i % 7 });
        out.push(`${f.klass} ${typeof f.data === 'string' ? f.data : Buffer.from(f.data).toString('hex')}`);
      }
      return out;
    };
    const a = frames('same');
    expect(frames('same')).toEqual(a);
    expect(frames('other')).not.toEqual(a);
  });

  /** A CI-size run with a fixed seed in either mode; one crash per input class is enough to know it, the rest of the budget fuzzes the others. */
  async function fuzzAtCiSize(seed: string, budget: { hubFrames: number; appMessages: number; httpRequests: number }, cluster: boolean) {
    const outDir = mkdtempSync(join(tmpdir(), cluster ? 'hubtier-fuzz-cluster-' : 'hubtier-fuzz-'));
    const report = await runFuzz({ seed, ...budget, hubs: 8, window: 4, growShare: 0.05, serverEnv: {}, cluster, outDir, maxSeconds: 150, maxCrashes: 5, crashRepeat: 1 });
    return { report, outDir };
  }

  /** No crash, no violated invariant, the final check passed, the whole budget sent: a run cut short proves nothing. */
  function expectClean(report: FuzzReport, outDir: string, budget: { hubFrames: number; appMessages: number; httpRequests: number }, replayFlag: string): void {
    const crashes = report.crashes.map((c) => `[${c.phase}] ${crashCause(c.stderrTail)} after ${c.inFlight.map(reproducer).join(' | ')} (replay: npm run fuzz -- --replay ${c.file}${replayFlag})`);
    const violations = report.violations.map((g) => `[${g.invariant}] ${g.surface} ${g.klass} x${g.count}: ${g.detail}${g.tags.length ? ` with ${g.tags.join(', ')}` : ''}${g.examples[0]?.reproducer ? ` e.g. ${g.examples[0].reproducer}` : ''}`);
    expect.soft(crashes, `crashes (files in ${outDir})`).toEqual([]);
    expect.soft(violations, `invariant violations (files in ${outDir})`).toEqual([]);
    expect.soft(report.finalCheck).toEqual({ ok: true, detail: expect.any(String) });
    expect.soft(report.sent).toMatchObject({ hubFrames: budget.hubFrames, appMessages: budget.appMessages, httpRequests: budget.httpRequests });
    expect.soft(report.stoppedEarly).toBeNull();
  }

  it('the node survives hostile hub frames, app messages and HTTP requests, and keeps every invariant', async () => {
    const budget = { hubFrames: 2_500, appMessages: 300, httpRequests: 300 };
    const { report, outDir } = await fuzzAtCiSize('ci', budget, false);
    expectClean(report, outDir, budget, '');
  }, 240_000);

  it('a cluster-mode node (its own nats-server and redis-server) survives them too: hubs admitted after their upgrade, refusals as error, bye and close', async () => {
    // each upgrade waits on Redis: a smaller budget than the embedded run's
    const budget = { hubFrames: 1_500, appMessages: 150, httpRequests: 150 };
    const { report, outDir } = await fuzzAtCiSize('ci-cluster', budget, true);
    expect(report.target.cluster).toBe(true);
    expectClean(report, outDir, budget, ' --cluster');
    // the path fuzzed is the after-upgrade one: forged upgrades got their 101 and were refused after it
    const refusedAfter = Object.entries(report.hub.upgrades).filter(([k]) => k.startsWith('101 then '));
    expect(refusedAfter.length, JSON.stringify(report.hub.upgrades)).toBeGreaterThan(0);
  }, 240_000);
});
