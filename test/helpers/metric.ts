/** The value of one Prometheus series (name and labels as exposed) in an exposition text; undefined when absent. */
export function metric(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}
