import { describe, expect, it } from 'vitest';
import { errorCount, historyPairs, medianOf, medianRound, perReport, type TelemetryResult } from '../../bench/lib/fleet-runs.js';
import type { Counters } from '../../load/loadgen/ipc.js';

const latency = (p99Ms: number) => ({ count: 1, minMs: 0, p50Ms: 0, p90Ms: 0, p99Ms, p999Ms: 0, maxMs: 0, meanMs: 0 });
const result = (p99Ms: number): TelemetryResult => ({ ...latency(p99Ms), rate: 1, delivered: 1, reportsSent: 1, ack: latency(0), cpuUsPerReport: null, cpuUsPerReportByThread: {}, errors: 0, missing: 0 });

describe('the telemetry rounds arithmetic', () => {
  it('medianOf: the middle of an odd count, the mean of the middle two of an even one, whatever the order', () => {
    expect(medianOf([3, 1, 2])).toBe(2);
    expect(medianOf([4, 1, 3, 2])).toBe(2.5);
    expect(medianOf([7])).toBe(7);
  });

  it('historyPairs: each round on against the same round off, and their median (not the ratio of the medians)', () => {
    // medians 12 on, 10 off (ratio 1.2); the rounds' ratios are 2, 1, 0.5: median 1
    const on = [20, 10, 12].map(result);
    const off = [10, 10, 24].map(result);
    expect(historyPairs(on, off)).toEqual({ historyP99RatiosByRound: [2, 1, 0.5], historyP99RatioMedianOfRounds: 1 });
    expect(medianRound(on).p99Ms / medianRound(off).p99Ms).toBe(1.2);
  });

  it('historyPairs: a round whose off p99 read 0 gives a finite ratio', () => {
    expect(historyPairs([result(2)], [result(0)]).historyP99RatiosByRound.every(Number.isFinite)).toBe(true);
  });

  it('errorCount: every error code, refused connects and closed sockets; not reports sent less delivered', () => {
    const c = { reportsSent: 100, eventsReceived: 90, connectFailures: 2, disconnects: 3, errors: { 'frame:rate_limited': 4, 'app:forbidden': 1 } } as unknown as Counters;
    expect(errorCount(c)).toBe(10);
    expect(errorCount({ ...c, connectFailures: 0, disconnects: 0, errors: {} })).toBe(0);
  });

  it('perReport: each thread\'s CPU between two readings, µs per report, threads under 0.05 µs left out', () => {
    const before = new Map([['main', 100], ['node', 40]]);
    // a thread started after the first reading counts from zero
    const after = new Map([['main', 400], ['node', 40.001], ['lmdb', 20]]);
    expect(perReport(after, before, 10_000)).toEqual({ main: 30, lmdb: 2 });
  });
});
