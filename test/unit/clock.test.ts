import { describe, expect, it } from 'vitest';
import { isSmi } from '../helpers/is-smi.js';
import { CLOCK_ORIGIN, sinceOrigin } from '../../src/actors/clock.js';

describe('sinceOrigin', () => {
  it('gives ms since the origin, exactly, for whole, fractional, early and far times', () => {
    expect(sinceOrigin(CLOCK_ORIGIN)).toBe(0);
    expect(sinceOrigin(CLOCK_ORIGIN + 1_234)).toBe(1_234);
    expect(sinceOrigin(CLOCK_ORIGIN + 0.5)).toBe(0.5);
    expect(sinceOrigin(CLOCK_ORIGIN - 10)).toBe(-10);
    // past 24 days (2^31 ms), and a clock of 1970 in a test
    expect(sinceOrigin(CLOCK_ORIGIN + 2 ** 31 + 7)).toBe(2 ** 31 + 7);
    expect(sinceOrigin(0)).toBe(-CLOCK_ORIGIN);
  });

  it('answers a whole time within 24 days as a small integer, whatever number Date.now() gave', () => {
    const now = Date.now();
    // what the subtraction alone gives: a heap number (the reason for sinceOrigin)
    expect(isSmi(now - CLOCK_ORIGIN + 0.5 - 0.5)).toBe(false);
    expect(isSmi(sinceOrigin(now))).toBe(true);
    expect(isSmi(sinceOrigin(CLOCK_ORIGIN + 2 ** 31 - 1))).toBe(true);
    expect(isSmi(sinceOrigin(CLOCK_ORIGIN + 2 ** 31))).toBe(false);
  });
});
