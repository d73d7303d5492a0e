import { describe, expect, it } from 'vitest';
import { LoopLag } from '../../src/transport/loop-lag.js';
import { UpgradeLimits } from '../../src/transport/upgrade-limits.js';
import { memoryPressure } from '../../src/transport/cgroup-memory.js';

describe('UpgradeLimits', () => {
  it('refuses with busy when the node is full, until a socket closes', () => {
    const l = new UpgradeLimits({ maxSockets: 2, maxPending: 10, ratePerSec: 100 });
    expect(l.tryStart()).toBeNull();
    l.finish(true);
    expect(l.tryStart()).toBeNull();
    l.finish(true);
    expect(l.tryStart()).toBe('full');
    expect(l.message('full')).toMatch(/maximum of 2 hub sessions/);
    l.socketClosed();
    expect(l.tryStart()).toBeNull();
  });

  it('a full node still takes a hub replacing its own session, a few at a time past the bound', () => {
    const l = new UpgradeLimits({ maxSockets: 1, maxPending: 1000, ratePerSec: 1000 });
    expect(l.tryStart()).toBeNull();
    l.finish(true);
    expect(l.tryStart()).toBe('full');
    for (let i = 0; i < 64; i++) expect(l.tryStart(true)).toBeNull();
    expect(l.tryStart(true)).toBe('full');
  });

  it('counts handshakes in flight towards the limits and frees refused ones', () => {
    const l = new UpgradeLimits({ maxSockets: 100, maxPending: 2, ratePerSec: 100 });
    expect(l.tryStart()).toBeNull();
    expect(l.tryStart()).toBeNull();
    expect(l.tryStart()).toBe('handshakes');
    expect(l.message('handshakes')).toMatch(/handshakes in progress/);
    l.finish(false); // a refused signature
    expect(l.tryStart()).toBeNull();
    expect(l.stats).toEqual({ sockets: 0, pending: 2 });
  });

  it('limits new sockets per second with a one-second burst', () => {
    let now = 0;
    const l = new UpgradeLimits({ maxSockets: 1000, maxPending: 1000, ratePerSec: 3 }, () => now);
    for (let i = 0; i < 3; i++) expect(l.tryStart()).toBeNull();
    expect(l.tryStart()).toBe('rate');
    expect(l.message('rate')).toMatch(/3\/s/);
    now = 400; // 1.2 tokens back
    expect(l.tryStart()).toBeNull();
    expect(l.tryStart()).toBe('rate');
    expect(l.refusals).toMatchObject({ rate: 2, full: 0 });
  });

  it('gives a token back for a handshake refused for its credentials, never past the burst', () => {
    const l = new UpgradeLimits({ maxSockets: 1000, maxPending: 1000, ratePerSec: 2 }, () => 0);
    expect(l.tryStart()).toBeNull();
    expect(l.tryStart()).toBeNull();
    l.finish(false);
    l.refund(); // the second was forged
    expect(l.tryStart()).toBeNull();
    expect(l.tryStart()).toBe('rate');
    l.refund();
    l.refund();
    l.refund();
    expect(l.tryStart()).toBeNull();
    expect(l.tryStart()).toBeNull();
    expect(l.tryStart()).toBe('rate');
  });

  it('refuses while the event loop runs later than its bound, and admits again once it catches up', () => {
    let lag = 0;
    const l = new UpgradeLimits({ maxSockets: 1000, maxPending: 1000, ratePerSec: 1000, maxLoopLagMs: 500, loopLagMs: () => lag });
    expect(l.tryStart()).toBeNull();
    lag = 1_800;
    expect(l.tryStart()).toBe('late');
    expect(l.message('late')).toMatch(/more than 500 ms late/);
    expect(l.refusals.late).toBe(1);
    expect(l.stats.pending).toBe(1);
    lag = 120;
    expect(l.tryStart()).toBeNull();
    // 0: the bound is off whatever the loop does
    const off = new UpgradeLimits({ maxSockets: 1000, maxPending: 1000, ratePerSec: 1000, maxLoopLagMs: 0, loopLagMs: () => 60_000 });
    expect(off.tryStart()).toBeNull();
  });

  it('refuses while the memory the kernel cannot reclaim stands above its fraction of the limit', () => {
    const heap = { heapUsed: 0, heapLimit: 1000 };
    let reading = { limit: 1000, unreclaimable: 800, ...heap };
    let pressed = 0;
    const l = new UpgradeLimits({ maxSockets: 1000, maxPending: 1000, ratePerSec: 1000, maxMemoryFraction: 0.85, memory: () => reading, memoryPressed: () => pressed++ });
    expect(l.tryStart()).toBeNull();
    expect(pressed).toBe(0);
    reading = { limit: 1000, unreclaimable: 851, ...heap };
    expect(l.tryStart()).toBe('memory');
    expect(l.message('memory')).toMatch(/memory limit/);
    expect(l.refusals.memory).toBe(1);
    expect(pressed).toBe(1);
    expect(l.stats.pending).toBe(1);
    // the garbage collected (or the pod's limit raised): admitted again
    reading = { limit: 2000, unreclaimable: 851, ...heap };
    expect(l.tryStart()).toBeNull();
    // no limit, or the bound off: never refused for memory
    reading = { limit: Infinity, unreclaimable: 1e12, ...heap };
    expect(l.tryStart()).toBeNull();
    const off = new UpgradeLimits({ maxSockets: 1000, maxPending: 1000, ratePerSec: 1000, maxMemoryFraction: 0, memory: () => ({ limit: 1, unreclaimable: 2, heapUsed: 2, heapLimit: 1 }) });
    expect(off.tryStart()).toBeNull();
  });

  it("refuses while the heap stands above its fraction of the heap's limit, the cgroup's memory far below its own (review \"memlimit\")", () => {
    // a 512 MiB pod: V8's heap limit 259 MiB, the cgroup's 435 MiB shedding line never reached before the heap ran out
    const MiB = 2 ** 20;
    let reading = { limit: 512 * MiB, unreclaimable: 300 * MiB, heapUsed: 200 * MiB, heapLimit: 259 * MiB };
    let pressed = 0;
    const l = new UpgradeLimits({ maxSockets: 1000, maxPending: 1000, ratePerSec: 1000, maxMemoryFraction: 0.85, memory: () => reading, memoryPressed: () => pressed++ });
    expect(l.tryStart()).toBeNull();
    reading = { ...reading, heapUsed: 225 * MiB };
    expect(l.tryStart()).toBe('memory');
    expect(pressed).toBe(1);
    expect(memoryPressure(reading, 0.85)).toBe('heap');
    expect(memoryPressure({ ...reading, unreclaimable: 450 * MiB }, 0.85)).toBe('cgroup');
    expect(memoryPressure({ ...reading, heapUsed: 100 * MiB }, 0.85)).toBeNull();
  });
});

describe('LoopLag', () => {
  it('reads a blocked event loop as late', async () => {
    const lag = new LoopLag(20, 200);
    try {
      await new Promise((r) => setTimeout(r, 60));
      const blockedUntil = performance.now() + 300;
      while (performance.now() < blockedUntil) {
        // the loop is blocked: the sampler cannot run
      }
      await new Promise((r) => setTimeout(r, 30));
      expect(lag.ms).toBeGreaterThanOrEqual(250);
      // the diagnose check's window saw the same stall, and a read starts a new window
      const w = lag.window();
      expect(w.maxMs).toBeGreaterThanOrEqual(250);
      expect(w.p99Ms).toBeGreaterThan(0);
      expect(w.windowS).toBeGreaterThanOrEqual(0.35);
      expect(lag.window().windowS).toBeLessThan(w.windowS);
    } finally {
      lag.close();
    }
  });
});
