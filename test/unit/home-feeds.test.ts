import { afterEach, describe, expect, it } from 'vitest';
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
