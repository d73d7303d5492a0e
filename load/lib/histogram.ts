import hdr from 'hdr-histogram-js';

/**
 * HDR histograms of latencies, recorded in microseconds (1 µs .. 10 min, 3 significant digits),
 * so sub-millisecond differences survive (autocannon's own histogram truncates to whole ms).
 * Workers send them to the parent compressed (base64) and the parent adds them up.
 */
export type Histogram = hdr.Histogram;

export function newHistogram(): Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: 3, useWebAssembly: false });
}

/** Records a latency given in ms (float), `count` times. */
export function recordMs(h: Histogram, ms: number, count = 1): void {
  h.recordValueWithCount(Math.max(1, Math.round(ms * 1000)), count);
}

/** Compressed base64; null for a histogram with nothing recorded (most of a worker's each second). */
export function encodeHistogram(h: Histogram): string | null {
  return h.totalCount === 0 ? null : hdr.encodeIntoCompressedBase64(h);
}

/**
 * Adds an encoded histogram into `into`. A decoded histogram is a few hundred KB of arrays: the
 * parent of 28 workers decoding four a second each into a copy and then adding the copy spent
 * about 40 ms of CPU a second on it.
 */
export function addEncoded(into: Histogram, s: string | null): void {
  if (s !== null) into.add(hdr.decodeFromCompressedBase64(s));
}

/** Percentiles in ms, as written into reports. */
export interface LatencySummary {
  count: number;
  minMs: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  meanMs: number;
}

const ms = (us: number) => Math.round(us) / 1000;

export function summarize(h: Histogram): LatencySummary {
  if (h.totalCount === 0) return { count: 0, minMs: 0, p50Ms: 0, p90Ms: 0, p99Ms: 0, p999Ms: 0, maxMs: 0, meanMs: 0 };
  return {
    count: h.totalCount,
    minMs: ms(h.minNonZeroValue),
    p50Ms: ms(h.getValueAtPercentile(50)),
    p90Ms: ms(h.getValueAtPercentile(90)),
    p99Ms: ms(h.getValueAtPercentile(99)),
    p999Ms: ms(h.getValueAtPercentile(99.9)),
    maxMs: ms(h.maxValue),
    meanMs: ms(h.mean),
  };
}

/** A fixed-width text table: the first row is the header. */
export function table(rows: Array<Array<string | number>>): string {
  const cells = rows.map((r) => r.map(String));
  const widths: number[] = [];
  for (const r of cells) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  const out = [line(cells[0]!), widths.map((w) => '-'.repeat(w)).join('  ')];
  for (const r of cells.slice(1)) out.push(line(r));
  return out.join('\n');
}
