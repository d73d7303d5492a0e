import leven from 'leven';

/**
 * The known name a mistyped one most likely meant (`TIER_HEARTBEAT` → `TIER_HEARTBEAT_MS`), or
 * undefined when none is close: an SRE's typo was otherwise ignored with a warning naming only it.
 */
export function closestName(name: string, known: Iterable<string>): string | undefined {
  const upper = name.toUpperCase();
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const c = candidate.toUpperCase();
    // a unit suffix left off or added (`_MS`, `_S`, `_BYTES`) is the usual slip: as close as one edit
    const suffix = Math.abs(c.length - upper.length) <= '_BYTES'.length && (c.startsWith(upper) || upper.startsWith(c));
    const d = suffix ? 1 : leven(upper, c);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  // within a quarter of the name's length (at least 2 edits): farther is another setting altogether
  return bestDistance <= Math.max(2, Math.floor(name.length / 4)) ? best : undefined;
}
