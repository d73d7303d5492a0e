/**
 * A recovery to a socket that stopped reading holds nothing while it waits (review "recovery", High):
 * it waited for the drain with the rest of its page (up to 500 events) in hand, and an `unsub` did
 * not wake it, so sub/unsub pairs on a socket kept under its limit held gigabytes for good. Now what
 * the socket could not take is read again after the drain, and the link lets the home's waiter go
 * when its subscription ends.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { decode } from 'msgpackr';
import { MemoryEventHistory } from '../../src/ports/history/history-memory.js';
import type { FeedSubscriber } from '../../src/actors/app-session.js';
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import { MemoryBus } from '../../src/ports/bus/bus-memory.js';
import { createLogger } from '../../src/log/logger.js';
import { encodeBus } from '../../src/protocol/codec.js';
import { withPosition } from '../../src/protocol/app-events.js';
import { subjects } from '../../proto/subjects.js';
import { HomeFeeds } from '../../src/transport/home-feeds.js';
import { UwsAppLink } from '../../src/transport/app-gateway.js';
import { WriteBatch } from '../../src/transport/write-batch.js';
import type { AppEventMessage } from '../../proto/app.js';

const wheels: TimerWheel[] = [];
afterEach(() => wheels.splice(0).forEach((w) => w.close()));
const stateEvent = (home: string, n: number): AppEventMessage => ({ op: 'evt', kind: 'state', home, hub: 'h1', device: 'd1', attrs: { n }, version: n, ts: n });
const offsetOf = (bytes: Uint8Array) => (decode(bytes) as { pos: { offset: number } }).pos.offset;

describe('a recovery to a socket that takes a few events at a time', () => {
  it('past what the socket may hold, reads again what it could not take, after each drain: every event once, in order, no page kept through a wait', async () => {
    const home = 'home-slow';
    const wheel = new TimerWheel();
    wheels.push(wheel);
    const bus = new MemoryBus(wheel, createLogger('silent'));
    const history = new MemoryEventHistory({ maxEvents: 1000, maxAgeMs: 3_600_000 });
    const feeds = new HomeFeeds(bus, { numSubscribers: () => 1, publish: () => true }, createLogger('silent'), { history, gapWaitMs: 0, historyRetryMs: [] });
    feeds.acquire(home);
    await feeds.catchUp(home, undefined, { open: true, answer() {}, send: () => 0, drained: async () => {}, reload() {}, join() {} });
    let epoch = '';
    for (let n = 1; n <= 30; n++) {
      const pos = await history.append(home, encodeBus(stateEvent(home, n)));
      epoch = pos.epoch;
      bus.publish(subjects.hubEvents(home, 'h1'), withPosition(encodeBus(stateEvent(home, n)), pos));
    }
    await expect.poll(() => feeds.position(home)?.offset).toBe(30);
    const got: number[] = [];
    const starts: number[] = [];
    let drain: (() => void) | null = null;
    const sub: FeedSubscriber = {
      open: true,
      answer() {},
      // the socket takes 7 events, then nothing until it drained
      send: (events, from) => {
        starts.push(from);
        const n = drain === null ? Math.min(7, events.length - from) : 0;
        for (let i = from; i < from + n; i++) got.push(offsetOf(events[i]!));
        return n;
      },
      drained: () => new Promise<void>((resolve) => (drain = resolve)),
      // the socket's recoveries hold all they may already
      keep: (bytes) => bytes <= 0,
      reload() {},
      join() {},
    };
    const done = feeds.catchUp(home, { epoch, offset: 0 }, sub);
    for (let i = 0; i < 10; i++) {
      await expect.poll(() => drain !== null || got.length === 30).toBe(true);
      if (drain === null) break;
      const d: () => void = drain;
      drain = null;
      d();
    }
    expect(await done).toBe(true);
    expect(got).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    // each send began a page read afresh: none was resumed from a page held through the wait
    expect(starts.every((s) => s === 0)).toBe(true);
  });
});

describe('an app link', () => {
  it('lets its recoveries hold at most its budget of unsent events, all together, and have it back', () => {
    const ws = { getUserData: () => ({ remote: '127.0.0.1' }), cork: (fn: () => void) => fn(), send: () => 0, getBufferedAmount: () => 0, end() {}, subscribe: () => true, unsubscribe: () => true };
    const link = new UwsAppLink(ws as never, 'msgpack', new WriteBatch(() => {}), 1_000, () => {});
    const a = link.subscriber('home-a', 1, () => true);
    const b = link.subscriber('home-b', 2, () => true);
    expect(a.keep!(600)).toBe(true);
    expect(b.keep!(600)).toBe(false);
    expect(b.keep!(400)).toBe(true);
    a.keep!(-600);
    expect(b.keep!(600)).toBe(true);
  });

  it('lets a recovery waiting for a drain go when its home is left (unsub, revocation); another home\'s keeps waiting', async () => {
    const ws = { getUserData: () => ({ remote: '127.0.0.1' }), cork: (fn: () => void) => fn(), send: () => 0, getBufferedAmount: () => 1 << 20, end() {}, subscribe: () => true, unsubscribe: () => true };
    const link = new UwsAppLink(ws as never, 'msgpack', new WriteBatch(() => {}), 1 << 19, () => {});
    let endedA = false;
    let endedB = false;
    void link.subscriber('home-a', 1, () => true).drained().then(() => (endedA = true));
    void link.subscriber('home-b', 2, () => true).drained().then(() => (endedB = true));
    link.leave('home-a');
    await new Promise((r) => setImmediate(r));
    expect(endedA).toBe(true);
    expect(endedB).toBe(false);
    link.closed();
    await new Promise((r) => setImmediate(r));
    expect(endedB).toBe(true);
  });
});
