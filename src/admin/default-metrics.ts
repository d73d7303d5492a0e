import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';
import { Gauge, collectDefaultMetrics, type Registry } from 'prom-client';

/** prom-client's event-loop delay series, read off a histogram of how late the loop ran (ns). */
const SERIES = [
  ['min', 'The minimum recorded event loop delay', (h: Delays) => h.min],
  ['max', 'The maximum recorded event loop delay', (h: Delays) => h.max],
  ['mean', 'The mean of the recorded event loop delays', (h: Delays) => h.mean],
  ['p50', 'The 50th percentile of the recorded event loop delays', (h: Delays) => h.percentile(50)],
  ['p90', 'The 90th percentile of the recorded event loop delays', (h: Delays) => h.percentile(90)],
  ['p99', 'The 99th percentile of the recorded event loop delays', (h: Delays) => h.percentile(99)],
  ['stddev', 'The standard deviation of the recorded event loop delays', (h: Delays) => h.stddev],
] as const;

/** ms between the event-loop sampler's runs */
export const LOOP_SAMPLE_MS = 100;
/** The series cover the last window and the current one: 30 to 60 s, whatever the scrape interval. */
export const LOOP_WINDOW_MS = 30_000;

/**
 * Node's default series (prom-client's), with the corrections below. A node passes the sampler its
 * own loop-lag timer feeds (one timer, not two); without one the series get a sampler of their own.
 */
export function registerNodeDefaults(registry: Registry, sampler = new LoopDelaySampler(LOOP_SAMPLE_MS, LOOP_WINDOW_MS)): void {
  // the loop-lag sampler is a native timer: at prom-client's default 10 ms it woke an idle node
  // 100 times a second, which summed over the dozens of nodes of one machine took a tenth of a core.
  // prom-client's own sampler feeds only the series replaced below: once every 10 s is plenty
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 10_000 });
  registerEventLoopDelay(registry, `past the ${sampler.intervalMs} ms sampling interval over the last ${sampler.windowMs / 1000}-${(2 * sampler.windowMs) / 1000} s`, () => sampler.read());
  // gauges named like counters (promtool refuses them); the per-type gauges without `_total` stay
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) registry.removeSingleMetric(name);
}

/** What the series read of a histogram of delays (ns), as Node's histograms give it. */
export interface Delays {
  readonly count: number;
  readonly min: number;
  readonly max: number;
  readonly mean: number;
  readonly stddev: number;
  percentile(p: number): number;
}

/**
 * `nodejs_eventloop_lag_{min,max,mean,p50,p90,p99,stddev}_seconds`, replacing prom-client's series
 * of the same names (call after `collectDefaultMetrics`). prom-client's read Node's
 * `monitorEventLoopDelay`, which records the time between its timer's runs, the interval included:
 * at 100 ms an idle node read 0.100 s, and HubtierEventLoopDelay (> 0.1 s) fired on every idle node.
 * And each read reset them: a curl of /metrics, or a second Prometheus, emptied the window the next
 * scrape read (review "alerts"). `read` answers the delays themselves, and reading changes nothing.
 */
export function registerEventLoopDelay(registry: Registry, span: string, read: () => Delays): void {
  // one scrape reads every series off one snapshot: the first series' collect takes it
  let values = SERIES.map(() => 0);
  for (const [i, [name, help]] of SERIES.entries()) {
    const full = `nodejs_eventloop_lag_${name}_seconds`;
    registry.removeSingleMetric(full);
    new Gauge({
      name: full,
      help: `${help}, ${span}, in seconds.`,
      registers: [registry],
      collect() {
        if (i === 0) {
          const delays = read();
          // an empty histogram reads min as a huge number and the rest as NaN: nothing late then
          values = SERIES.map(([, , v]) => (delays.count === 0 ? 0 : Math.max(0, v(delays)) / 1e9));
        }
        this.set(values[i]!);
      },
    });
  }
}

/**
 * How late the event loop runs: a timer every `intervalMs` records how much later than due it ran,
 * into two histograms turned every `windowMs`; a read merges the last window and the current one.
 * With `ownTimer` false another timer of that interval calls `record` (the node's LoopLag).
 */
export class LoopDelaySampler {
  private current: RecordableHistogram = createHistogram();
  private previous: RecordableHistogram = createHistogram();
  private last = performance.now();
  private turnedAt = this.last;
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(
    readonly intervalMs: number,
    readonly windowMs: number,
    ownTimer = true,
  ) {
    if (!ownTimer) return;
    this.timer = setInterval(() => this.sample(performance.now()), intervalMs);
    this.timer.unref();
  }

  /** One run of the timer at `now` (ms of performance.now()). */
  sample(now: number): void {
    const lateMs = now - this.last - this.intervalMs;
    this.last = now;
    this.record(lateMs, now);
  }

  /** A run `lateMs` late, measured by the timer that feeds this one (LoopLag) from its own previous run. */
  record(lateMs: number, now: number): void {
    // a histogram records integers ≥ 1: on time (or early: timers round) is 1 ns late
    this.current.record(Math.max(1, Math.round(lateMs * 1e6)));
    if (now - this.turnedAt < this.windowMs) return;
    this.turnedAt = now;
    this.previous.reset();
    [this.previous, this.current] = [this.current, this.previous];
  }

  read(): Delays {
    const both = createHistogram();
    both.add(this.previous);
    both.add(this.current);
    return both;
  }

  close(): void {
    clearInterval(this.timer);
  }
}
