import { emptyCounters, type Counters, type Histograms } from './ipc.js';
import { encodeHistogram, newHistogram, recordMs, type Histogram } from '../lib/histogram.js';

type Latency = keyof Histograms;

function histograms(): Record<Latency, Histogram> {
  return { connect: newHistogram(), command: newHistogram(), reportToApp: newHistogram(), reportToAck: newHistogram() };
}

function encoded(h: Record<Latency, Histogram>): Histograms {
  return { connect: encodeHistogram(h.connect), command: encodeHistogram(h.command), reportToApp: encodeHistogram(h.reportToApp), reportToAck: encodeHistogram(h.reportToAck) };
}

/**
 * What one worker process counts: the counters, and each latency twice, since the start (or the
 * last `reset`) and since the last `tick`, which the parent reads every second.
 */
export class WorkerMetrics {
  readonly counters: Counters = emptyCounters();
  private readonly total = histograms();
  private readonly interval = histograms();

  /** One more error of `code` (`connect:ECONNREFUSED`, `frame:busy`, ...). */
  bump(code: string): void {
    this.counters.errors[code] = (this.counters.errors[code] ?? 0) + 1;
  }

  record(which: Latency, ms: number): void {
    recordMs(this.total[which], ms);
    recordMs(this.interval[which], ms);
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

  /** Forgets the latencies so far (the counters go on). */
  reset(): void {
    for (const h of Object.values(this.total)) h.reset();
    for (const h of Object.values(this.interval)) h.reset();
  }
}
