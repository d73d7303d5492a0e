/** The load-tool fleets the benchmark drives: hub and app specs, hubs online, telemetry rounds, medians. */
import { Fleet } from '../../load/loadgen/fleet.js';
import type { AppSpec, ConnectResult, Counters, HubSpec, WorkerConfig } from '../../load/loadgen/ipc.js';
import type { Drained } from '../../load/loadgen/traffic.js';
import { summarize, type Histogram, type LatencySummary } from '../../load/lib/histogram.js';
import { type CannonResult } from './cannon.js';

import type { Args } from './run-args.js';
import { sleep } from '../../load/lib/async.js';
import { cpuMs, threadCpuMs } from '../../load/harness/index.js';

/** How long a round waits, sending stopped, for its reports' acks and deliveries before counting them missing. */
const DRAIN_MS = 3_000;

export const say = (line: string) => process.stderr.write(`${line}\n`);

export function hubSpecs(n: number, prefix: string): HubSpec[] {
  return Array.from({ length: n }, (_, i) => ({ id: `${prefix}-${i}`, home: `${prefix}-home-${Math.floor(i / 10)}`, target: 0 }));
}

/** One app subscriber per home, each following its home's 10 hubs. */
export function appSpecs(hubs: HubSpec[]): AppSpec[] {
  return [...new Set(hubs.map((h) => h.home))].map((home) => ({ homes: [home], target: 0 }));
}

export function workerConfig(url: string, hubs: HubSpec[], signed: boolean, adminToken: string | null, apps: AppSpec[]): WorkerConfig {
  return {
    targets: [url],
    hubs,
    devices: 8,
    sourceAddresses: [],
    connectConcurrency: 100,
    connectTimeoutMs: 20_000,
    adminToken,
    signed,
    fill: true,
    reconnect: false,
    apps,
  };
}

export async function hubsOnline(fleet: Fleet, label: string, provision: boolean): Promise<number> {
  if (provision) {
    const p = await fleet.all<{ ok: number; failed: number }, 'provision'>('provision');
    const failed = p.reduce((n, x) => n + x.failed, 0);
    if (failed > 0) throw new Error(`${label}: ${failed} hubs could not be provisioned`);
  }
  const r = (await fleet.all<ConnectResult, 'connect'>('connect'))[0]!;
  if (r.failed > 0) throw new Error(`${label}: ${r.failed} hubs could not connect: ${JSON.stringify((await fleet.snapshot()).counters.errors)}`);
  return Math.round((r.ok * 1000) / r.elapsedMs);
}

export interface TelemetryResult extends LatencySummary {
  rate: number;
  delivered: number;
  reportsSent: number;
  /** errors the hubs and apps met in the window (codes, refused connects), sockets that closed, and `missing` */
  errors: number;
  /** acks and app deliveries of the round's reports still missing 3 s after sending stopped (a lost report counts in both) */
  missing: number;
  /** report → ack: the hub's send of a report to the ack covering it */
  ack: LatencySummary;
  /** CPU of the target process (user + kernel) per report sent, µs; null without its pid */
  cpuUsPerReport: number | null;
  /** the same by thread name, µs per report: `main`, and `node` for the rest (Node 20 names libuv's, V8's and lmdb-js's threads alike); empty without its pid */
  cpuUsPerReportByThread: Record<string, number>;
}

/** Errors the hubs and apps of a fleet met so far: every error code, refused connects, closed sockets. */
export function errorCount(c: Counters): number {
  return Object.values(c.errors).reduce((n, k) => n + k, 0) + c.connectFailures + c.disconnects;
}

/** CPU per report by thread between two `threadCpuMs` readings, µs to 0.1 (threads under 0.05 left out). */
export function perReport(after: Map<string, number>, before: Map<string, number>, reports: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, ms] of after) {
    const us = ((ms - (before.get(name) ?? 0)) * 1000) / reports;
    if (us >= 0.05) out[name] = Math.round(us * 10) / 10;
  }
  return out;
}

/** A fleet driving one target, and the target's pid (for its CPU). */
export interface TelemetryTarget {
  fleet: Fleet;
  pid?: number;
}

