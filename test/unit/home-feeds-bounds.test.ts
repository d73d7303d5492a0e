/**
 * HomeFeeds' per-feed bounds (`maxPending`): events held past a gap while the read that fills it
 * hangs, and events held before the feed knows its position. They read the private feed (it has no
 * accessor). Until a mutation review of 2026-12-06 no test held either bound.
 */
import { afterEach, expect, it } from 'vitest';
import { MemoryEventHistory } from '../../src/ports/history/history-memory.js';
import { withPosition } from '../../src/protocol/app-events.js';
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import { MemoryBus } from '../../src/ports/bus/bus-memory.js';
import { createLogger } from '../../src/log/logger.js';
import { encodeBus } from '../../src/protocol/codec.js';
import { HomeFeeds } from '../../src/transport/home-feeds.js';
import type { TemplatedApp } from '../../src/transport/uws.js';
import { subjects } from '../../proto/subjects.js';
import type { AppEventMessage } from '../../proto/app.js';

const wheels: TimerWheel[] = [];
afterEach(() => wheels.splice(0).forEach((w) => w.close()));
const ev = (home: string, n: number): AppEventMessage => ({ op: 'evt', kind: 'state', home, hub: 'h1', device: 'd1', attrs: { n }, version: n, ts: n });
const app = { numSubscribers: () => 1, publish: () => true } as unknown as TemplatedApp;

function setup(home: string) {
  const wheel = new TimerWheel();
  wheels.push(wheel);
  const bus = new MemoryBus(wheel, createLogger('silent'));
  const history = new MemoryEventHistory({ maxEvents: 10_000, maxAgeMs: 3_600_000 });
  const feeds = new HomeFeeds(bus, app, createLogger('silent'), { history, gapWaitMs: 0, maxPending: 4, historyRetryMs: [] });
  const feed = () => (feeds as unknown as { feeds: Map<string, { pending: Map<number, unknown>; early: unknown[] }> }).feeds.get(home)!;
  const stored = async (n: number) => withPosition(encodeBus(ev(home, n)), await history.append(home, encodeBus(ev(home, n))));
  return { bus, history, feeds, feed, stored, subject: subjects.hubEvents(home, 'h1') };
}

it('holds at most maxPending events past a gap while the history read that fills it hangs', async () => {
  const { bus, history, feeds, feed, stored, subject } = setup('home-p');
  feeds.acquire('home-p');
  await feeds.catchUp('home-p', undefined, { open: true, answer() {}, send: () => 0, drained: async () => {}, reload() {}, join() {} });
  const events = [];
  for (let n = 1; n <= 200; n++) events.push(await stored(n));
  history.read = () => new Promise(() => {}); // the gap fill never comes back
  for (const e of events.slice(1)) bus.publish(subject, e); // event 1 missing: a gap
  await new Promise((r) => setTimeout(r, 50));
  expect(feed().pending.size).toBeLessThanOrEqual(4);
});

it('holds at most maxPending events before the feed knows its position', async () => {
  const { bus, history, feeds, feed, stored, subject } = setup('home-s');
  const events = [];
  for (let n = 1; n <= 200; n++) events.push(await stored(n));
  history.position = () => new Promise(() => {}); // the start never learns the position
  feeds.acquire('home-s');
  for (const e of events) bus.publish(subject, e);
  await new Promise((r) => setTimeout(r, 50));
  expect(feed().early.length).toBeLessThanOrEqual(4);
});
