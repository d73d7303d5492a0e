import { afterEach, describe, expect, it, vi } from 'vitest';
import { ShadowPacker, type Packable } from '../../src/actors/shadow-packer.js';
import { TimerWheel } from '../../src/actors/timer-wheel.js';

class Cache implements Packable {
  packs = 0;
  constructor(private readonly chars = 400) {}
  pack(): number {
    this.packs++;
    return this.chars;
  }
}

const wheels: TimerWheel[] = [];
afterEach(() => {
  wheels.splice(0).forEach((w) => w.close());
  vi.useRealTimers();
});

function packer(periodMs = 1_000): ShadowPacker {
  const wheel = new TimerWheel();
  wheels.push(wheel);
  return new ShadowPacker(wheel, periodMs);
}

describe('ShadowPacker', () => {
  it('packs a cache after a whole period without use, not one used since', () => {
    const p = packer();
    const idle = new Cache();
    const busy = new Cache();
    p.use(idle);
    p.use(busy);
    p.sweep(); // the period they were used in ends
    expect([idle.packs, busy.packs]).toEqual([0, 0]);
    p.use(busy);
    p.sweep();
    expect([idle.packs, busy.packs]).toEqual([1, 0]);
    expect(p.unpacked).toBe(1);
    p.sweep();
    expect([idle.packs, busy.packs]).toEqual([1, 1]);
    expect(p.unpacked).toBe(0);
    p.sweep();
    expect([idle.packs, busy.packs]).toEqual([1, 1]);
  });

  it('packs a node\'s thousands idle at once a few hundred a turn, leaving one used meanwhile', async () => {
    const p = packer();
    const caches = Array.from({ length: 1_200 }, () => new Cache());
    for (const c of caches) p.use(c);
    p.sweep();
    p.sweep();
    const packed = () => caches.filter((c) => c.packs === 1).length;
    const first = packed();
    expect(first).toBeGreaterThan(0);
    expect(first).toBeLessThan(caches.length);
    const last = caches.at(-1)!; // packed last (due in the order they were used)
    p.use(last);
    while (packed() + 1 < caches.length) await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(packed()).toBe(caches.length - 1);
    expect(last.packs).toBe(0);
    expect(caches.every((c) => c.packs <= 1)).toBe(true);
  });

  it('packs a few large caches a turn each: a hub at its shadow limit does not hold up the next turn with others', async () => {
    const p = packer();
    const large = Array.from({ length: 4 }, () => new Cache(200 * 1024));
    for (const c of large) p.use(c);
    p.sweep();
    p.sweep();
    expect(large.filter((c) => c.packs === 1)).toHaveLength(2); // 200 K + 200 K passes a turn's 256 K
    await new Promise((r) => setImmediate(r));
    expect(large.filter((c) => c.packs === 1)).toHaveLength(4);
  });

  it('never packs a cache forgotten (its session closed)', () => {
    const p = packer();
    const gone = new Cache();
    p.use(gone);
    p.sweep();
    p.forget(gone);
    p.sweep();
    p.sweep();
    expect(gone.packs).toBe(0);
    expect(p.unpacked).toBe(0);
  });

  it('never packs a cache forgotten while it waits for a later turn', async () => {
    const p = packer();
    const large = Array.from({ length: 4 }, () => new Cache(200 * 1024));
    for (const c of large) p.use(c);
    p.sweep();
    p.sweep();
    const waiting = large.filter((c) => c.packs === 0);
    expect(waiting).toHaveLength(2);
    p.forget(waiting[0]!);
    expect(p.unpacked).toBe(1);
    await new Promise((r) => setImmediate(r));
    expect(waiting[0]!.packs).toBe(0);
    expect(waiting[1]!.packs).toBe(1);
    expect(p.unpacked).toBe(0);
  });

  it('sweeps on the timer wheel while anything is unpacked, and stops waking it once all is packed', () => {
    vi.useFakeTimers({ toFake: ['Date', 'performance', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'], now: 1_700_000_000_000 });
    const p = packer(1_000);
    const cache = new Cache();
    p.use(cache);
    vi.advanceTimersByTime(1_500);
    expect(cache.packs).toBe(0);
    vi.advanceTimersByTime(1_000);
    expect(cache.packs).toBe(1);
    // nothing left unpacked: no further wake-up is scheduled
    expect(vi.getTimerCount()).toBe(0);
    p.use(cache);
    vi.advanceTimersByTime(2_500);
    expect(cache.packs).toBe(2);
  });
});
