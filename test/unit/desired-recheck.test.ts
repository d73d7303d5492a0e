/**
 * After a bus reconnect the node's sessions read their stored desired state back a slice at a time
 * (src/compose/desired-recheck.ts): all at once, 19,000 shadow reads together passed the Redis
 * client's timeout and closed most sessions (review diff19).
 */
import { afterEach, expect, it, vi } from 'vitest';
import { DESIRED_RECHECK } from '../../src/actors/hub-overflow.js';
import { desiredRecheck } from '../../src/compose/desired-recheck.js';

afterEach(() => vi.useRealTimers());

it('tells the sessions a slice per step; a reconnect during a pass starts it again', () => {
  vi.useFakeTimers();
  const told: number[] = [];
  const sessions = Array.from({ length: 1_200 }, (_, i) => ({ tell: (m: unknown) => (expect(m).toBe(DESIRED_RECHECK), told.push(i)) }));
  const recheck = desiredRecheck(() => sessions, 500, 250);
  recheck.reconnected();
  expect(told).toHaveLength(500);
  vi.advanceTimersByTime(249);
  expect(told).toHaveLength(500);
  vi.advanceTimersByTime(1);
  expect(told).toHaveLength(1_000);
  // the bus flapped: the pass starts over, the rest of the first is not told twice over
  recheck.reconnected();
  expect(told).toHaveLength(1_500);
  vi.advanceTimersByTime(10_000);
  expect(told).toHaveLength(2_200);
  expect(told.slice(1_000, 1_500)).toEqual(Array.from({ length: 500 }, (_, i) => i));
  recheck.reconnected();
  recheck.stop();
  vi.advanceTimersByTime(10_000);
  expect(told).toHaveLength(2_700);
});
