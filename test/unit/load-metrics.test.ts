/** The load tool's latency histograms on their way from a worker to the parent. */
import { describe, expect, it, vi } from 'vitest';
import { addEncoded, newHistogram, recordMs } from '../../load/lib/histogram.js';
import { LOOP_PROBE_MS, WorkerMetrics } from '../../load/loadgen/metrics.js';

describe('WorkerMetrics.tick', () => {
  it('sends null for a histogram with nothing recorded, and each second only what was recorded since the last', () => {
    const m = new WorkerMetrics();
    for (const ms of [1, 2, 3]) m.record('command', ms);
    const first = m.tick();
    expect(first.interval.connect).toBeNull();
    expect(first.interval.reportToAck).toBeNull();
    const sum = newHistogram();
    addEncoded(sum, first.interval.command);
    expect(sum.totalCount).toBe(3);

    m.record('command', 40);
    const second = m.tick();
    const again = newHistogram();
    addEncoded(again, second.interval.command);
    expect(again.totalCount).toBe(1);
    expect(again.maxValue).toBeGreaterThanOrEqual(40_000);
    expect(m.tick().interval.command).toBeNull();
  });

  it('reset forgets the latencies named, keeps the others and the counters (the steady phase starts)', () => {
    const m = new WorkerMetrics();
    m.record('connect', 5);
    m.record('reportToAck', 900);
    m.counters.reportsSent = 7;
    m.reset(['reportToAck']);
    m.record('reportToAck', 2);
    const snap = m.snapshot();
    const count = (h: string | null) => {
      const out = newHistogram();
      addEncoded(out, h);
      return out.totalCount;
    };
    expect([count(snap.total.connect), count(snap.total.reportToAck)]).toEqual([1, 1]);
    expect(snap.counters.reportsSent).toBe(7);
    // without a list: every latency (a bench's next round)
    m.reset();
    expect([count(m.snapshot().total.connect), count(m.snapshot().total.reportToAck)]).toEqual([0, 0]);
    m.stop();
  });

  it('the parent adds what the workers sent: the same percentiles as one histogram of everything', () => {
    const workers = [new WorkerMetrics(), new WorkerMetrics()];
    const all = newHistogram();
    for (let i = 1; i <= 1_000; i++) {
      workers[i % 2]!.record('reportToApp', i / 10);
      recordMs(all, i / 10);
    }
    const sum = newHistogram();
    for (const w of workers) addEncoded(sum, w.tick().interval.reportToApp);
    addEncoded(sum, null);
    expect(sum.totalCount).toBe(1_000);
    for (const p of [50, 99, 99.9]) expect(sum.getValueAtPercentile(p)).toBe(all.getValueAtPercentile(p));
    expect(workers[0]!.snapshot().total.reportToApp).not.toBeNull();
  });

  it('records how late its own timer fired: a worker too busy to read its sockets shows in loopDelay', () => {
    vi.useFakeTimers();
    try {
      let t = 0;
      const m = new WorkerMetrics(() => t);
      t = LOOP_PROBE_MS;
      vi.advanceTimersByTime(LOOP_PROBE_MS);
      // due at twice the period; the loop was held 80 ms past it
      t = 2 * LOOP_PROBE_MS + 80;
      vi.advanceTimersByTime(LOOP_PROBE_MS);
      m.stop();
      vi.advanceTimersByTime(10 * LOOP_PROBE_MS);
      const h = newHistogram();
      addEncoded(h, m.tick().interval.loopDelay);
      expect(h.totalCount).toBe(2);
      // one on time, one 80 ms late (µs)
      expect(h.getValueAtPercentile(50)).toBeLessThan(1_000);
      expect(h.maxValue).toBeGreaterThan(79_000);
      expect(h.maxValue).toBeLessThan(81_000);
    } finally {
      vi.useRealTimers();
    }
  });
});
