/** The homes' newest positions a Redis history node keeps: a minute after their last append, at most a bound, in order of that append. */
import { describe, expect, it } from 'vitest';
import { KnownPositions } from '../../src/ports/history/known-positions.js';

describe('KnownPositions', () => {
  it('keeps each home until keepMs after its last append, and at most `most` homes, the oldest going first', () => {
    let now = 0;
    const known = new KnownPositions(60_000, 3, () => now);
    try {
      known.remember('a', 'e1', 1);
      now = 10_000;
      known.remember('b', 'e1', 5);
      now = 20_000;
      known.remember('a', 'e1', 2); // appended again: the newest now
      known.forget(15_000);
      expect([known.get('a'), known.get('b')]).toEqual([{ epoch: 'e1', offset: 2, at: 20_000 }, undefined]);
      for (const h of ['c', 'd', 'e']) known.remember(h, 'e2', 1);
      expect(known.size).toBe(3);
      expect(known.get('a')).toBeUndefined();
      expect(known.get('e')).toMatchObject({ epoch: 'e2', offset: 1 });
    } finally {
      known.close();
    }
  });
});
