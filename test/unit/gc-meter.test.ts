import { describe, expect, it } from 'vitest';
import { gcMeter } from '../../bench/lib/gc-meter.js';

/** Allocates `n` small objects; keeps every `keepEvery`-th (0: none) in `kept`. */
function churn(n: number, keepEvery: number, kept: object[]): void {
  let sink: object | undefined;
  for (let i = 0; i < n; i++) {
    const o = { i, a: [i, i + 1, i + 2], s: `x${i}` };
    if (keepEvery > 0 && i % keepEvery === 0) kept.push(o);
    sink = o;
  }
  if (sink === undefined) throw new Error('unreachable');
}

describe('gcMeter (bench/lib/gc-meter.ts): the collector per operation', () => {
  it('counts scavenges, and promoted bytes for what outlives them, next to none for garbage', () => {
    const N = 400_000;
    // what the test worker itself has yet to promote (its modules, vitest's state) goes first
    churn(N, 0, []);
    const garbage = gcMeter();
    churn(N, 0, []);
    const dead = garbage(N);

    const kept: object[] = [];
    const retained = gcMeter();
    churn(N, 2, kept); // half the objects stay reachable across every scavenge
    const alive = retained(N);
    expect(kept.length).toBe(N / 2);

    expect(dead.scavenges).toBeGreaterThan(0);
    expect(alive.scavenges).toBeGreaterThan(0);
    expect(alive.scavengeUs).toBeGreaterThan(0);
    // a kept object with its array and string is over 100 B; half kept is tens of bytes per op
    expect(alive.promotedBytes).toBeGreaterThan(10);
    expect(alive.promotedBytes).toBeGreaterThan(5 * dead.promotedBytes);
  });
});
