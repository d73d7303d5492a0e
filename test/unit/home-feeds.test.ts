import { afterEach, describe, expect, it } from 'vitest';
import type { FeedSubscriber } from '../../src/actors/app-session.js';
import { MemoryEventHistory } from '../../src/ports/history/history-memory.js';
import type { Position, SubResult } from '../../proto/app.js';
import { positionOf, withPosition } from '../../src/protocol/app-events.js';
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import { MemoryBus } from '../../src/ports/bus/bus-memory.js';
import { createLogger } from '../../src/log/logger.js';
import { decodeValue, encodeBus, encodeValue } from '../../src/protocol/codec.js';
import { HomeFeeds } from '../../src/transport/home-feeds.js';
import type { TemplatedApp } from '../../src/transport/uws.js';
import { subjects } from '../../proto/subjects.js';
import type { AppEventMessage } from '../../proto/app.js';

/** The two calls HomeFeeds makes on the uWS app, recorded. */
function fakeApp(subscribers: Record<string, number>) {
  const published: Array<{ topic: string; payload: unknown; bytes: Uint8Array | string }> = [];
  const app = {
    numSubscribers: (topic: string) => subscribers[topic] ?? 0,
    publish: (topic: string, message: Uint8Array | string) => {
      published.push({ topic, payload: typeof message === 'string' ? JSON.parse(message) : decodeValue(message), bytes: message });
      return true;
    },
  } as unknown as TemplatedApp;
  return { app, published };
}

const wheels: TimerWheel[] = [];
afterEach(() => wheels.splice(0).forEach((w) => w.close()));

/** HomeFeeds over a memory bus and a recording app with these subscriber counts per topic. */
function setup(subscribers: Record<string, number>) {
  const wheel = new TimerWheel();
  wheels.push(wheel);
  const bus = new MemoryBus(wheel, createLogger('silent'));
  const { app, published } = fakeApp(subscribers);
  return { bus, published, feeds: new HomeFeeds(bus, app, createLogger('silent')) };
}

describe('HomeFeeds', () => {
  it('holds one bus subscription per home while any app subscriber needs it (reference counted)', () => {
    const { bus, published, feeds } = setup({ 'j/home-1': 1, 'm/home-1': 1 });
    const event: AppEventMessage = { op: 'evt', kind: 'state', home: 'home-1', hub: 'h1', device: 'd1', attrs: { on: true }, version: 1, ts: 1 };

    feeds.acquire('home-1');
    feeds.acquire('home-1');
    expect(bus.subscriptionCount).toBe(1);
    bus.publish(subjects.hubEvents('home-1', 'h1'), encodeBus(event));
    expect(published.map((p) => p.topic).sort()).toEqual(['j/home-1', 'm/home-1']);
    for (const p of published) expect(p.payload).toEqual(event);

    feeds.release('home-1');
    expect(bus.subscriptionCount).toBe(1);
    feeds.release('home-1');
    expect(bus.subscriptionCount).toBe(0);
    expect(feeds.size).toBe(0);
    bus.publish(subjects.hubEvents('home-1', 'h1'), encodeBus(event));
    expect(published).toHaveLength(2);
  });

  it('encodes only for the encodings that have subscribers', () => {
    const { bus, published, feeds } = setup({ 'm/home-2': 3 });
    feeds.acquire('home-2');
    bus.publish(subjects.hubEvents('home-2', 'h9'), encodeBus({ op: 'evt', kind: 'online', home: 'home-2', hub: 'h9', node: 'n', ts: 1 }));
    expect(published.map((p) => p.topic)).toEqual(['m/home-2']);
  });

  it('counts an event as one frame per subscribed socket of either encoding', () => {
    const wheel = new TimerWheel();
    wheels.push(wheel);
    const bus = new MemoryBus(wheel, createLogger('silent'));
    const counted: Array<[string, number]> = [];
    const feeds = new HomeFeeds(bus, fakeApp({ 'm/home-5': 3, 'j/home-5': 2 }).app, createLogger('silent'), { framesOut: (op, n) => counted.push([op, n]) });
    feeds.acquire('home-5');
    bus.publish(subjects.hubEvents('home-5', 'h5'), encodeBus({ op: 'evt', kind: 'online', home: 'home-5', hub: 'h5', node: 'n', ts: 1 }));
    expect(counted).toEqual([['evt', 5]]);
  });

  it('passes the bus payload to msgpack subscribers byte for byte', () => {
    const { bus, published, feeds } = setup({ 'm/home-3': 1 });
    feeds.acquire('home-3');
    const bytes = encodeBus({ op: 'evt', kind: 'event', home: 'home-3', hub: 'h3', device: 'b1', event: 'press', ts: 2 });
    bus.publish(subjects.hubEvents('home-3', 'h3'), bytes);
    // the very buffer the bus delivered: not decoded and encoded again
    expect(published[0]!.bytes).toBe(bytes);
  });

  it('adds op "evt" to a bare event (a node of an older version, another service) for both encodings', () => {
    const { bus, published, feeds } = setup({ 'm/home-4': 1, 'j/home-4': 1 });
    feeds.acquire('home-4');
    const bare = { kind: 'offline', home: 'home-4', hub: 'h4', reason: '1006', ts: 3 };
    bus.publish(subjects.hubEvents('home-4', 'h4'), encodeValue(bare));
    expect(published.map((p) => p.payload)).toEqual([{ op: 'evt', ...bare }, { op: 'evt', ...bare }]);
  });
});

