import { cpus, totalmem } from 'node:os';
import { encodeHistogram, summarize, table, type LatencySummary } from '../lib/histogram.js';
import { LATENCIES, STEADY_LATENCIES, type ConnectResult, type Counters, type StormResult } from './ipc.js';
import type { FleetView } from './fleet.js';
import type { Options } from './options.js';
import { growth } from './process-usage.js';

/**
 * The end of a load run: the JSON report (counters, latency percentiles and HDR histograms, each
 * compressed base64 in µs or null when nothing was recorded; storm, server memory, CPU, SLO
 * verdicts) and the tables printed for a person.
 */

/** Error codes of admission control: the target protecting itself, counted apart from other errors. */
const ADMISSION = /(^|:)(rate_limited|busy|draining|overloaded|too_many_requests|http_429|http_503|admission\w*)$/;

export function errorsSplit(errors: Record<string, number>): { admission: number; other: number } {
  let admission = 0;
  let other = 0;
  for (const [code, n] of Object.entries(errors)) {
    // a source port in use is retried at once with the next one, and a `retry:` succeeded or
    // was counted again when it gave up: neither is an error of the target
    if (code.startsWith('source:') || code.startsWith('retry:')) continue;
    if (ADMISSION.test(code)) admission += n;
    else other += n;
  }
  return { admission, other };
}

export type StormSummary = StormResult & { allBackS: number; workers: StormResult[] };

/** CPU cores busy during the steady phase (local processes), and the load workers' memory. */
export interface Usage {
  seconds: number;
  serverCores: number | null;
  clientCores: number;
  clientRssMB: number;
  /** proportional set sizes at the end (local processes; see pssOf): what they take together */
  serverPssMB: number | null;
  clientPssMB: number;
}

export interface RunOutcome {
  o: Options;
  startedAt: Date;
  /** Date.now() at the start */
  t0: number;
  /**
   * the fleet's totals at the end; null when the workers could not be asked. Its STEADY_LATENCIES
   * are the steady phase's when `beforeSteady` is set (the other scenarios: the whole run's)
   */
  snap: FleetView | null;
  /** the totals as the steady phase began, before its latencies were reset; null for a storm */
  beforeSteady: FleetView | null;
  /** the last counters the progress line saw (when `snap` is null) */
  lastCounters: Counters;
  memory: Array<{ t: number; rssBytes: number }>;
  connect: ConnectResult | null;
  /** Date.now() when every hub's connect was answered; null when the run did not get that far */
  connectedAt: number | null;
  storm: StormSummary | null;
  usage: Usage | null;
  fatal: Error | null;
}

