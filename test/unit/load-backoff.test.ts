import { afterEach, describe, expect, it, vi } from 'vitest';
import { backoffMs } from '../../load/lib/async.js';

/** The load tool's retry waits: full jitter under an exponential ceiling, capped. */
describe('backoffMs', () => {
  afterEach(() => vi.restoreAllMocks());

  it('doubles its ceiling per attempt from the base, up to the cap, and draws below it', () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.999);
    const ceilings = [0, 1, 2, 3, 4, 5, 6, 60].map((a) => Math.round(backoffMs(a, 1_000, 30_000)));
    expect(ceilings).toEqual([999, 1_998, 3_996, 7_992, 15_984, 29_970, 29_970, 29_970]);
    vi.spyOn(Math, 'random').mockReturnValue(0);
    expect(backoffMs(3, 1_000, 30_000)).toBe(0);
  });
});
