import { readFileSync } from 'node:fs';
import { fitLine } from '../lib/fit-line.js';
import { metricSum } from '../lib/prom-text.js';

/**
 * What the load tool watches of processes while it runs: CPU seconds and resident memory of local
 * processes (/proc), the resident memory a node reports on /metrics, and the growth of memory
 * over a run.
 */

/** CPU seconds (user + system) of local processes so far; 0 for those that are gone. */
export function cpuSeconds(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]);
    } catch {
      // gone
    }
  }
  return ticks / 100;
}

/** Resident memory of local processes, summed, bytes; 0 for those that are gone. */
export function rssOf(pids: readonly number[]): number {
  let total = 0;
  for (const pid of pids) {
    try {
      total += Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
    } catch {
      // gone
    }
  }
  return total;
}

/**
 * Proportional set size of local processes, summed, bytes: resident memory with each page shared
 * by n processes counted 1/n in each (the node binary's code, shared libraries), so the sum over
 * dozens of nodes is what they take together. 0 for those that are gone.
 */
export function pssOf(pids: readonly number[]): number {
  let total = 0;
  for (const pid of pids) {
    try {
      total += Number(/^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? 0) * 1024;
    } catch {
      // gone
    }
  }
  return total;
}

/** Resident memory of the watched nodes, summed: /proc for local pids, /metrics otherwise; null when none is watched. */
export async function serverRss(pids: readonly number[], metricsUrls: readonly string[]): Promise<number | null> {
  if (pids.length === 0 && metricsUrls.length === 0) return null;
  let total = rssOf(pids);
  for (const url of metricsUrls) {
    try {
      const text = await (await fetch(url, { signal: AbortSignal.timeout(2_000) })).text();
      total += metricSum(text, 'process_resident_memory_bytes') ?? 0;
    } catch {
      // unreachable this time
    }
  }
  return total;
}

/**
 * A node returns a connect burst's heap pages 25-31 s after it (V8's memory reducer; BENCHMARKS.md,
 * 2026-12-02 sixth): RSS read sooner falls for that, not for anything the sessions let go.
 */
const AFTER_CONNECTS_MS = 60_000;

/**
 * Least-squares slope of RSS over the second half of the samples, in MB per hour, leaving out the
 * minute after the connects ended (`connectedAt`, as the samples' `t`): runs of 5 min or more.
 */
export function growth(samples: Array<{ t: number; rssBytes: number }>, connectedAt: number | null = null): number | null {
  const from = connectedAt === null ? -Infinity : connectedAt + AFTER_CONNECTS_MS;
  const s = samples.slice(Math.floor(samples.length / 2)).filter((x) => x.t >= from);
  if (s.length < 3 || s.at(-1)!.t - s[0]!.t < 150_000) return null;
  return Math.round((fitLine(s.map((x) => [x.t, x.rssBytes] as const)).slope * 3_600_000) / 2 ** 20);
}