/** The report to write and the text to print; `passed`: every SLO met and no fatal error. */
export function finalReport(r: RunOutcome): { report: Record<string, unknown>; lines: string[]; passed: boolean } {
  const { o, snap, storm, usage, fatal } = r;
  const counters = snap?.counters ?? r.lastCounters;
  const lat: Record<string, LatencySummary> = snap
    ? Object.fromEntries(LATENCIES.map((k) => [k, summarize(snap[k])]))
    : {};
  const before = r.beforeSteady;
  const latBefore: Record<string, LatencySummary> | null = before ? Object.fromEntries(STEADY_LATENCIES.map((k) => [k, summarize(before[k])])) : null;
  const errs = errorsSplit(counters.errors);
  const rssValues = r.memory.map((m) => m.rssBytes);
  const mem =
    r.memory.length === 0
      ? null
      : {
          samples: r.memory.map((m) => ({ t: (m.t - r.t0) / 1000, mb: Math.round(m.rssBytes / 2 ** 20) })),
          startMB: Math.round(rssValues[0]! / 2 ** 20),
          endMB: Math.round(rssValues.at(-1)! / 2 ** 20),
          maxMB: Math.round(Math.max(...rssValues) / 2 ** 20),
          // over the second half of the run, from a minute after the connects
          growthMBPerHour: growth(r.memory, r.connectedAt),
        };
  const value = (key: string): number | null => {
    const [what, stat] = key.split('.');
    if (key === 'errors') return errs.other;
    if (key === 'storm.s') return storm ? (storm.back === storm.hubs ? storm.allBackS : Infinity) : null;
    if (key === 'rss.mb') return mem?.maxMB ?? null;
    const name = what === 'report' ? 'reportToApp' : what!;
    const s = lat[name];
    if (!s || s.count === 0) return null;
    return stat === 'p50' ? s.p50Ms : s.p99Ms;
  };
  const slo = o.slo.map(({ key, limit }) => {
    const v = value(key);
    return { key, limit, value: v, ok: v !== null && v <= limit };
  });
  const passed = fatal === null && slo.every((s) => s.ok);

  const report = {
    tool: 'hubtier load',
    startedAt: r.startedAt.toISOString(),
    elapsedS: Math.round((Date.now() - r.t0) / 1000),
    machine: { cores: cpus().length, memoryGB: Math.round(totalmem() / 2 ** 30), node: process.version },
    scenario: o.scenario,
    targets: o.urls,
    options: { ...o, adminToken: '(hidden)' },
    connect: r.connect,
    counters,
    errors: { admission: errs.admission, other: errs.other, byCode: counters.errors },
    /** `latency`'s command, report and loop figures cover the steady phase alone when this is set: these are the ones before it */
    latencyBeforeSteady: latBefore,
    latency: lat,
    hdr: snap
      ? { unit: 'µs', ...Object.fromEntries(LATENCIES.map((k) => [k, encodeHistogram(snap[k])])) }
      : null,
    storm,
    memory: mem,
    usage,
    slo,
    passed,
    fatal: fatal?.message ?? null,
  };

  const label: Record<string, string> = { reportToApp: 'report → app', reportToAck: 'report → ack', loopDelay: "load workers' loop delay" };
  const latTable = (title: string, rows: Record<string, LatencySummary>) =>
    table([[title, 'count', 'p50', 'p90', 'p99', 'p99.9', 'max'], ...Object.entries(rows).map(([name, s]) => [label[name] ?? name, s.count, s.p50Ms, s.p90Ms, s.p99Ms, s.p999Ms, s.maxMs])]);
  const lines = [
    '',
    latTable(latBefore ? 'latency (ms); but connect, the steady phase' : 'latency (ms)', lat),
    ...(latBefore ? ['', latTable('latency (ms) before the steady phase', latBefore)] : []),
    '',
    table([
      ['count', 'value'],
      ['hubs connected at the end', counters.connected],
      ['reports sent / acknowledged / unacknowledged at the end', `${counters.reportsSent} / ${counters.reportAcks} / ${counters.reportsUnacknowledged}`],
      ['reports to apps: delivered / undelivered at the end', `${counters.reportsDelivered} / ${counters.reportsUndelivered}`],
      ['reports skipped (hub not connected)', counters.reportsSkipped],
      ['state events received by apps', counters.eventsReceived],
      ['commands sent / ok / failed / unanswered', `${counters.commandsSent} / ${counters.commandsOk} / ${counters.commandsFailed} / ${counters.commandsUnanswered}`],
      ['commands skipped (hub not connected)', counters.commandsSkipped],
      ['connects / failed connects', `${counters.connects} / ${counters.connectFailures}`],
      ['sessions dropped by the server', counters.disconnects],
      ['errors (admission control)', errs.admission],
      ['errors (other)', errs.other],
      ...(storm ? [['storm: hubs back / dropped', `${storm.back} / ${storm.hubs}`], ['storm: all back after (s)', storm.allBackS]] : []),
      ...(usage
        ? [
            ['cores busy in the steady phase: server / load', `${usage.serverCores ?? '-'} / ${usage.clientCores}`],
            ['load workers rss / pss (MB)', `${usage.clientRssMB} / ${usage.clientPssMB}`],
            ...(usage.serverPssMB !== null ? [['server pss at the end (MB)', usage.serverPssMB]] : []),
          ]
        : []),
      ...(mem ? [['server rss start / end / max (MB)', `${mem.startMB} / ${mem.endMB} / ${mem.maxMB}`], ['server rss growth (MB/h)', mem.growthMBPerHour ?? '-']] : []),
    ]),
  ];
  if (Object.keys(counters.errors).length > 0) lines.push(`errors by code: ${JSON.stringify(counters.errors)}`);
  for (const s of slo) lines.push(`SLO ${s.key} <= ${s.limit}: ${s.value === null ? 'no data' : s.value} ${s.ok ? 'ok' : 'MISSED'}`);
  if (fatal) lines.push(`load: failed: ${fatal.message}`);
  return { report, lines, passed };
}
