/**
 * Intervals are measured on the monotonic clock: a step of the wall clock (an NTP correction, a
 * VM resumed) neither fires every timer of a node at once nor stalls them, nor refuses new hubs
 * or keeps a cached hub record until the wall clock has caught up. Date and performance are both
 * faked; `vi.setSystemTime` steps Date alone, as such a step does.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Actor, type ActorSystem } from '../../src/actors/actor.js';
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import { GuessLimit } from '../../src/auth/guess-limit.js';
import { HelloRate } from '../../src/auth/hello-rate.js';
import { createLogger } from '../../src/log/logger.js';
import { failureLog } from '../../src/log/sampler.js';
import { CachingHubRegistry } from '../../src/ports/hub-registry/hub-registry-cache.js';
import { MemoryHubRegistry } from '../../src/ports/hub-registry/hub-registry-memory.js';
import { UpgradeLimits } from '../../src/transport/upgrade-limits.js';

const HOUR = 3_600_000;
const stepWallClock = (ms: number) => vi.setSystemTime(Date.now() + ms);

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['Date', 'performance', 'setTimeout', 'clearTimeout'], now: 1_700_000_000_000 });
});
afterEach(() => vi.useRealTimers());

describe('a step of the wall clock', () => {
  it('forward: the timer wheel fires only what is due on the monotonic clock', () => {
    const wheel = new TimerWheel();
    const fired: string[] = [];
    wheel.schedule(10, { onTimer: () => fired.push('soon') });
    wheel.schedule(1_000, { onTimer: () => fired.push('later') });
    stepWallClock(HOUR);
    vi.advanceTimersByTime(30);
    expect(fired).toEqual(['soon']);
    vi.advanceTimersByTime(1_000);
    expect(fired).toEqual(['soon', 'later']);
    wheel.close();
  });

  it('back: the timer wheel still fires on time', () => {
    const wheel = new TimerWheel();
    const fired: string[] = [];
    wheel.schedule(100, { onTimer: () => fired.push('due') });
    stepWallClock(-HOUR);
    vi.advanceTimersByTime(150);
    expect(fired).toEqual(['due']);
    wheel.close();
  });

  it('back: the connect budget refills as time passes', () => {
    const limits = new UpgradeLimits({ maxSockets: 1_000, maxPending: 1_000, ratePerSec: 5 });
    for (let i = 0; i < 5; i++) expect(limits.tryStart()).toBeNull();
    expect(limits.tryStart()).toBe('rate');
    stepWallClock(-HOUR);
    vi.advanceTimersByTime(1_000);
    expect(limits.tryStart()).toBeNull();
  });

  it('back: a cached hub record still expires after its ttl (a disabled hub is refused in time)', async () => {
    const inner = new MemoryHubRegistry();
    await inner.create({ hubId: 'h1', homeId: 'home', model: undefined, secret: 's', enabled: true, createdAt: 1 });
    const cache = new CachingHubRegistry(inner, 30_000);
    expect((await cache.lookup('h1'))?.enabled).toBe(true);
    await inner.setEnabled('h1', false);
    stepWallClock(-HOUR);
    vi.advanceTimersByTime(31_000);
    expect((await cache.lookup('h1'))?.enabled).toBe(false);
  });

  // until 2026-12-06 on the wall clock (a review of clocks): a hub that connected just before a
  // 4-minute step back was refused for 3 more, a 10 s admin lock lasted the step, and the access
  // lines of every route used before it went quiet for it
  it('back: a hub keeps its handshakes (TIER_HUB_HELLOS_PER_MIN)', () => {
    const rate = new HelloRate({ burst: 10, everyMs: 6_000 });
    expect(rate.take('hub-1')).toBe(true);
    stepWallClock(-240_000);
    expect(rate.take('hub-1')).toBe(true);
    expect(rate.waitMs('hub-1')).toBe(0);
  });

  it('back: an admin token lock ends after its window', () => {
    const guesses = new GuessLimit({ limit: 2, windowMs: 10_000 });
    guesses.wrong('10.0.0.1');
    guesses.wrong('10.0.0.1');
    expect(guesses.lockedFor('10.0.0.1')).toBe(10_000);
    stepWallClock(-HOUR);
    vi.advanceTimersByTime(10_000);
    expect(guesses.lockedFor('10.0.0.1')).toBe(0);
  });

  it('back: a log window ends after its length; the lines after it are written, the skipped ones summed up', () => {
    const lines: Array<Record<string, unknown>> = [];
    const log = createLogger('info', {}, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
    const sampled = failureLog(log, 'skipped lines', 'warn', 1, 10_000);
    sampled.write('redis', {}, 'redis away');
    sampled.write('redis', {}, 'redis away');
    stepWallClock(-HOUR);
    vi.advanceTimersByTime(10_000);
    sampled.write('redis', {}, 'redis away');
    sampled.close();
    expect(lines.map((l) => l.msg)).toEqual(['redis away', 'skipped lines', 'redis away']);
  });

  it("back: an actor's failures older than the supervisor's window are forgotten (one failure every 30 s does not stop it)", () => {
    class Failing extends Actor<{ type: 'fail' }> {
      readonly address = 'test:failing';
      constructor(protected readonly system: ActorSystem) {
        super();
      }
      protected receive(): void {
        throw new Error('failed');
      }
      protected onStop(): void {}
    }
    const timers = new TimerWheel();
    const actor = new Failing({ timers, log: createLogger('silent'), mailboxSize: 8, supervision: { maxFailures: 3, withinMs: 60_000 } });
    actor.tell({ type: 'fail' });
    stepWallClock(-HOUR);
    for (let i = 0; i < 5; i++) {
      vi.advanceTimersByTime(30_000);
      actor.tell({ type: 'fail' });
    }
    expect(actor.isStopped).toBe(false);
    timers.close();
  });
});
