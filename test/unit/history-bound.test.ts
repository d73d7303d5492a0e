import { describe, expect, it } from 'vitest';
import { pooledHistoryRatio, pooledP99Ms } from '../../bench/lib/history-bound.js';
import { newHistogram, recordMs, type Histogram } from '../../load/lib/histogram.js';

/** A round of 1,000 latencies: `slow` of them at `tailMs`, the rest at 1 ms. */
const round = (slow: number, tailMs: number): Histogram => {
  const h = newHistogram();
  for (let i = 0; i < 1000; i++) recordMs(h, i < slow ? tailMs : 1);
  return h;
};

describe('the history bound over pooled rounds', () => {
  it('pooledP99Ms: the p99 of all samples together, not of any one round', () => {
    // alone, each round's p99 is 1 ms (5 slow of 1,000) or 20 ms (30 slow); together 35 of 3,000 are slow
    const rounds = [round(5, 20), round(5, 20), round(30, 20)];
    // (HDR buckets answer their highest value: 20 ms reads 20.015)
    expect(rounds.map((r) => Math.round(pooledP99Ms([r])))).toEqual([1, 1, 20]);
    expect(Math.round(pooledP99Ms(rounds))).toBe(20);
    expect(Math.round(pooledP99Ms([round(5, 20), round(5, 20), round(15, 20)]))).toBe(1);
    expect(pooledP99Ms([])).toBe(0);
  });

  it('pooledHistoryRatio: on against off pooled, the interval around it, the same for the same seed', () => {
    const on = [round(20, 6), round(20, 6), round(20, 6)];
    const off = [round(20, 5), round(20, 5), round(20, 5)];
    const r = pooledHistoryRatio(on, off, 200);
    expect(r).toMatchObject({ ratio: 1.2, low: 1.2, high: 1.2, resamples: 200 });
    expect([Math.round(r.onP99Ms), Math.round(r.offP99Ms)]).toEqual([6, 5]);
    expect(pooledHistoryRatio(on, off, 200)).toEqual(r);
  });

  it('pooledHistoryRatio: rounds that disagree widen the interval; pairs stay pairs', () => {
    // round 0 is slow on both nodes (the machine's drift): paired, every resample reads 1.0
    const drift = pooledHistoryRatio([round(20, 50), round(20, 5)], [round(20, 50), round(20, 5)], 500);
    expect([drift.low, drift.high]).toEqual([1, 1]);
    // one round where history on was slow and one where it was not: the interval spans both
    const split = pooledHistoryRatio([round(20, 10), round(20, 5)], [round(20, 5), round(20, 5)], 500);
    expect(split.low).toBe(1);
    expect(split.high).toBe(2);
  });

  it('pooledHistoryRatio: refuses rounds that do not pair up', () => {
    expect(() => pooledHistoryRatio([round(1, 1)], [])).toThrow(/pair up/);
  });
});
