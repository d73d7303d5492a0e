import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Gauge, collectDefaultMetrics, type Registry } from 'prom-client';

/** prom-client's event-loop delay series: each read its histogram as is. */
const SERIES = [
  ['min', 'The minimum recorded event loop delay', (h: Delays) => h.min],
  ['max', 'The maximum recorded event loop delay', (h: Delays) => h.max],
  ['mean', 'The mean of the recorded event loop delays', (h: Delays) => h.mean],
  ['p50', 'The 50th percentile of the recorded event loop delays', (h: Delays) => h.percentile(50)],
  ['p90', 'The 90th percentile of the recorded event loop delays', (h: Delays) => h.percentile(90)],
  ['p99', 'The 99th percentile of the recorded event loop delays', (h: Delays) => h.percentile(99)],
  // a spread: the interval, the same in every sample, is not in it
  ['stddev', 'The standard deviation of the recorded event loop delays', (h: Delays) => h.stddev],
] as const;

/** ms between the event-loop sampler's runs */
const LOOP_SAMPLE_MS = 100;

/** Node's default series (prom-client's), with the corrections below. */
export function registerNodeDefaults(registry: Registry): void {
  // the loop-lag sampler is a native timer: at prom-client's default 10 ms it woke an idle node
  // 100 times a second, which summed over the dozens of nodes of one machine took a tenth of a core.
  // prom-client's own sampler feeds only the series replaced below: once every 10 s is plenty
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 10_000 });
  registerEventLoopDelay(registry, LOOP_SAMPLE_MS);
  // gauges named like counters (promtool refuses them); the per-type gauges without `_total` stay
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) registry.removeSingleMetric(name);
}

/** What the series read of Node's histogram (ns), as `monitorEventLoopDelay` gives it. */
export interface Delays {
  readonly min: number;
  readonly max: number;
  readonly mean: number;
  readonly stddev: number;
  percentile(p: number): number;
  reset(): void;
}

/**
 * `nodejs_eventloop_lag_{min,max,mean,p50,p90,p99,stddev}_seconds` as the delay past the sampling interval.
 * Node's histogram records the time between its timer's runs, the interval included: prom-client
 * reports that as is, so at 100 ms an idle node read 0.100 s and HubtierEventLoopDelay (> 0.1 s)
 * fired on every idle node. These replace prom-client's series of the same names (call after
 * `collectDefaultMetrics`); each scrape reads the delays since the previous one, as prom-client's did.
 */
export function registerEventLoopDelay(registry: Registry, intervalMs: number, delays: Delays = sampler(intervalMs)): void {
  const intervalNs = intervalMs * 1e6;
  // one scrape reads every series of one window: the first series' collect resets for the next
  let read = SERIES.map(() => 0);
  for (const [i, [name, help]] of SERIES.entries()) {
    const full = `nodejs_eventloop_lag_${name}_seconds`;
    registry.removeSingleMetric(full);
    new Gauge({
      name: full,
      help: `${help} past the ${intervalMs} ms sampling interval, in seconds.`,
      registers: [registry],
      collect() {
        if (i === 0) {
          // an empty histogram reads min as a huge number and the rest as NaN: nothing late then
          read = SERIES.map(([name, , v]) => {
            const ns = v(delays);
            if (!Number.isFinite(ns) || ns >= Number.MAX_SAFE_INTEGER) return 0;
            return Math.max(0, name === 'stddev' ? ns : ns - intervalNs) / 1e9;
          });
          delays.reset();
        }
        this.set(read[i]!);
      },
    });
  }
}

function sampler(intervalMs: number): Delays {
  const h = monitorEventLoopDelay({ resolution: intervalMs });
  h.enable();
  return h;
}