/** A home's state event number n, as a hub session publishes it (no position yet). */
const stateEvent = (home: string, n: number): AppEventMessage => ({ op: 'evt', kind: 'state', home, hub: 'h1', device: 'd1', attrs: { n }, version: n, ts: n });

/** HomeFeeds with a memory history over a memory bus; `offsets` lists the offsets the home's topic got, in order. */
function ordered(home: string, options: { maxRecovery?: number; maxPending?: number; jsonSubscribers?: number; historyRetryMs?: number[] } = {}) {
  const wheel = new TimerWheel();
  wheels.push(wheel);
  const bus = new MemoryBus(wheel, createLogger('silent'));
  const history = new MemoryEventHistory({ maxEvents: 1000, maxAgeMs: 3_600_000 });
  const { app, published } = fakeApp({ [`m/${home}`]: 1, [`j/${home}`]: options.jsonSubscribers ?? 0 });
  const feeds = new HomeFeeds(bus, app, createLogger('silent'), { history, gapWaitMs: 0, ...options });
  const subject = subjects.hubEvents(home, 'h1');
  /** appends event n to the history and returns its bus bytes (with the position), without publishing */
  const stored = async (n: number) => withPosition(encodeBus(stateEvent(home, n)), await history.append(home, encodeBus(stateEvent(home, n))));
  const offsets = () => published.filter((p) => (p.payload as { op: string }).op === 'evt').map((p) => positionOf(p.bytes as Uint8Array)!.offset);
  return { bus, history, feeds, published, subject, stored, offsets };
}

/** A subscriber recording its calls in order; `budget` events per send before it waits for a drain. */
function recordingSubscriber(budget = Infinity) {
  const calls: Array<['answer', SubResult] | ['send', number[]] | ['reload', string, Position] | ['join'] | ['drained']> = [];
  const sub: FeedSubscriber = {
    open: true,
    answer: (r) => void calls.push(['answer', r]),
    send: (events, from) => {
      const n = Math.min(budget, events.length - from);
      calls.push(['send', events.slice(from, from + n).map((e) => positionOf(e)!.offset)]);
      return n;
    },
    drained: async () => void calls.push(['drained']),
    reload: (reason, pos) => void calls.push(['reload', reason, pos]),
    join: () => void calls.push(['join']),
  };
  return { sub, calls, sent: () => calls.flatMap((c) => (c[0] === 'send' ? c[1] : [])) };
}

