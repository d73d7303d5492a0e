/** KeyedTurns: one task at a time per key, in order, a failure not holding the next; idle keys forgotten. */
import { describe, expect, it } from 'vitest';
import { KeyedTurns } from '../../src/actors/keyed-turns.js';

describe('KeyedTurns', () => {
  it('runs a key\'s tasks one after another even when one fails, other keys beside them, and forgets a key once idle', async () => {
    const turns = new KeyedTurns();
    const log: string[] = [];
    let release!: () => void;
    const first = turns.run('a', async () => {
      log.push('a1 start');
      await new Promise<void>((r) => (release = r));
      log.push('a1 end');
      throw new Error('a1 failed');
    });
    const second = turns.run('a', async () => void log.push('a2'));
    const other = turns.run('b', async () => void log.push('b1'));
    await other;
    await new Promise((r) => setImmediate(r));
    expect(log).toEqual(['a1 start', 'b1']);
    expect(turns.size).toBe(1);
    release();
    await expect(first).rejects.toThrow('a1 failed');
    await second;
    expect(log).toEqual(['a1 start', 'b1', 'a1 end', 'a2']);
    await new Promise((r) => setImmediate(r));
    expect(turns.size).toBe(0);
  });
});
