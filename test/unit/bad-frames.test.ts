/** A hub session's malformed frames: ten close it, one a minute is forgiven (a leaky bucket). */
import { describe, expect, it } from 'vitest';
import { BAD_FRAME_LEAK_S, countBadFrame, MAX_BAD_FRAMES, type BadFrameCount } from '../../src/transport/bad-frames.js';

const fresh = (): BadFrameCount => ({ badFrames: 0, badAtS: 0 });

describe('countBadFrame', () => {
  it('counts a burst: the tenth within a minute reaches the limit', () => {
    const link = fresh();
    const counts = Array.from({ length: MAX_BAD_FRAMES }, (_, i) => countBadFrame(link, 5_000 + i));
    expect(counts).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('forgives one per period: a rare mismatch never adds up, however long the session lives', () => {
    const link = fresh();
    let max = 0;
    // one bad frame an hour for a month, then one a period for a day
    for (let h = 0; h < 24 * 30; h++) max = Math.max(max, countBadFrame(link, 1_000 + h * 3600));
    const start = 1_000 + 24 * 30 * 3600;
    for (let i = 0; i < 1440; i++) max = Math.max(max, countBadFrame(link, start + i * BAD_FRAME_LEAK_S));
    expect(max).toBe(1);
  });

  it('keeps the part of a period not spent: two a period add up, and reach the limit', () => {
    const link = fresh();
    let n = 0;
    let t = 10_000;
    for (let i = 0; n < MAX_BAD_FRAMES && i < 100; i++) {
      n = countBadFrame(link, t);
      n = countBadFrame(link, t + 1);
      t += BAD_FRAME_LEAK_S;
    }
    expect(n).toBe(MAX_BAD_FRAMES);
    // half a period after a burst forgives nothing; a whole one forgives one
    const b = fresh();
    for (let i = 0; i < 5; i++) countBadFrame(b, 100);
    expect(countBadFrame(b, 100 + BAD_FRAME_LEAK_S / 2)).toBe(6);
    expect(countBadFrame(b, 100 + BAD_FRAME_LEAK_S)).toBe(6);
  });
});