describe('HomeFeeds with a history: order, gaps, and joining at a position', () => {
  it('sends a home\'s events to the topic in offset order, each once, whatever order the bus brings them in', async () => {
    const { bus, feeds, subject, stored, offsets } = ordered('home-o');
    feeds.acquire('home-o');
    await feeds.catchUp('home-o', undefined, recordingSubscriber().sub);
    const [e1, e2, e3] = [await stored(1), await stored(2), await stored(3)];
    bus.publish(subject, e2);
    bus.publish(subject, e1);
    bus.publish(subject, e3);
    bus.publish(subject, e2);
    expect(offsets()).toEqual([1, 2, 3]);
  });

  it('fills a gap from the history when the missing event does not come', async () => {
    const { bus, feeds, subject, stored, offsets } = ordered('home-g');
    feeds.acquire('home-g');
    await feeds.catchUp('home-g', undefined, recordingSubscriber().sub);
    await stored(1);
    await stored(2);
    bus.publish(subject, await stored(3));
    expect(offsets()).toEqual([]);
    await expect.poll(offsets, { timeout: 10_000 }).toEqual([1, 2, 3]);
    // the late copies change nothing
    bus.publish(subject, withPosition(encodeBus(stateEvent('home-g', 1)), { epoch: feeds.position('home-g')!.epoch, offset: 1 }));
    expect(offsets()).toEqual([1, 2, 3]);
  });

  it('takes a gap that live events filled while it was read for filled: no reload, nothing twice', async () => {
    // two nodes publishing one home's events: 2 comes before 1, whose fill read is still out when 1 arrives
    const { bus, history, feeds, subject, stored, published, offsets } = ordered('home-r');
    feeds.acquire('home-r');
    await feeds.catchUp('home-r', undefined, recordingSubscriber().sub);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let reads = 0;
    const read = history.read.bind(history);
    history.read = async (...args) => {
      reads++;
      await gate;
      return read(...args);
    };
    const [e1, e2, e3] = [await stored(1), await stored(2), await stored(3)];
    bus.publish(subject, e2);
    await expect.poll(() => reads, { timeout: 10_000 }).toBe(1);
    bus.publish(subject, e1);
    expect(offsets()).toEqual([1, 2]);
    release();
    await new Promise((r) => setTimeout(r, 20));
    bus.publish(subject, e3);
    await new Promise((r) => setTimeout(r, 20));
    expect(published.map((p) => p.payload).filter((m) => (m as { op: string }).op === 'reload')).toEqual([]);
    expect(offsets()).toEqual([1, 2, 3]);
    expect(feeds.position('home-r')).toEqual({ epoch: expect.any(String), offset: 3 });
  });

  it('tries a gap\'s fill again while the history is away (a Redis restart), and fills it once it is back: no reload', async () => {
    const { bus, history, feeds, subject, stored, published, offsets } = ordered('home-a', { historyRetryMs: [1, 1, 1, 1] });
    feeds.acquire('home-a');
    await feeds.catchUp('home-a', undefined, recordingSubscriber().sub);
    let refused = 0;
    const read = history.read.bind(history);
    history.read = async (...args) => {
      if (refused < 3) {
        refused++;
        throw new Error("Stream isn't writeable and enableOfflineQueue options is false");
      }
      return read(...args);
    };
    await stored(1); // appended as Redis died: published without a position, so no live event fills 1
    bus.publish(subject, await stored(2));
    await expect.poll(offsets, { timeout: 10_000 }).toEqual([1, 2]);
    expect(refused).toBe(3);
    expect(published.filter((p) => (p.payload as { op: string }).op === 'reload')).toEqual([]);
  });

  it('tells the topic to reload (unavailable) when the history stays away past its retries, and goes on after the gap', async () => {
    const { bus, history, feeds, subject, stored, published, offsets } = ordered('home-u', { historyRetryMs: [1, 1] });
    feeds.acquire('home-u');
    await feeds.catchUp('home-u', undefined, recordingSubscriber().sub);
    let reads = 0;
    history.read = async () => {
      reads++;
      throw new Error('Connection is closed.');
    };
    await stored(1);
    bus.publish(subject, await stored(2));
    await expect.poll(offsets, { timeout: 10_000 }).toEqual([2]);
    expect(reads).toBe(3); // the first read and two retries
    expect(published.map((p) => p.payload).filter((m) => (m as { op: string }).op === 'reload')).toMatchObject([{ reason: 'unavailable' }]);
  });

  it('reads back events it could not hold past a gap, even when no later event comes', async () => {
    const { bus, feeds, subject, stored, offsets } = ordered('home-x', { maxPending: 2 });
    feeds.acquire('home-x');
    await feeds.catchUp('home-x', undefined, recordingSubscriber().sub);
    await stored(1);
    for (let n = 2; n <= 6; n++) bus.publish(subject, await stored(n));
    await expect.poll(offsets, { timeout: 10_000 }).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('tells the topic to reload when the history\'s epoch changes, then goes on in the new one', async () => {
    const { bus, feeds, subject, stored, published, offsets } = ordered('home-e');
    feeds.acquire('home-e');
    await feeds.catchUp('home-e', undefined, recordingSubscriber().sub);
    bus.publish(subject, await stored(1));
    bus.publish(subject, withPosition(encodeBus(stateEvent('home-e', 9)), { epoch: 'new-epoch', offset: 1 }));
    expect(published.map((p) => p.payload)).toEqual([
      expect.objectContaining({ op: 'evt', pos: expect.objectContaining({ offset: 1 }) }),
      { op: 'reload', home: 'home-e', reason: 'epoch_changed', pos: { epoch: 'new-epoch', offset: 0 } },
      expect.objectContaining({ op: 'evt', pos: { epoch: 'new-epoch', offset: 1 } }),
    ]);
    expect(offsets()).toEqual([1, 1]);
    expect(feeds.position('home-e')).toEqual({ epoch: 'new-epoch', offset: 1 });
  });

  it('tells JSON subscribers the same reload, as JSON text, and then the event', async () => {
    const { bus, feeds, subject, stored, published } = ordered('home-j', { jsonSubscribers: 2 });
    feeds.acquire('home-j');
    await feeds.catchUp('home-j', undefined, recordingSubscriber().sub);
    bus.publish(subject, await stored(1));
    bus.publish(subject, withPosition(encodeBus(stateEvent('home-j', 9)), { epoch: 'new-epoch', offset: 1 }));
    const json = published.filter((p) => p.topic === 'j/home-j');
    expect(json.every((p) => typeof p.bytes === 'string')).toBe(true);
    expect(json.map((p) => p.payload)).toEqual([
      { ...stateEvent('home-j', 1), pos: expect.objectContaining({ offset: 1 }) },
      { op: 'reload', home: 'home-j', reason: 'epoch_changed', pos: { epoch: 'new-epoch', offset: 0 } },
      { ...stateEvent('home-j', 9), pos: { epoch: 'new-epoch', offset: 1 } },
    ]);
    expect(published.filter((p) => p.topic === 'm/home-j').map((p) => p.payload)).toEqual(json.map((p) => p.payload));
  });

  it('drops what it held of the old epoch when the epoch changes, and late events of the old epoch after that', async () => {
    const { bus, feeds, subject, stored, published } = ordered('home-z');
    feeds.acquire('home-z');
    await feeds.catchUp('home-z', undefined, recordingSubscriber().sub);
    const old = feeds.position('home-z')!.epoch;
    const at = (epoch: string, offset: number) => withPosition(encodeBus(stateEvent('home-z', offset)), { epoch, offset });
    bus.publish(subject, await stored(1));
    await stored(2);
    bus.publish(subject, await stored(3)); // held: 2 is missing
    for (const offset of [1, 2, 3]) bus.publish(subject, at('new-epoch', offset));
    bus.publish(subject, at(old, 4)); // late, from the old history
    const seen = published.map((p) => p.payload as { op: string; pos: Position });
    expect(seen.map((m) => `${m.op} ${m.pos.epoch === old ? 'old' : 'new'}/${m.pos.offset}`)).toEqual(['evt old/1', 'reload new/0', 'evt new/1', 'evt new/2', 'evt new/3']);
  });

  it('joins a subscriber with since: answer, exactly the missed events, then the join', async () => {
    const { bus, feeds, subject, stored } = ordered('home-r');
    feeds.acquire('home-r');
    await feeds.catchUp('home-r', undefined, recordingSubscriber().sub);
    for (let n = 1; n <= 10; n++) bus.publish(subject, await stored(n));
    const epoch = feeds.position('home-r')!.epoch;
    const { sub, calls } = recordingSubscriber();
    await feeds.catchUp('home-r', { epoch, offset: 4 }, sub);
    expect(calls).toEqual([['answer', { home: 'home-r', pos: { epoch, offset: 4 }, recovered: true }], ['send', [5, 6, 7, 8, 9, 10]], ['join']]);
  });

  it('tells a subscriber recovering from before an event that went out without a position to reload (too_old): noted by the history, or seen by the feed during the catch-up', async () => {
    const { bus, history, feeds, subject, stored } = ordered('home-l');
    feeds.acquire('home-l');
    await feeds.catchUp('home-l', undefined, recordingSubscriber().sub);
    for (let n = 1; n <= 3; n++) bus.publish(subject, await stored(n));
    const epoch = feeds.position('home-l')!.epoch;
    // another node noted an event lost at offset 2 (the history's newest then)
    const position = history.position.bind(history);
    history.position = async (home) => ({ ...(await position(home)), lost: 2 });
    const before = recordingSubscriber();
    await feeds.catchUp('home-l', { epoch, offset: 2 }, before.sub);
    expect(before.calls).toEqual([['answer', { home: 'home-l', pos: { epoch, offset: 3 }, recovered: false, reason: 'too_old' }], ['join']]);
    const after = recordingSubscriber();
    await feeds.catchUp('home-l', { epoch, offset: 3 }, after.sub);
    expect(after.calls).toEqual([['answer', { home: 'home-l', pos: { epoch, offset: 3 }, recovered: true }], ['join']]);

    // one passes through the feed while a subscriber's catch-up reads the history
    history.position = position;
    const read = history.read.bind(history);
    history.read = async (...args) => {
      bus.publish(subject, encodeBus(stateEvent('home-l', 99)));
      return read(...args);
    };
    bus.publish(subject, await stored(4));
    const during = recordingSubscriber();
    await feeds.catchUp('home-l', { epoch, offset: 3 }, during.sub);
    expect(during.calls).toEqual([['answer', { home: 'home-l', pos: { epoch, offset: 4 }, recovered: false, reason: 'too_old' }], ['join']]);
  });

  it('paces a long recovery by the socket\'s buffer: sends, waits for a drain, sends on', async () => {
    const { bus, feeds, subject, stored } = ordered('home-p');
    feeds.acquire('home-p');
    await feeds.catchUp('home-p', undefined, recordingSubscriber().sub);
    for (let n = 1; n <= 7; n++) bus.publish(subject, await stored(n));
    const epoch = feeds.position('home-p')!.epoch;
    const { sub, calls, sent } = recordingSubscriber(3);
    await feeds.catchUp('home-p', { epoch, offset: 0 }, sub);
    expect(sent()).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(calls.filter((c) => c[0] === 'drained')).toHaveLength(2);
    expect(calls.at(-1)).toEqual(['join']);
  });

  it('answers recovered: false with the reason and the current position: another epoch, too far back, nothing kept', async () => {
    const { bus, feeds, subject, stored, history } = ordered('home-f', { maxRecovery: 5 });
    feeds.acquire('home-f');
    await feeds.catchUp('home-f', undefined, recordingSubscriber().sub);
    for (let n = 1; n <= 8; n++) bus.publish(subject, await stored(n));
    const pos = feeds.position('home-f')!;
    const answer = async (since: Position) => {
      const { sub, calls } = recordingSubscriber();
      await feeds.catchUp('home-f', since, sub);
      expect(calls.at(-1)).toEqual(['join']);
      return calls[0];
    };
    expect(await answer({ epoch: 'other', offset: 3 })).toEqual(['answer', { home: 'home-f', pos, recovered: false, reason: 'epoch_changed' }]);
    expect(await answer({ epoch: pos.epoch, offset: 1 })).toEqual(['answer', { home: 'home-f', pos, recovered: false, reason: 'too_old' }]);
    await history.remove('home-f');
    expect(await answer({ epoch: pos.epoch, offset: 6 })).toEqual(['answer', { home: 'home-f', pos, recovered: false, reason: 'too_old' }]);
    expect(await answer({ epoch: pos.epoch, offset: 8 })).toEqual(['answer', { home: 'home-f', pos, recovered: true }]);
  });

  it('brings the feed forward when the app has seen more than it (through another node): nothing twice', async () => {
    const { bus, feeds, subject, stored, offsets } = ordered('home-a');
    feeds.acquire('home-a');
    await feeds.catchUp('home-a', undefined, recordingSubscriber().sub);
    bus.publish(subject, await stored(1));
    await stored(2);
    await stored(3);
    const epoch = feeds.position('home-a')!.epoch;
    const { sub, calls } = recordingSubscriber();
    await feeds.catchUp('home-a', { epoch, offset: 3 }, sub);
    expect(calls).toEqual([['answer', { home: 'home-a', pos: { epoch, offset: 3 }, recovered: true }], ['join']]);
    expect(offsets()).toEqual([1, 2, 3]);
    // a position the history never gave
    const { sub: bad, calls: badCalls } = recordingSubscriber();
    await feeds.catchUp('home-a', { epoch, offset: 9 }, bad);
    expect(badCalls[0]).toEqual(['answer', { home: 'home-a', pos: { epoch, offset: 3 }, recovered: false, reason: 'epoch_changed' }]);
  });
});
