/**
 * What a chaos run counts: per node process, the ledger of the hub sessions that ended on it and
 * what the checks of their shadows found; and counts keyed by codes the server sends.
 */

/** What the checks found for the hub sessions that ended on one process (or at the end of the run). */
export interface Ledger {
  /** hub sessions that ended on this process */
  sessionsEnded: number;
  /** of those, hubs that came back and whose shadow was read */
  checked: number;
  /** acknowledged reports missing from the shadow */
  lost: number;
  hubsWithLoss: number;
  /** missing at the first read but there at a re-read (a write landing late, not lost) */
  late: number;
  /** hubs whose next welcome `s` was below the last sequence number they saw acknowledged */
  cursorBehind: number;
  /** sum over those hubs of (last acknowledged - welcome `s`) */
  cursorFramesBehind: number;
  /** ms from the session's end to the check of the hub's shadow, per hub */
  backMs: number[];
  /** checks abandoned: the shadow could not be read through any node */
  unreadable: number;
}

export function newLedger(): Ledger {
  return { sessionsEnded: 0, checked: 0, lost: 0, hubsWithLoss: 0, late: 0, cursorBehind: 0, cursorFramesBehind: 0, backMs: [], unreadable: 0 };
}

/** Counts keyed by codes the server sends: a map without a prototype. */
export function counts(): Record<string, number> {
  return Object.create(null) as Record<string, number>;
}

export function bump(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

export function sum(counts: Record<string, number>): number {
  return Object.values(counts).reduce((a, b) => a + b, 0);
}
