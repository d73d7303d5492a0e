import { fork } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { growth, pssOf, rssOf } from '../../load/loadgen/process-usage.js';

/** The load tool's memory of local processes: resident, and resident with shared pages shared out. */
describe('process memory read from /proc', () => {
  it('counts pages two processes share once in their PSS sum, not twice as in their RSS sum', async () => {
    // a second node process: the node binary's code pages are shared with this one
    const child = fork('-e', ['setInterval(() => {}, 1000)'], { execArgv: [], stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 300));
      const pids = [process.pid, child.pid!];
      const rss = rssOf(pids);
      const pss = pssOf(pids);
      expect(pss).toBeGreaterThan(0);
      expect(pss).toBeLessThan(rss);
      // each alone: its share, never more than what it has resident
      for (const pid of pids) expect(pssOf([pid])).toBeLessThanOrEqual(rssOf([pid]));
    } finally {
      child.kill();
    }
  });

  it('reads 0 for a process that is gone', () => {
    expect(pssOf([2 ** 22 + 1])).toBe(0);
    expect(rssOf([2 ** 22 + 1])).toBe(0);
  });
});

describe('RSS growth of a run', () => {
  const MB = 2 ** 20;
  it('is the slope of the second half of the samples, in MB per hour', () => {
    // 20 samples a minute apart: flat for the first ten minutes (start-up), then +1 MB a minute
    const samples = Array.from({ length: 20 }, (_, i) => ({ t: i * 60_000, rssBytes: 100 * MB + Math.max(0, i - 9) * MB }));
    expect(growth(samples)).toBe(60);
  });

  it('leaves out the minute after the connects, when a node returns the burst\'s heap pages', () => {
    // 20 samples 30 s apart: the connects end at 4.5 min, RSS falls by 100 MB over the next minute
    // (V8 returning the burst's pages), then grows by 1 MB a minute
    const connectedAt = 270_000;
    const samples = Array.from({ length: 20 }, (_, i) => {
      const t = i * 30_000;
      const fall = t <= connectedAt ? 0 : Math.min(100, ((t - connectedAt) / 60_000) * 100);
      return { t, rssBytes: (300 - fall + Math.max(0, t - connectedAt) / 60_000) * MB };
    });
    expect(growth(samples, connectedAt)).toBe(60);
    // counted from the second half alone, the fall reads as memory returned
    expect(growth(samples)).toBeLessThan(0);
  });

  it('is not told for runs too short or too sparse to say', () => {
    expect(growth(Array.from({ length: 20 }, (_, i) => ({ t: i * 10_000, rssBytes: i * MB })))).toBeNull();
    expect(growth([{ t: 0, rssBytes: 0 }, { t: 600_000, rssBytes: MB }, { t: 1_200_000, rssBytes: 2 * MB }])).toBeNull();
  });
});
