import { LATENCIES, emptyCounters, type Counters, type Histograms, type Latency } from './ipc.js';
import { encodeHistogram, newHistogram, recordMs, type Histogram } from '../lib/histogram.js';

/** One empty histogram per latency. */
export function latencyHistograms(): Record<Latency, Histogram> {
  return Object.fromEntries(LATENCIES.map((k) => [k, newHistogram()])) as Record<Latency, Histogram>;
}

function encoded(h: Record<Latency, Histogram>): Histograms {
  return Object.fromEntries(LATENCIES.map((k) => [k, encodeHistogram(h[k])])) as Histograms;
}

/**
 * The period of the timer whose lateness is the worker's loop delay: a stall delays it whenever
 * it spans a due time, and 10 wake-ups a second cost a worker little (a wake-up costs these VMs
 * 0.1–0.3 ms of CPU; the half-million run has 28 workers)
 */
export const LOOP_PROBE_MS = 100;

/**
 * What one worker process counts: the counters, and each latency twice, since the start (or the
 * last `reset`) and since the last `tick`, which the parent reads every second.
 */
export class WorkerMetrics {
  readonly counters: Counters = emptyCounters();
  private readonly total = latencyHistograms();
  private readonly interval = latencyHistograms();
  private readonly probe: NodeJS.Timeout;

  constructor(now: () => number = () => performance.now()) {
    // lateness of a timer, not the clock's gaps: a tick that fired late is measured from when it was due
    let due = now() + LOOP_PROBE_MS;
    this.probe = setInterval(() => {
      const t = now();
      this.record('loopDelay', Math.max(0, t - due));
      due = t + LOOP_PROBE_MS;
    }, LOOP_PROBE_MS).unref();
  }

  /** `n` more errors of `code` (`connect:ECONNREFUSED`, `frame:busy`, ...); none for 0. */
  bump(code: string, n = 1): void {
    if (n > 0) this.counters.errors[code] = (this.counters.errors[code] ?? 0) + n;
  }

  /** `count` samples of `ms`. */
  record(which: Latency, ms: number, count = 1): void {
    recordMs(this.total[which], ms, count);
    recordMs(this.interval[which], ms, count);
  }

  /** The counters and the interval's histograms; the interval starts again (the same histograms, emptied). */
  tick(): { counters: Counters; interval: Histograms } {
    const out = { counters: structuredClone(this.counters), interval: encoded(this.interval) };
    for (const h of Object.values(this.interval)) h.reset();
    return out;
  }

  snapshot(): { counters: Counters; total: Histograms } {
    return { counters: structuredClone(this.counters), total: encoded(this.total) };
  }

  /**
   * Forgets these latencies so far (the counters, the others and the progress line's interval go
   * on); without a list, every latency, the interval's too (a bench's next round).
   */
  reset(latencies?: readonly Latency[]): void {
    if (latencies === undefined) for (const h of Object.values(this.interval)) h.reset();
    for (const k of latencies ?? LATENCIES) this.total[k].reset();
  }

  /** Stops the loop probe. */
  stop(): void {
    clearInterval(this.probe);
  }
}
