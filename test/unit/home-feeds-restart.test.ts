/**
 * A home feed whose history position could not be read sends events unordered and retries after
 * 1 s. Events that arrive while the retry's read is out may be in the position it answers or not,
 * so the subscribers are told to reload at that position, and events after it follow in order.
 * Until 2026-12-06 the feed went on silently: an event went out twice, or never (a race review).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryEventHistory } from '../../src/ports/history/history-memory.js';
import type { HistoryPosition } from '../../src/ports/history/history.js';
import { withPosition } from '../../src/protocol/app-events.js';
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import { MemoryBus } from '../../src/ports/bus/bus-memory.js';
import { createLogger } from '../../src/log/logger.js';
import { decodeValue, encodeBus } from '../../src/protocol/codec.js';
import { HomeFeeds } from '../../src/transport/home-feeds.js';
import { subjects } from '../../proto/subjects.js';
import type { AppEventMessage } from '../../proto/app.js';

const wheels: TimerWheel[] = [];
afterEach(() => wheels.splice(0).forEach((w) => w.close()));

const stateEvent = (home: string, n: number): AppEventMessage => ({ op: 'evt', kind: 'state', home, hub: 'h1', device: 'd1', attrs: { n }, version: n, ts: n });

function setup(home: string) {
  const wheel = new TimerWheel();
  wheels.push(wheel);
  const bus = new MemoryBus(wheel, createLogger('silent'));
  const history = new MemoryEventHistory({ maxEvents: 1000, maxAgeMs: 3_600_000 });
  const real = history.position.bind(history);
  let calls = 0;
  /** the second position() call: resolved by the test */
  let release: ((answer: () => Promise<HistoryPosition>) => void) | null = null;
  history.position = (h: string) => {
    calls++;
    if (calls === 1) return Promise.reject(new Error('redis away'));
    return new Promise<HistoryPosition>((resolve, reject) => {
      release = (answer) => void answer().then(resolve, reject);
    });
  };
  const published: Uint8Array[] = [];
  const app = {
    numSubscribers: (topic: string) => (topic === `m/${home}` ? 1 : 0),
    publish: (_topic: string, message: Uint8Array) => (published.push(message), true),
  };
  const feeds = new HomeFeeds(bus, app, createLogger('silent'), { history, gapWaitMs: 0 });
  const subject = subjects.hubEvents(home, 'h1');
  const append = async (n: number) => withPosition(encodeBus(stateEvent(home, n)), await history.append(home, encodeBus(stateEvent(home, n))));
  // an event's n, or `reload@<offset>`
  const got = () =>
    published.map((b) => {
      const m = decodeValue(b) as { op: string; attrs?: { n: number }; pos?: { offset: number } };
      return m.op === 'reload' ? `reload@${m.pos!.offset}` : m.attrs!.n;
    });
  return { bus, feeds, subject, append, got, real, released: () => release };
}

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('a feed restarting after its history position was unreadable', () => {
  it('an event that went out unordered before the answer is delivered again after the reload, in order', async () => {
    const { bus, feeds, subject, append, got, real, released } = setup('home-dup');
    feeds.acquire('home-dup');
    await tick(10); // first position() failed: unordered
    for (const n of [1, 2]) bus.publish(subject, await append(n));
    await tick(1_100); // the retry's position() is in flight
    const at = await real('home-dup'); // what the history holds when the read is served: offset 2
    bus.publish(subject, await append(3)); // event 3 comes on the bus before the answer
    released()!(async () => at);
    await tick(10);
    bus.publish(subject, await append(4)); // the next event: a gap at 3, filled from the history
    await tick(50);
    expect(got()).toEqual([1, 2, 3, 'reload@2', 3, 4]);
  });

  it('an event in the answer whose bus message comes after it is covered by the reload', async () => {
    const { bus, feeds, subject, append, got, real, released } = setup('home-lost');
    feeds.acquire('home-lost');
    await tick(10);
    for (const n of [1, 2]) bus.publish(subject, await append(n));
    await tick(1_100);
    const e3 = await append(3); // appended (so the read sees offset 3) ...
    released()!(() => real('home-lost'));
    await tick(10);
    bus.publish(subject, e3); // ... its bus message arrives after the answer
    bus.publish(subject, await append(4));
    await tick(50);
    expect(got()).toEqual([1, 2, 'reload@3', 4]);
  });
});