export async function telemetry(target: TelemetryTarget, hubs: number, rate: number, durationS: number): Promise<TelemetryResult> {
  const { fleet, pid } = target;
  await fleet.all('reports', { everyMs: (hubs * 1000) / rate });
  await sleep(1_000); // settle
  await fleet.all('reset');
  const before = (await fleet.snapshot()).counters;
  const readCpu = () => (pid === undefined ? { all: 0, threads: new Map<string, number>() } : { all: cpuMs(pid), threads: threadCpuMs(pid) });
  const cpu0 = readCpu();
  await sleep(durationS * 1_000);
  const cpu1 = readCpu();
  const cpu = cpu1.all - cpu0.all;
  const snap = await fleet.snapshot();
  // sending stopped, what is still open after a bounded wait is missing (the window's own counts
  // cannot say: its edges move sent less delivered either way)
  const open = await fleet.all<Drained, 'drain'>('drain', { waitMs: DRAIN_MS });
  const missing = open.reduce((n, d) => n + d.reportsUnacknowledged + d.reportsUndelivered, 0);
  const reportsSent = snap.counters.reportsSent - before.reportsSent;
  const result: TelemetryResult = {
    rate,
    reportsSent,
    delivered: snap.counters.eventsReceived - before.eventsReceived,
    errors: errorCount(snap.counters) - errorCount(before) + missing,
    missing,
    ...summarize(snap.reportToApp),
    ack: summarize(snap.reportToAck),
    cpuUsPerReport: pid === undefined || reportsSent === 0 ? null : Math.round((cpu * 1000) / reportsSent),
    cpuUsPerReportByThread: reportsSent === 0 ? {} : perReport(cpu1.threads, cpu0.threads, reportsSent),
  };
  latencies.set(result, snap.reportToApp);
  return result;
}

/** Each round's report → app latencies, kept beside its result (out of the JSON printed). */
const latencies = new WeakMap<TelemetryResult, Histogram>();

/** The report → app latencies of a round `telemetry` measured. */
export function latencyOf(r: TelemetryResult): Histogram {
  const h = latencies.get(r);
  if (!h) throw new Error('not a round measured by telemetry()');
  return h;
}

/**
 * Telemetry on the floor and on a server, alternating round after round; the round with the
 * median report → app p99 stands for each target.
 */
export async function telemetryRounds(floor: TelemetryTarget, server: TelemetryTarget, args: Args): Promise<{ floor: TelemetryResult; server: TelemetryResult }> {
  const [f, s] = await telemetryRoundsOf([floor, server], args);
  return { floor: f!, server: s! };
}

/** Telemetry on each fleet in turn, round after round; per fleet the round with the median p99. */
export async function telemetryRoundsOf(targets: TelemetryTarget[], args: Args, rate = args.telemetryRate): Promise<TelemetryResult[]> {
  return (await telemetryRunsOf(targets, args, rate)).map(medianRound);
}

/** The round with the median report → app p99 (the upper one of an even count). */
export function medianRound(runs: TelemetryResult[]): TelemetryResult {
  return [...runs].sort((a, b) => a.p99Ms - b.p99Ms)[Math.floor(runs.length / 2)]!;
}

/** Telemetry on each fleet in turn, round after round: every round's result, per fleet. */
export async function telemetryRunsOf(targets: TelemetryTarget[], args: Args, rate = args.telemetryRate): Promise<TelemetryResult[][]> {
  const runs: TelemetryResult[][] = targets.map(() => []);
  const order = targets.map((_, k) => k);
  for (let i = 0; i < args.rounds; i++) {
    // the floor first; the servers after it in turns (on, off; then off, on): none always runs
    // right after the floor or right after the other, whose load may still be draining
    const servers = i % 2 === 0 ? order.slice(1) : order.slice(1).reverse();
    for (const k of [0, ...servers]) runs[k]!.push(await telemetry(targets[k]!, args.hubs, rate, args.durationS));
  }
  return runs;
}

/** The median of some numbers (the mean of the middle two of an even count). */
export function medianOf(xs: number[]): number {
  const v = [...xs].sort((a, b) => a - b);
  return v.length % 2 === 1 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
}

/**
 * History on against off, round by round: both nodes ran in the same round, one after the other,
 * so a round's ratio is not moved by the machine's drift between rounds as the ratio of the two
 * medians is. Their median is the figure the history bound is judged by.
 */
export function historyPairs(on: TelemetryResult[], off: TelemetryResult[]) {
  const ratios = on.map((r, i) => round(r.p99Ms / Math.max(0.001, off[i]!.p99Ms)));
  return { historyP99RatiosByRound: ratios, historyP99RatioMedianOfRounds: round(medianOf(ratios)) };
}

/** Each figure the median over the runs (runs of one target under the same load). */
export function median(runs: CannonResult[]): CannonResult {
  const mid = <T>(xs: T[], by: (x: T) => number) => medianOf(xs.map(by));
  const first = runs[0]!;
  const out = { ...first } as CannonResult;
  for (const k of Object.keys(first) as Array<keyof CannonResult>) {
    if (typeof first[k] === 'number') (out as unknown as Record<string, number>)[k] = mid(runs, (r) => r[k] as number);
  }
  out.otherCpuUsPerReq = Object.fromEntries(Object.keys(first.otherCpuUsPerReq).map((k) => [k, mid(runs, (r) => r.otherCpuUsPerReq[k] ?? 0)]));
  return out;
}

export const round = (n: number, d = 2) => Math.round(n * 10 ** d) / 10 ** d;
