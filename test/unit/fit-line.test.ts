import { describe, expect, it } from 'vitest';
import { fitLine } from '../../load/lib/fit-line.js';

describe('fitLine', () => {
  it('finds an exact line, with no error on its slope', () => {
    const l = fitLine([0, 2000, 4000, 6000].map((x) => [x, 1_000_000 + 2048 * x] as const));
    expect(l.slope).toBeCloseTo(2048, 9);
    expect(l.intercept).toBeCloseTo(1_000_000, 3);
    expect(l.slopeSe).toBeCloseTo(0, 6);
  });

  it('gives the textbook slope and standard error for noisy points', () => {
    // y = 1 + 2x with residuals +1, -1, -1, +1: sxx 5, sse 4, se = sqrt(4 / 2 / 5)
    const l = fitLine([[0, 2], [1, 2], [2, 4], [3, 8]]);
    expect(l.slope).toBeCloseTo(2, 12);
    expect(l.intercept).toBeCloseTo(1, 12);
    expect(l.slopeSe).toBeCloseTo(Math.sqrt(0.4), 12);
  });

  it('has no error estimate from two points, and refuses fewer or a vertical line', () => {
    expect(fitLine([[0, 1], [10, 21]])).toEqual({ slope: 2, intercept: 1, slopeSe: NaN });
    expect(() => fitLine([[0, 1]])).toThrow(RangeError);
    expect(() => fitLine([[3, 1], [3, 2]])).toThrow(RangeError);
  });
});
