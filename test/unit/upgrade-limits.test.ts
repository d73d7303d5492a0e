import { describe, expect, it } from 'vitest';
import { UpgradeLimits } from '../../src/transport/upgrade-limits.js';

describe('UpgradeLimits', () => {
  it('refuses with busy when the node is full, until a socket closes', () => {
    const l = new UpgradeLimits({ maxSockets: 2, maxPending: 10, ratePerSec: 100 });
    expect(l.tryStart()).toBeNull();
    l.finish(true);
    expect(l.tryStart()).toBeNull();
    l.finish(true);
    expect(l.tryStart()?.code).toBe('busy');
    l.socketClosed();
    expect(l.tryStart()).toBeNull();
  });

  it('counts handshakes in flight towards the limits and frees refused ones', () => {
    const l = new UpgradeLimits({ maxSockets: 100, maxPending: 2, ratePerSec: 100 });
    expect(l.tryStart()).toBeNull();
    expect(l.tryStart()).toBeNull();
    expect(l.tryStart()?.message).toMatch(/handshakes in progress/);
    l.finish(false); // a refused signature
    expect(l.tryStart()).toBeNull();
    expect(l.stats).toEqual({ sockets: 0, pending: 2 });
  });

  it('limits new sockets per second with a one-second burst', () => {
    let now = 0;
    const l = new UpgradeLimits({ maxSockets: 1000, maxPending: 1000, ratePerSec: 3 }, () => now);
    for (let i = 0; i < 3; i++) expect(l.tryStart()).toBeNull();
    expect(l.tryStart()?.message).toMatch(/3\/s/);
    now = 400; // 1.2 tokens back
    expect(l.tryStart()).toBeNull();
    expect(l.tryStart()?.code).toBe('busy');
  });
});
