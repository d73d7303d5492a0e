/**
 * The unacknowledged reports of a worker's lean hubs, in typed arrays: per hub the newest one's
 * sequence number, how many (their numbers run to it without a gap: after its device list a hub's
 * numbered frames are its reports), and when each was due (performance.now()): the newest
 * REPORT_TIMES; an older one is timed from the oldest kept, so its latency is a lower bound.
 */

/** Due times kept per hub, 8 bytes each. */
export const REPORT_TIMES = 4;

export class UnackedReports {
  private readonly newest: Uint32Array;
  private readonly n: Uint32Array;
  private readonly dueAt: Float64Array;

  constructor(hubs: number) {
    this.newest = new Uint32Array(hubs);
    this.n = new Uint32Array(hubs);
    this.dueAt = new Float64Array(hubs * REPORT_TIMES);
  }

  /** Hub `i`'s unacknowledged reports. */
  count(i: number): number {
    return this.n[i]!;
  }

  /** A new session: nothing awaited (a closed session's reports are not; its close was counted). */
  reset(i: number): void {
    this.newest[i] = 0;
    this.n[i] = 0;
  }

  /** Report `s` of hub `i` sent, due at `at`. */
  sent(i: number, s: number, at: number): void {
    this.newest[i] = s;
    this.n[i] = this.n[i]! + 1;
    this.dueAt[i * REPORT_TIMES + (s % REPORT_TIMES)] = at;
  }

  /** An ack of `s`: `each` gets the ms since each report it covers was due, oldest first. */
  acked(i: number, s: number, now: number, each: (ms: number) => void): void {
    const first = this.newest[i]! - this.n[i]! + 1;
    if (this.n[i]! === 0 || s < first) return;
    const last = Math.min(s, this.newest[i]!);
    for (let r = first; r <= last; r++) each(now - this.due(i, r));
    this.n[i] = this.n[i]! - (last - first + 1);
  }

  /** Frames from `ref` on were refused (counted as a frame error): those reports are not awaited. */
  refused(i: number, ref: number): void {
    if (this.newest[i]! < ref) return;
    this.n[i] = Math.max(0, this.n[i]! - (this.newest[i]! - ref + 1));
    this.newest[i] = ref - 1;
  }

  /** `each` gets the age at `now` of each of hub `i`'s unacknowledged reports; then none is awaited. */
  forget(i: number, now: number, each: (ageMs: number) => void): void {
    const newest = this.newest[i]!;
    for (let s = newest - this.n[i]! + 1; s <= newest; s++) each(now - this.due(i, s));
    this.n[i] = 0;
  }

  /** When report `s` of hub `i` was due: its own slot, or for one older than the slots kept, the oldest kept. */
  private due(i: number, s: number): number {
    const kept = Math.max(s, this.newest[i]! - REPORT_TIMES + 1);
    return this.dueAt[i * REPORT_TIMES + (kept % REPORT_TIMES)]!;
  }
}
