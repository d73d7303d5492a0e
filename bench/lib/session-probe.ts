/**
 * What the held sessions still get from the node, read after the memory readings: reports from
 * every hub (hub → its ack: the store's write path, which touches the LMDB pages of each hub) and
 * shadow reads over HTTP (the read path). Under a memory limit these are the pages the kernel may
 * have reclaimed and reads back from disk; the figures say what that costs.
 */
import type { NodeProc } from '../../load/harness/index.js';
import type { Fleet } from '../../load/loadgen/fleet.js';
import { addCounters, emptyCounters } from '../../load/loadgen/ipc.js';
import { newHistogram, recordMs, summarize, type LatencySummary } from '../../load/lib/histogram.js';

export interface ProbeResult {
  reports: number;
  acks: number;
  reportToAck: LatencySummary;
  shadowReads: number;
  shadowFailures: number;
  shadowRead: LatencySummary;
  errors: Record<string, number>;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Every hub of `fleets` reports every `spreadMs` (the hubs spread evenly over it) for `spreadMs`:
 * about two reports each (19,983–19,997 from 10,000 hubs in BENCHMARKS.md's runs); then
 * `reads` shadows of `hubIds` (evenly spaced through them) are read one after another with the
 * admin token.
 */
export async function probeSessions(node: NodeProc, fleets: Fleet[], hubIds: string[], spreadMs: number, reads: number): Promise<ProbeResult> {
  for (const f of fleets) await f.all('reset');
  for (const f of fleets) await f.all('reports', { everyMs: spreadMs });
  await sleep(spreadMs);
  for (const f of fleets) await f.all('reports', { everyMs: 0 });
  await sleep(2_000);
  const reportToAck = newHistogram();
  const counters = emptyCounters();
  for (const f of fleets) {
    const s = await f.snapshot();
    reportToAck.add(s.reportToAck);
    addCounters(counters, s.counters);
  }
  const shadowRead = newHistogram();
  let failures = 0;
  const n = Math.min(reads, hubIds.length);
  for (let i = 0; i < n; i++) {
    const hubId = hubIds[Math.floor((i * hubIds.length) / n)]!;
    const t0 = performance.now();
    const res = await fetch(`${node.httpUrl}/v1/hubs/${encodeURIComponent(hubId)}/shadow`, { headers: { authorization: `Bearer ${node.adminToken}` } });
    await res.arrayBuffer();
    if (res.ok) recordMs(shadowRead, performance.now() - t0);
    else failures++;
  }
  return { reports: counters.reportsSent, acks: counters.reportAcks, errors: counters.errors, reportToAck: summarize(reportToAck), shadowReads: n - failures, shadowFailures: failures, shadowRead: summarize(shadowRead) };
}

export function probeText(p: ProbeResult): string {
  const lat = (s: ProbeResult['reportToAck']) => `p50 ${s.p50Ms} ms, p99 ${s.p99Ms} ms, max ${s.maxMs} ms`;
  const errors = Object.entries(p.errors);
  return `probe: ${p.reports} reports, ${p.acks} acknowledged, report → ack ${lat(p.reportToAck)}; ${p.shadowReads} shadow reads (${p.shadowFailures} failed) ${lat(p.shadowRead)}${errors.length > 0 ? `; errors ${JSON.stringify(p.errors)}` : ''}`;
}
