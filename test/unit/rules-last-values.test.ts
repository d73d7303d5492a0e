import { describe, expect, it } from 'vitest';
import type { AttrValue } from '../../proto/frames.js';
import { LastValues } from '../../src/rules/last-values.js';

describe('LastValues', () => {
  it('answers the value before each report of a key, null included, and nothing for a first one', () => {
    const v = new LastValues();
    expect(v.swap('h/d/on', true)).toBeUndefined();
    expect(v.swap('h/d/on', null)).toBe(true);
    expect(v.swap('h/d/on', false)).toBeNull();
    expect(v.swap('h/__proto__/toString', 1)).toBeUndefined();
    expect(v.swap('h/__proto__/toString', 2)).toBe(1);
  });

  it('keeps at most its bound however many device ids a hub invents, forgetting the least recently reported', () => {
    const v = new LastValues(100);
    v.swap('h/kept/t', 20);
    const keptBefore: Array<AttrValue | undefined> = [];
    for (let i = 0; i < 10_000; i++) {
      v.swap(`h/dev-${i}/t`, i);
      // a device reporting all along stays known
      if (i % 50 === 0) keptBefore.push(v.swap('h/kept/t', 21));
    }
    expect(keptBefore.filter((x) => x === undefined)).toEqual([]);
    expect(v.size).toBe(100);
    expect(v.swap('h/kept/t', 22)).toBe(21);
    expect(v.swap('h/dev-9999/t', 0)).toBe(9999);
    // forgotten: taken as a first report
    expect(v.swap('h/dev-0/t', 0)).toBeUndefined();
  });
});
