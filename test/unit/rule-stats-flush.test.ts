/**
 * Rule statistics reach the store batched over STATS_FLUSH_MS (250 ms), not at the end of every
 * turn: a home at its rule limit evaluated 45 times a second wrote a transaction per turn, an
 * eighth of the main thread (review "complexity"). A status read flushes first.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { RuleStats } from '../../src/rules/metrics.js';
import type { RuleRunDelta } from '../../src/ports/rule-store/rule-store.js';

afterEach(() => vi.useRealTimers());

describe('RuleStats flushing', () => {
  it('sends the counts of many turns in one call once 250 ms passed, and at once when asked', async () => {
    vi.useFakeTimers();
    const calls: RuleRunDelta[][] = [];
    const stats = new RuleStats({ addRunStats: async (d) => void calls.push([...d]) });
    const rule = { id: 'r1', homeId: 'h1' };
    for (let turn = 0; turn < 10; turn++) {
      stats.of(rule).evaluated++;
      await vi.advanceTimersByTimeAsync(20);
    }
    expect(calls).toEqual([]);
    await vi.advanceTimersByTimeAsync(60);
    expect(calls).toEqual([[expect.objectContaining({ ruleId: 'r1', counts: { evaluated: 10 } })]]);
    stats.of(rule).matched++;
    await stats.flush();
    expect(calls[1]).toEqual([expect.objectContaining({ ruleId: 'r1', counts: { matched: 1 } })]);
  });
});
