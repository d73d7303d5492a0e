/**
 * The load tool's steady traffic (load/loadgen/traffic.ts) against stand-in hubs and a stand-in
 * admin API: latencies run from when each send was due, so a worker stalled past its ticks shows
 * in them; the end of a run waits a bounded time for what is in flight and counts what is still
 * open as errors at its age; sends due for a hub not connected are counted as skipped.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { addEncoded, newHistogram, type Histogram } from '../../load/lib/histogram.js';
import { Deliveries } from '../../load/loadgen/deliveries.js';
import type { HubPool } from '../../load/loadgen/hub-pool.js';
import { WorkerMetrics } from '../../load/loadgen/metrics.js';
import { Pacer, Traffic } from '../../load/loadgen/traffic.js';
import type { AdminClient, HttpAnswer } from '../../load/wire/admin.js';

const HUBS = 100;

/** What the stand-in hubs were asked to send: each report's `lt` stamp and its due time for report → ack. */
interface Sent {
  lt: number;
  at: number;
}

function standInHubs(opts: { connected: boolean; unacked?: number[] }): { pool: HubPool; sent: Sent[] } {
  const sent: Sent[] = [];
  let unacked = opts.unacked ?? [];
  const hubs = {
    count: HUBS,
    ids: Array.from({ length: HUBS }, (_, i) => `hub-${i}`),
    homes: Array.from({ length: HUBS }, (_, i) => `home-${i % 10}`),
    target: new Uint8Array(HUBS),
    connected: () => opts.connected,
    report(_i: number, r: Record<string, { lt: number }>, _ts: number | undefined, at: number): boolean {
      if (!opts.connected) return false;
      sent.push({ lt: Object.values(r)[0]!.lt, at });
      return true;
    },
    unacknowledged: () => unacked.length,
    forgetUnacknowledged(now: number, each: (ageMs: number) => void): void {
      for (const at of unacked) each(now - at);
      unacked = [];
    },
  };
  return { pool: { hubs } as unknown as HubPool, sent };
}

/** An admin API whose commands are answered by `answer` (a promise that may never settle). */
function standInAdmin(answer: () => Promise<HttpAnswer>): () => AdminClient {
  const admin = { command: answer } as unknown as AdminClient;
  return () => admin;
}

const ok = (): Promise<HttpAnswer> => Promise.resolve({ status: 200, body: { ok: true } } as unknown as HttpAnswer);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** The event loop held, as a busy load worker's is. */
const block = (ms: number) => {
  const until = performance.now() + ms;
  while (performance.now() < until);
};
function histogram(m: WorkerMetrics, which: 'command' | 'reportToApp' | 'reportToAck'): Histogram {
  const h = newHistogram();
  addEncoded(h, m.snapshot().total[which]);
  return h;
}

const metrics: WorkerMetrics[] = [];
afterEach(() => {
  for (const m of metrics.splice(0)) m.stop();
});
function newMetrics(): WorkerMetrics {
  const m = new WorkerMetrics();
  metrics.push(m);
  return m;
}

describe('Pacer.at', () => {
  it('dates each send by the rate, but not before the tick meant to carry it: a late tick dates its sends back', () => {
    // one send per 10 ms, ticks meant every 20 ms from 0
    const pace = new Pacer(0.1, 0, 20);
    expect(pace.due(20)).toBe(2);
    expect([pace.at(0), pace.at(1)]).toEqual([20, 20]);
    // the next tick, meant for 40, fires at 340: 32 sends, due every 10 ms from 30, none before 40
    expect(pace.due(340)).toBe(32);
    expect([pace.at(0), pace.at(1), pace.at(2), pace.at(31)]).toEqual([40, 40, 50, 340]);
    // without a tick, the rate's own schedule
    const exact = new Pacer(0.1, 0);
    expect(exact.due(35)).toBe(3);
    expect([exact.at(0), exact.at(2)]).toEqual([10, 30]);
  });
});

