/**
 * Cron patterns read on a time zone's wall clock, with one rule for daylight saving that holds for
 * every pattern (croner's own zone handling keeps it for single times only):
 * - a wall-clock time the zone skips (the spring gap, 02:00–02:59 in Berlin) fires at the first
 *   valid instant after the gap (03:00); several such times (`*\/15 2 * * *`) fire once there, and
 *   once only if the pattern also matches 03:00;
 * - a wall-clock time the zone repeats (the autumn fold, 01:00–01:59 in New York) fires once, at its
 *   first occurrence; the second pass through the fold fires nothing.
 * The pattern is matched on "floating" wall-clock times (croner in UTC), each match then mapped to
 * an instant by `ZoneClock.instantOf`, which never goes backwards as the wall clock advances.
 */
import { Cron } from 'croner';

const DAY = 86_400_000;

/** Wall-clock ↔ instant of one IANA zone; wall-clock times are ms since 1970 read as if UTC. */
export class ZoneClock {
  private readonly format: Intl.DateTimeFormat;

  /** Throws RangeError for a zone Intl does not know. */
  constructor(readonly timeZone: string) {
    this.format = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
  }

  /** The wall-clock time at instant `t`. */
  wallOf(t: number): number {
    const sec = Math.floor(t / 1000) * 1000;
    const p: Record<string, string> = {};
    for (const part of this.format.formatToParts(sec)) p[part.type] = part.value;
    return Date.UTC(Number(p.year), Number(p.month) - 1, Number(p.day), Number(p.hour) % 24, Number(p.minute), Number(p.second)) + (t - sec);
  }

  /**
   * The instant of wall-clock time `w`: its first occurrence when the zone repeats it, the end of
   * the gap when the zone skips it. Assumes at most one offset change within a day of `w`.
   */
  instantOf(w: number): number {
    const before = w - (this.wallOf(w - DAY) - (w - DAY));
    const after = w - (this.wallOf(w + DAY) - (w + DAY));
    const [early, late] = before <= after ? [before, after] : [after, before];
    if (this.wallOf(early) === w) return early;
    if (this.wallOf(late) === w) return late;
    // a gap: the transition is the first instant whose wall clock is at or past w (whole seconds)
    let lo = Math.floor(early / 1000);
    let hi = Math.ceil(late / 1000);
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if (this.wallOf(mid * 1000) >= w) hi = mid;
      else lo = mid;
    }
    return hi * 1000;
  }
}

const clocks = new Map<string, ZoneClock>();

/**
 * The ZoneClock of a zone, shared: a formatter holds about 36 KB, so one per zone (about 600 names,
 * emptied whole past 1024 as a bound), not one per rule. Throws RangeError for an unknown zone.
 */
export function zoneClock(timeZone: string): ZoneClock {
  let c = clocks.get(timeZone);
  if (!c) {
    c = new ZoneClock(timeZone);
    if (clocks.size >= 1_024) clocks.clear();
    clocks.set(timeZone, c);
  }
  return c;
}

/** matches walked at most in one call: a fold of a few hours of a per-second pattern is well under it */
const MAX_WALK = 50_000;

/**
 * croner gives every job a table of 10,000 years (80 KB): one paused job per pattern, shared by the
 * rules that use it (a node held one per cron rule of the fleet: 80 MB a thousand rules, review
 * herd). Paused and asked with a date, a job keeps no state between calls. The newest SHARED_CRONS
 * patterns are kept here; a rule holds its own as long as it is scheduled.
 */
const SHARED_CRONS = 1_024;
const crons = new Map<string, Cron>();

function sharedCron(pattern: string): Cron {
  let cron = crons.get(pattern);
  if (cron === undefined) {
    cron = new Cron(pattern, { paused: true, timezone: 'UTC' });
    if (crons.size >= SHARED_CRONS) crons.delete(crons.keys().next().value!);
    crons.set(pattern, cron);
  }
  return cron;
}

/** One cron pattern (5 fields, or 6 with seconds) in one zone. */
export class LocalCron {
  private readonly cron: Cron;

  /** Throws for a pattern croner refuses; `clock` may be shared by the patterns of one zone. */
  constructor(pattern: string, readonly clock: ZoneClock) {
    this.cron = sharedCron(pattern);
  }

  /** The first firing strictly after instant `after`, or null when the pattern never fires again. */
  nextAfter(after: number): number | null {
    let wall = this.clock.wallOf(after);
    for (let i = 0; i < MAX_WALK; i++) {
      const w = this.cron.nextRun(new Date(wall))?.getTime();
      if (w === undefined) return null;
      const t = this.clock.instantOf(w);
      if (t > after) return t;
      wall = w; // a time of the fold already fired on its first occurrence
    }
    return null;
  }

  /** The latest firing at or before instant `at`, or null. */
  latestAtOrBefore(at: number): number | null {
    const w = this.cron.previousRuns(1, new Date(this.clock.wallOf(at) + 1))[0]?.getTime();
    return w === undefined ? null : this.clock.instantOf(w);
  }
}
