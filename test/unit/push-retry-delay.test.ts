/**
 * The wait before a push notification's next attempt: the exponential backoff, stretched (never
 * shortened) by what the sender's error asks for, within the 10-minute bound.
 */
import { describe, expect, it } from 'vitest';
import { MAX_RETRY_AFTER_MS, retryDelay } from '../../src/ports/push-queue/push-queue.js';

const asking = (retryAfterMs: unknown) => Object.assign(new Error('busy'), { retryAfterMs });

describe('retryDelay', () => {
  it('is the capped exponential backoff when the error asks for nothing', () => {
    expect([1, 2, 3, 4].map((n) => retryDelay(n, 1_000, 5_000, new Error('down')))).toEqual([1_000, 2_000, 4_000, 5_000]);
    expect(retryDelay(2, 1_000, 5_000, 'a string thrown')).toBe(2_000);
  });

  it('waits longer when asked, beyond the backoff cap too, but no longer than MAX_RETRY_AFTER_MS', () => {
    expect(retryDelay(1, 1_000, 5_000, asking(30_000))).toBe(30_000);
    expect(retryDelay(1, 1_000, 5_000, asking(86_400_000))).toBe(MAX_RETRY_AFTER_MS);
  });

  it('never waits less than the backoff, and ignores an ask that is not a number of ms', () => {
    expect(retryDelay(3, 1_000, 60_000, asking(0))).toBe(4_000);
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY, '30000', null]) expect(retryDelay(1, 1_000, 60_000, asking(bad)), String(bad)).toBe(1_000);
  });
});
