/**
 * After a bus reconnect the node's sessions read their stored desired state back a slice at a time
 * (src/compose/desired-recheck.ts): all at once, 19,000 shadow reads together passed the Redis
 * client's timeout and closed most sessions (review diff19).
 */
import { afterEach, expect, it, vi } from 'vitest';
import { DESIRED_RECHECK } from '../../src/actors/hub-overflow.js';
import { desiredRecheck } from '../../src/compose/desired-recheck.js';

afterEach(() => vi.useRealTimers());

it('tells the sessions a slice per step; a reconnect during a pass has one more pass follow it, never a restart (review diff20)', () => {
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
  // the bus flaps twice during the pass: it goes on, and one more pass follows it
  recheck.reconnected();
  recheck.reconnected();
  expect(told).toHaveLength(1_000);
  vi.advanceTimersByTime(250);
  expect(told).toHaveLength(1_200);
  vi.advanceTimersByTime(10_000);
  expect(told).toHaveLength(2_400);
  expect(told.slice(1_200)).toEqual(Array.from({ length: 1_200 }, (_, i) => i));
  // at rest: a reconnect starts a pass at once; stop ends it
  recheck.reconnected();
  recheck.stop();
  vi.advanceTimersByTime(10_000);
  expect(told).toHaveLength(2_900);
});
