/**
 * Issue 11's bound (history may cost at most 20 % of report → app p99), judged over every round
 * at once: the p99 of all rounds' latencies pooled, history on against off, with a bootstrap
 * interval over the rounds. A 5-second round's ratio alone ranges 0.45–2.9 on this machine
 * (BENCHMARKS.md), so neither one round nor the median of a few can place a 20 % bound; the
 * pooled p99 uses every sample, and the interval says how far the rounds' spread leaves it open.
 */
import { Random } from '../../load/chaos/random.js';
import { newHistogram, type Histogram } from '../../load/lib/histogram.js';
import { round } from './fleet-runs.js';

/** The pooled on/off p99 ratio and its bootstrap interval (5th and 95th percentiles). */
export interface PooledRatio {
  onP99Ms: number;
  offP99Ms: number;
  ratio: number;
  low: number;
  high: number;
  resamples: number;
}

/** p99 in ms of several histograms (µs) taken together. */
export function pooledP99Ms(hs: readonly Histogram[]): number {
  const all = newHistogram();
  for (const h of hs) all.add(h);
  return all.totalCount === 0 ? 0 : all.getValueAtPercentile(99) / 1000;
}

/**
 * Rounds are resampled in pairs (on and off of the same round ran back to back, under the same
 * drift of the machine). Seeded, so one run's figures can be computed again from its histograms.
 */
export function pooledHistoryRatio(on: readonly Histogram[], off: readonly Histogram[], resamples = 2000, seed = 1): PooledRatio {
  if (on.length !== off.length || on.length === 0) throw new Error(`rounds on (${on.length}) and off (${off.length}) must pair up`);
  const onP99Ms = pooledP99Ms(on);
  const offP99Ms = pooledP99Ms(off);
  const random = new Random(seed);
  const ratios: number[] = [];
  for (let b = 0; b < resamples; b++) {
    const picks = on.map(() => random.int(on.length));
    ratios.push(pooledP99Ms(picks.map((i) => on[i]!)) / Math.max(0.001, pooledP99Ms(picks.map((i) => off[i]!))));
  }
  ratios.sort((a, b) => a - b);
  const at = (q: number) => ratios[Math.min(ratios.length - 1, Math.floor(q * ratios.length))] ?? NaN;
  return { onP99Ms: round(onP99Ms, 3), offP99Ms: round(offP99Ms, 3), ratio: round(onP99Ms / Math.max(0.001, offP99Ms), 3), low: round(at(0.05), 3), high: round(at(0.95), 3), resamples };
}