describe('Traffic', () => {
  it('stamps reports and starts commands at their due time: a worker stalled 300 ms shows in the latencies', async () => {
    const m = newMetrics();
    const { pool, sent } = standInHubs({ connected: true });
    const traffic = new Traffic(pool, 4, m, standInAdmin(ok), new Deliveries(() => 0));
    // 100 hubs every second (100 reports/s) and 50 commands/s, from `start`
    const start = performance.now();
    traffic.reports(1_000);
    traffic.commands(50);
    await sleep(100);
    block(300);
    await sleep(200);
    traffic.stop();
    await sleep(10);
    expect(sent.length).toBeGreaterThanOrEqual(50);
    // report k was due by the rate at start + (k + 1) × 10 ms, and is sent on the next 20-ms tick:
    // stamped at most a tick after that, whether its tick came on time or 300 ms late
    const lateness = sent.map((s, k) => s.lt - (performance.timeOrigin + start + (k + 1) * 10));
    expect(Math.max(...lateness)).toBeLessThan(25);
    expect(Math.min(...lateness)).toBeGreaterThan(-1);
    // report → ack is timed from the same due time
    for (const s of sent) expect(s.at).toBeCloseTo(s.lt - performance.timeOrigin, 3);
    // commands answered at once, but those due during the stall went out up to 300 ms late
    const cmd = histogram(m, 'command');
    expect(cmd.totalCount).toBe(m.counters.commandsOk);
    expect(cmd.maxValue / 1000).toBeGreaterThan(250);
  });

  it('waits for commands in flight at the end, then counts those still unanswered, and the reports still open, as errors at their age', async () => {
    const m = newMetrics();
    const opened = performance.now();
    const { pool, sent } = standInHubs({ connected: true, unacked: [opened, opened] });
    // the first three commands are answered 50 ms later, the rest never (a frozen node)
    const late: Array<() => void> = [];
    let n = 0;
    const answer = () => (n++ < 3 ? new Promise<HttpAnswer>((r) => setTimeout(() => r({ status: 200, body: {} } as unknown as HttpAnswer), 50)) : new Promise<HttpAnswer>((r) => late.push(() => r({ status: 200, body: {} } as unknown as HttpAnswer))));
    // one app follows each home: every report is awaited by one
    const deliveries = new Deliveries(() => 1);
    const traffic = new Traffic(pool, 4, m, standInAdmin(answer), deliveries);
    traffic.reports(1_000);
    traffic.commands(100);
    await sleep(150);
    deliveries.received(sent[0]!.lt);
    const drained = await traffic.drain(200);
    const c = m.counters;
    expect(c.commandsSent).toBeGreaterThan(5);
    expect(c.commandsOk).toBe(3);
    expect(drained.commandsUnanswered).toBe(c.commandsSent - 3);
    expect(c.commandsUnanswered).toBe(c.commandsSent - 3);
    expect(c.errors['command:unanswered']).toBe(c.commandsSent - 3);
    // every unanswered command is a latency of at least the drain's wait
    const cmd = histogram(m, 'command');
    expect(cmd.totalCount).toBe(c.commandsSent);
    expect(cmd.getValueAtPercentile(90) / 1000).toBeGreaterThanOrEqual(200);
    // the hubs' two unacknowledged reports, and every report no app received
    expect(c.reportsUnacknowledged).toBe(2);
    expect(c.errors['report:unacknowledged']).toBe(2);
    expect(histogram(m, 'reportToAck').minNonZeroValue / 1000).toBeGreaterThanOrEqual(350);
    expect(c.reportsUndelivered).toBe(c.reportsSent - 1);
    expect(c.errors['report:undelivered']).toBe(c.reportsSent - 1);
    expect(histogram(m, 'reportToApp').totalCount).toBe(c.reportsSent - 1);
    // sending stopped, and an answer after the drain changes nothing
    const sentAtDrain = [c.commandsSent, c.reportsSent];
    for (const r of late) r();
    await sleep(30);
    expect([c.commandsSent, c.reportsSent]).toEqual(sentAtDrain);
    expect(c.commandsOk).toBe(3);
  });

  it('counts the commands and reports due for a hub not connected as skipped', async () => {
    const m = newMetrics();
    const { pool } = standInHubs({ connected: false });
    const traffic = new Traffic(pool, 4, m, standInAdmin(ok), new Deliveries(() => 1));
    traffic.reports(1_000);
    traffic.commands(100);
    await sleep(120);
    await traffic.drain(100);
    const c = m.counters;
    expect(c.commandsSent).toBe(0);
    expect(c.commandsSkipped).toBeGreaterThan(5);
    expect(c.reportsSent).toBe(0);
    expect(c.reportsSkipped).toBeGreaterThan(5);
    expect(c.errors).toEqual({});
  });
});
