/**
 * One metric out of a Prometheus text exposition (what a node's `/metrics` answers): the sum of
 * its samples over every label set, or null when the text has none. The tools read a figure or
 * two per run this way, so a parser of the whole format is not needed.
 */
export function metricSum(text: string, name: string): number | null {
  let sum: number | null = null;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    // the name, then labels or the value: `name{…} 3` or `name 3` (not `name_total`, a longer name)
    const rest = line.slice(name.length);
    const m = /^(?:\{[^}]*\})?\s+(\S+)/.exec(rest);
    if (!m) continue;
    const value = Number(m[1]);
    if (Number.isNaN(value)) continue;
    sum = (sum ?? 0) + value;
  }
  return sum;
}
