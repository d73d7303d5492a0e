/**
 * A home's shadow reads share a budget of the node's time a second (read-budget.ts): a costly
 * hub read in a loop is refused `rate_limited` once past it, other homes are not touched, cheap
 * reads are never counted, and homes whose bucket is full again are forgotten.
 */
import { describe, expect, it } from 'vitest';
import { HomeReadBudget } from '../../src/api/read-budget.js';

describe('HomeReadBudget', () => {
  it('refuses a home past its ms a second until the bucket refills; other homes and cheap reads go on', () => {
    let now = 0;
    const budget = new HomeReadBudget(100, 2, () => now);
    // 6 ms reads (a hub at its limits): 17 fill the second's 100 ms, the next is refused
    for (let i = 0; i < 17; i++) {
      budget.check('home-a');
      budget.spent('home-a', 6);
    }
    expect(() => budget.check('home-a')).toThrow(expect.objectContaining({ code: 'rate_limited', retryAfterMs: 1_000 }));
    budget.check('home-b');
    // reads under 2 ms are never tracked
    for (let i = 0; i < 1_000; i++) budget.spent('home-c', 1.9);
    budget.check('home-c');
    expect(budget.size).toBe(1);
    // 100 ms later 10 ms are back: the home reads again
    now += 100;
    budget.check('home-a');
    // a second on, the full bucket is forgotten at the next charge
    now += 2_000;
    budget.spent('home-d', 3);
    expect(budget.size).toBe(1);
  });
});
