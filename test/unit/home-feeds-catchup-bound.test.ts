/**
 * A history that lost its newest entries but kept its epoch (a Redis restart that replayed an AOF a
 * second short): the feed's gap fill skips the offsets it lacks, so the feed is past the history's
 * newest. An app recovering from below that reads nothing past the newest: it is told `too_old` and
 * joins. Until 2026-12-06 the catch-up read again for ever (a race review).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryEventHistory } from '../../src/ports/history/history-memory.js';
import type { FeedSubscriber } from '../../src/actors/app-session.js';
import { withPosition } from '../../src/protocol/app-events.js';
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import { MemoryBus } from '../../src/ports/bus/bus-memory.js';
import { createLogger } from '../../src/log/logger.js';
import { encodeBus } from '../../src/protocol/codec.js';
import { HomeFeeds } from '../../src/transport/home-feeds.js';
import { subjects } from '../../proto/subjects.js';
import type { AppEventMessage } from '../../proto/app.js';

const wheels: TimerWheel[] = [];
afterEach(() => wheels.splice(0).forEach((w) => w.close()));
const stateEvent = (home: string, n: number): AppEventMessage => ({ op: 'evt', kind: 'state', home, hub: 'h1', device: 'd1', attrs: { n }, version: n, ts: n });

describe('a recovery below a feed that moved past the history', () => {
  it('is told too_old once a read brings nothing, and joins the feed', async () => {
    const home = 'home-spin';
    const wheel = new TimerWheel();
    wheels.push(wheel);
    const bus = new MemoryBus(wheel, createLogger('silent'));
    const history = new MemoryEventHistory({ maxEvents: 1000, maxAgeMs: 3_600_000 });
    let reads = 0;
    let sub: FeedSubscriber | null = null;
    const read = history.read.bind(history);
    // a read that answers a turn later, as Redis does (a memory read would block the loop for good)
    history.read = (...args) => {
      // a catch-up reading for ever is ended here, so the test fails rather than hangs
      if (++reads > 50) (sub as { open: boolean }).open = false;
      return new Promise((r) => setImmediate(() => r(read(...args))));
    };
    const app = { numSubscribers: () => 1, publish: () => true };
    const feeds = new HomeFeeds(bus, app, createLogger('silent'), { history, gapWaitMs: 0, historyRetryMs: [] });
    feeds.acquire(home);
    await feeds.catchUp(home, undefined, { open: true, answer() {}, send: () => 0, drained: async () => {}, reload() {}, join() {} });
    const subject = subjects.hubEvents(home, 'h1');
    let epoch = '';
    for (const n of [1, 2, 3]) {
      const pos = await history.append(home, encodeBus(stateEvent(home, n)));
      epoch = pos.epoch;
      bus.publish(subject, withPosition(encodeBus(stateEvent(home, n)), pos));
    }
    // offsets 4 and 5 went out on the bus, then the history lost them (same epoch)
    bus.publish(subject, withPosition(encodeBus(stateEvent(home, 5)), { epoch, offset: 5 }));
    await new Promise((r) => setTimeout(r, 50));
    expect(feeds.position(home)?.offset).toBe(5);
    expect((await history.position(home)).offset).toBe(3);
    const calls: string[] = [];
    sub = {
      open: true,
      answer: (r) => void calls.push(`answer ${JSON.stringify(r)}`),
      send: (events, from) => (calls.push(`send ${events.length - from}`), events.length - from),
      drained: async () => {},
      reload: (reason) => void calls.push(`reload ${reason}`),
      join: () => void calls.push('join'),
    };
    reads = 0;
    await feeds.catchUp(home, { epoch, offset: 1 }, sub);
    expect(calls).toEqual([`answer ${JSON.stringify({ home, pos: { epoch, offset: 1 }, recovered: true })}`, 'send 2', 'reload too_old', 'join']);
    expect(reads).toBe(2);
  });
});
