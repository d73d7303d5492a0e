/**
 * Events published while this node's bus was away (a NATS blip, a slow-consumer cut) never reach
 * it: after the reconnect each home feed reads where its history stands and fills the gap, rather
 * than wait for the home's next event, which a quiet home may not send for hours. Until 2026-12-07
 * the apps of that node stayed on the old state without a word (review "slowreaders").
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryEventHistory } from '../../src/ports/history/history-memory.js';
import { withPosition } from '../../src/protocol/app-events.js';
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import { MemoryBus } from '../../src/ports/bus/bus-memory.js';
import type { BusLink } from '../../src/ports/bus/bus.js';
import { createLogger } from '../../src/log/logger.js';
import { decodeValue, encodeBus } from '../../src/protocol/codec.js';
import { HomeFeeds } from '../../src/transport/home-feeds.js';
import { subjects } from '../../proto/subjects.js';
import type { AppEventMessage } from '../../proto/app.js';

const wheels: TimerWheel[] = [];
afterEach(() => wheels.splice(0).forEach((w) => w.close()));

const stateEvent = (home: string, n: number): AppEventMessage => ({ op: 'evt', kind: 'state', home, hub: 'h1', device: 'd1', attrs: { n }, version: n, ts: n });
const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

function setup(home: string, maxEvents = 1000) {
  const wheel = new TimerWheel();
  wheels.push(wheel);
  const bus = new MemoryBus(wheel, createLogger('silent'));
  const history = new MemoryEventHistory({ maxEvents, maxAgeMs: 3_600_000 });
  const listeners: Array<(downSince: number) => void> = [];
  const link: BusLink = { connected: true, onReconnect: (l) => (listeners.push(l), { unsubscribe: () => {} }) };
  const published: Uint8Array[] = [];
  const app = { numSubscribers: (topic: string) => (topic === `m/${home}` ? 1 : 0), publish: (_t: string, m: Uint8Array) => (published.push(m), true) };
  const feeds = new HomeFeeds(bus, app, createLogger('silent'), { history, gapWaitMs: 0, link, historyRetryMs: [10, 10, 10] });
  const subject = subjects.hubEvents(home, 'h1');
  /** an event stored in the history; on the bus too unless `missed` (published while this node's bus was away) */
  const event = async (n: number, missed = false) => {
    const data = encodeBus(stateEvent(home, n));
    const placed = withPosition(data, await history.append(home, data));
    if (!missed) bus.publish(subject, placed);
  };
  const got = () =>
    published.map((b) => {
      const m = decodeValue(b) as { op: string; attrs?: { n: number }; reason?: string };
      return m.op === 'reload' ? `reload:${m.reason}` : m.attrs!.n;
    });
  return { feeds, event, got, reconnected: () => listeners.forEach((l) => l(Date.now() - 1_000)), history };
}

describe('home feeds after the bus reconnected', () => {
  it('deliver the events published while it was away, in order, before the next live one', async () => {
    const { feeds, event, got, reconnected } = setup('home-quiet');
    feeds.acquire('home-quiet');
    await tick(10);
    for (const n of [1, 2]) await event(n);
    await tick(10);
    for (const n of [3, 4, 5]) await event(n, true);
    await tick(20);
    // the home goes quiet: without the reconnect's catch-up nothing more arrives
    expect(got()).toEqual([1, 2]);
    reconnected();
    await tick(20);
    expect(got()).toEqual([1, 2, 3, 4, 5]);
    await event(6);
    await tick(10);
    expect(got()).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('tell the subscribers to reload when what was missed is past the history, and read nothing when nothing was missed', async () => {
    const { feeds, event, got, reconnected } = setup('home-busy', 3);
    feeds.acquire('home-busy');
    await tick(10);
    await event(1);
    await tick(10);
    reconnected();
    await tick(20);
    expect(got()).toEqual([1]);
    for (const n of [2, 3, 4, 5, 6]) await event(n, true);
    reconnected();
    await tick(20);
    expect(got()).toEqual([1, 'reload:too_old']);
  });

  it('read the position again while the history is away too (NATS and Redis back together), and tell the subscribers to reload if it stays away (review "diff13")', async () => {
    const { feeds, event, got, reconnected, history } = setup('home-both');
    feeds.acquire('home-both');
    await tick(10);
    await event(1);
    await tick(10);
    for (const n of [2, 3]) await event(n, true);
    const real = history.position.bind(history);
    let failures = 2;
    history.position = (h: string) => (failures-- > 0 ? Promise.reject(new Error('redis away')) : real(h));
    reconnected();
    await tick(80);
    expect(got()).toEqual([1, 2, 3]);
    // away for good: the subscribers reload rather than sit on what they have
    await event(4, true);
    history.position = () => Promise.reject(new Error('redis away'));
    reconnected();
    await tick(80);
    expect(got()).toEqual([1, 2, 3, 'reload:unavailable']);
  });
});
