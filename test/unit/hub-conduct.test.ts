/** A hub session's malformed frames: ten close it, one a minute is forgiven (a leaky bucket in one small integer). */
import { describe, expect, it } from 'vitest';
import { badFrameCount, countBadFrame, MAX_BAD_FRAMES } from '../../src/transport/hub-conduct.js';

const MINUTE = 60_000;

/** The counts after a malformed frame at each of `times` (ms of the process clock), from none. */
function counts(times: number[]): number[] {
  let state = 0;
  return times.map((t) => badFrameCount((state = countBadFrame(state, t))));
}

describe('countBadFrame', () => {
  it('counts a burst: the tenth within a minute reaches the limit', () => {
    const burst = Array.from({ length: MAX_BAD_FRAMES }, (_, i) => 5 * MINUTE + i * 1000);
    expect(counts(burst)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('forgives one a minute: a rare mismatch never adds up, however long the session lives', () => {
    // one bad frame an hour for a month, then one a minute for a day
    const hourly = Array.from({ length: 24 * 30 }, (_, h) => 1_000 + h * 60 * MINUTE);
    const start = 1_000 + 24 * 30 * 60 * MINUTE;
    const perMinute = Array.from({ length: 1440 }, (_, i) => start + i * MINUTE);
    expect(Math.max(...counts([...hourly, ...perMinute]))).toBe(1);
  });

  it('two a minute add up to the limit; half a minute after a burst forgives nothing, a whole one forgives one', () => {
    const twice = Array.from({ length: 40 }, (_, i) => 10 * MINUTE + Math.floor(i / 2) * MINUTE + (i % 2) * 1000);
    expect(counts(twice)).toContain(MAX_BAD_FRAMES);
    const burst = Array.from({ length: 5 }, () => 100 * MINUTE);
    expect(counts([...burst, 100.5 * MINUTE]).at(-1)).toBe(6);
    expect(counts([...burst, 101 * MINUTE]).at(-1)).toBe(5);
  });

  it('counts a burst across a minute boundary whole: ten close (review diff8)', () => {
    const burst = Array.from({ length: MAX_BAD_FRAMES }, (_, i) => 60 * MINUTE - 4_500 + i * 1000);
    expect(counts(burst).at(-1)).toBe(MAX_BAD_FRAMES);
  });

  it('stays a small integer (unboxed in V8) for ten years of process time', () => {
    const state = countBadFrame(countBadFrame(0, 0), 10 * 365 * 24 * 60 * MINUTE);
    expect(state).toBeLessThan(2 ** 30);
    expect(badFrameCount(state)).toBe(1);
  });
});
