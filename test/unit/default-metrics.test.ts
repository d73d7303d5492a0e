/** Node's default series as /metrics serves them: the event-loop delay past the sampling interval. */
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { registerEventLoopDelay, registerNodeDefaults, type Delays } from '../../src/admin/default-metrics.js';

const NAMES = ['min', 'max', 'mean', 'p50', 'p90', 'p99', 'stddev'].map((s) => `nodejs_eventloop_lag_${s}_seconds`);

async function scrape(registry: Registry): Promise<Record<string, number>> {
  const metrics = await registry.getMetricsAsJSON();
  return Object.fromEntries(metrics.map((m) => [m.name, m.values[0]?.value ?? NaN]));
}

/** A histogram of the times between the sampler's runs (ms), as Node's records them (ns). */
function fakeDelays(ms: number[]): Delays & { resets: number } {
  let samples = [...ms];
  const ns = () => samples.map((v) => v * 1e6).sort((a, b) => a - b);
  return {
    resets: 0,
    get min() { return samples.length > 0 ? ns()[0]! : 9223372036854775807; },
    get max() { return samples.length > 0 ? ns().at(-1)! : 0; },
    get mean() { return samples.length > 0 ? ns().reduce((a, b) => a + b, 0) / samples.length : NaN; },
    get stddev() { return samples.length > 0 ? Math.sqrt(ns().reduce((a, b) => a + (b - this.mean) ** 2, 0) / samples.length) : NaN; },
    percentile(p: number) { return samples.length > 0 ? ns()[Math.ceil((p / 100) * samples.length) - 1]! : NaN; },
    reset() { samples = []; this.resets++; },
  };
}

describe('event-loop delay series', () => {
  it('read the time past the sampling interval, each series from one window, reset at each scrape', async () => {
    const registry = new Registry();
    const delays = fakeDelays([100.5, 101, 102, 350]);
    registerEventLoopDelay(registry, 100, delays);
    const got = await scrape(registry);
    expect(got['nodejs_eventloop_lag_min_seconds']).toBeCloseTo(0.0005, 6);
    expect(got['nodejs_eventloop_lag_max_seconds']).toBeCloseTo(0.25, 6);
    expect(got['nodejs_eventloop_lag_p50_seconds']).toBeCloseTo(0.001, 6);
    expect(got['nodejs_eventloop_lag_p99_seconds']).toBeCloseTo(0.25, 6);
    expect(got['nodejs_eventloop_lag_mean_seconds']).toBeCloseTo((0.5 + 1 + 2 + 250) / 4 / 1000, 6);
    // the spread of the samples, unshifted: the interval is in every one of them
    expect(got['nodejs_eventloop_lag_stddev_seconds']).toBeCloseTo(Math.sqrt([100.5, 101, 102, 350].reduce((a, b) => a + (b - 163.375) ** 2, 0) / 4) / 1000, 6);
    expect(delays.resets).toBe(1);
    // nothing sampled since (an empty histogram: min huge, the rest NaN), and a run a little early: 0
    expect(Object.values(await scrape(registry))).toEqual(NAMES.map(() => 0));
    expect(delays.resets).toBe(2);
  });

  it("replace prom-client's series of the same names: an idle second reads well under the alert's 0.1 s, a blocked loop reads its block", async () => {
    const registry = new Registry();
    registerNodeDefaults(registry);
    for (const name of NAMES) expect(registry.getSingleMetric(name)).toBeDefined();
    await scrape(registry);
    await new Promise((r) => setTimeout(r, 1000));
    // prom-client's own read 0.100 here (the interval itself), so HubtierEventLoopDelay fired on idle nodes
    expect((await scrape(registry))['nodejs_eventloop_lag_mean_seconds']).toBeLessThan(0.09);
    // Node's histogram measures nothing up to its first run after a reset (each scrape resets it)
    await new Promise((r) => setTimeout(r, 150));
    const until = performance.now() + 300;
    while (performance.now() < until);
    await new Promise((r) => setTimeout(r, 250));
    expect((await scrape(registry))['nodejs_eventloop_lag_max_seconds']).toBeGreaterThanOrEqual(0.19);
  });
});
