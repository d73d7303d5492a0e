/** Node's default series as /metrics serves them: the event-loop delay past the sampling interval, read without a reset. */
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { LoopDelaySampler, registerEventLoopDelay, registerNodeDefaults } from '../../src/admin/default-metrics.js';
import { LoopLag } from '../../src/transport/loop-lag.js';

const NAMES = ['min', 'max', 'mean', 'p50', 'p90', 'p99', 'stddev'].map((s) => `nodejs_eventloop_lag_${s}_seconds`);

async function scrape(registry: Registry): Promise<Record<string, number>> {
  const metrics = await registry.getMetricsAsJSON();
  return Object.fromEntries(metrics.map((m) => [m.name, m.values[0]?.value ?? NaN]));
}

describe('LoopDelaySampler', () => {
  it('records how much later than due each run came, over the last window and the current one', () => {
    const s = new LoopDelaySampler(100, 1_000);
    s.close(); // driven by hand below
    const start = performance.now();
    // on time, 1 ms late, 250 ms late (a stall), on time
    let t = start;
    for (const late of [0, 1, 250, 0]) s.sample((t += 100 + late));
    const d = s.read();
    expect(d.count).toBe(4);
    expect(d.max / 1e6).toBeCloseTo(250, 0);
    expect(d.percentile(50) / 1e6).toBeLessThan(2);
    // a window later the stall is still read (the last window); two windows later it is gone
    for (let i = 0; i < 11; i++) s.sample((t += 100));
    expect(s.read().max / 1e6).toBeCloseTo(250, 0);
    for (let i = 0; i < 11; i++) s.sample((t += 100));
    expect(s.read().max / 1e6).toBeLessThan(1);
  });
});

describe('event-loop delay series', () => {
  it('read the delays as they are, each series from one snapshot, and a read resets nothing (a curl emptied the next scrape; review alerts)', async () => {
    const registry = new Registry();
    const s = new LoopDelaySampler(100, 60_000);
    s.close();
    let t = performance.now();
    for (const late of [0.5, 1, 2, 250]) s.sample((t += 100 + late));
    registerEventLoopDelay(registry, 'test', () => s.read());
    const got = await scrape(registry);
    expect(got['nodejs_eventloop_lag_max_seconds']).toBeCloseTo(0.25, 3);
    expect(got['nodejs_eventloop_lag_p99_seconds']).toBeCloseTo(0.25, 3);
    expect(got['nodejs_eventloop_lag_p50_seconds']).toBeLessThan(0.003);
    expect(got['nodejs_eventloop_lag_mean_seconds']).toBeCloseTo((0.5 + 1 + 2 + 250) / 4 / 1000, 3);
    expect(got['nodejs_eventloop_lag_stddev_seconds']).toBeGreaterThan(0.1);
    expect(await scrape(registry)).toEqual(got);
    // nothing sampled: 0, not NaN or a huge min
    const empty = new Registry();
    registerEventLoopDelay(empty, 'test', () => new LoopDelaySampler(100, 1_000).read());
    expect(Object.values(await scrape(empty))).toEqual(NAMES.map(() => 0));
  });

  it("replace prom-client's series of the same names: an idle second reads well under the alert's 0.1 s, a blocked loop reads its block", async () => {
    const registry = new Registry();
    registerNodeDefaults(registry);
    for (const name of NAMES) expect(registry.getSingleMetric(name)).toBeDefined();
    await new Promise((r) => setTimeout(r, 1000));
    // prom-client's own read 0.100 here (the interval itself), so HubtierEventLoopDelay fired on idle nodes
    expect((await scrape(registry))['nodejs_eventloop_lag_mean_seconds']).toBeLessThan(0.09);
    const until = performance.now() + 300;
    while (performance.now() < until);
    await new Promise((r) => setTimeout(r, 250));
    expect((await scrape(registry))['nodejs_eventloop_lag_max_seconds']).toBeGreaterThanOrEqual(0.19);
  });

  it("on a node, ride the LoopLag's timer (one timer, not two): the stall admission sees is the one /metrics serves", async () => {
    const registry = new Registry();
    const delays = new LoopDelaySampler(20, 60_000, false);
    // a node's start between the two (ports, a wait for backends) is no stall of the loop (review diff9)
    const started = performance.now() + 400;
    while (performance.now() < started);
    const lag = new LoopLag(20, 500, (lateMs, now) => delays.record(lateMs, now));
    registerNodeDefaults(registry, delays);
    await new Promise((r) => setTimeout(r, 100));
    const until = performance.now() + 200;
    while (performance.now() < until);
    await new Promise((r) => setTimeout(r, 60));
    lag.close();
    expect(lag.ms).toBeGreaterThanOrEqual(150);
    expect(delays.read().count).toBeGreaterThanOrEqual(3);
    expect((await scrape(registry))['nodejs_eventloop_lag_max_seconds']).toBeCloseTo(lag.ms / 1000, 2);
  });
});
