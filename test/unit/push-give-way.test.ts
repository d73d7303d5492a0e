/**
 * When a push worker that only logs pauses and resumes (push-deliverers.ts GiveWay). Until
 * 2026-12-06 a mark lapsed in a Redis outage (or a look Redis could not answer) resumed such
 * workers at once, and they logged most notifications until the delivering worker's next refresh
 * set the mark again (a review of the fix that paused them).
 */
import { describe, expect, it } from 'vitest';
import { GiveWay } from '../../src/ports/push-queue/push-deliverers.js';

describe('GiveWay', () => {
  it('pauses at a mark; resumes only once the mark stayed gone past a delivering worker\'s refresh and 2 s; a look without an answer changes nothing', () => {
    const way = new GiveWay(30_000); // refresh every 10 s: resume after 12 s gone
    expect(way.next(true, false, 0)).toBe('pause');
    expect(way.next(true, true, 1_000)).toBeNull();
    // Redis away: no answer, no change, however long
    expect(way.next(null, true, 2_000)).toBeNull();
    expect(way.next(null, true, 60_000)).toBeNull();
    // back, the mark lapsed meanwhile: still paused until 12 s without it
    expect(way.next(false, true, 61_000)).toBeNull();
    expect(way.next(false, true, 68_000)).toBeNull();
    // the delivering worker's refresh set it again within that
    expect(way.next(true, true, 70_000)).toBeNull();
    expect(way.next(false, true, 80_000)).toBeNull();
    expect(way.next(false, true, 92_000)).toBe('resume');
    expect(way.next(false, false, 93_000)).toBeNull();
    // gone before an outage: the clock starts again after it (a review of the fix)
    const outage = new GiveWay(30_000);
    expect(outage.next(true, false, 0)).toBe('pause');
    expect(outage.next(false, true, 1_000)).toBeNull();
    expect(outage.next(null, true, 40_000)).toBeNull();
    expect(outage.next(false, true, 41_000)).toBeNull();
    expect(outage.next(false, true, 52_000)).toBeNull();
    expect(outage.next(false, true, 53_000)).toBe('resume');
  });
});
