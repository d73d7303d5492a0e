import { afterEach, describe, expect, it } from 'vitest';
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import { MemoryBus } from '../../src/ports/bus/bus-memory.js';
import { createLogger } from '../../src/log/logger.js';
import { decodeValue, encode } from '../../src/protocol/codec.js';
import { HomeFeeds } from '../../src/transport/app-gateway.js';
import type { TemplatedApp } from '../../src/transport/uws.js';
import { subjects } from '../../proto/subjects.js';

/** The two calls HomeFeeds makes on the uWS app, recorded. */
function fakeApp(subscribers: Record<string, number>) {
  const published: Array<{ topic: string; payload: unknown }> = [];
  const app = {
    numSubscribers: (topic: string) => subscribers[topic] ?? 0,
    publish: (topic: string, message: Uint8Array | string) => {
      published.push({ topic, payload: typeof message === 'string' ? JSON.parse(message) : decodeValue(message) });
      return true;
    },
  } as unknown as TemplatedApp;
  return { app, published };
}

const wheels: TimerWheel[] = [];
afterEach(() => wheels.splice(0).forEach((w) => w.close()));

describe('HomeFeeds', () => {
  it('holds one bus subscription per home while any app subscriber needs it (reference counted)', () => {
    const wheel = new TimerWheel();
    wheels.push(wheel);
    const bus = new MemoryBus(wheel, createLogger('silent'));
    const { app, published } = fakeApp({ 'j/home-1': 1, 'm/home-1': 1 });
    const feeds = new HomeFeeds(bus, app, createLogger('silent'));
    const event = { kind: 'state', home: 'home-1', hub: 'h1', device: 'd1', attrs: { on: true }, version: 1, ts: 1 };

    feeds.acquire('home-1');
    feeds.acquire('home-1');
    expect(bus.subscriptionCount).toBe(1);
    bus.publish(subjects.hubEvents('home-1', 'h1'), encode(event));
    expect(published.map((p) => p.topic).sort()).toEqual(['j/home-1', 'm/home-1']);
    expect(published[0]!.payload).toEqual({ op: 'evt', ...event });

    feeds.release('home-1');
    expect(bus.subscriptionCount).toBe(1);
    feeds.release('home-1');
    expect(bus.subscriptionCount).toBe(0);
    expect(feeds.size).toBe(0);
    bus.publish(subjects.hubEvents('home-1', 'h1'), encode(event));
    expect(published).toHaveLength(2);
  });

  it('encodes only for the encodings that have subscribers', () => {
    const wheel = new TimerWheel();
    wheels.push(wheel);
    const bus = new MemoryBus(wheel, createLogger('silent'));
    const { app, published } = fakeApp({ 'm/home-2': 3 });
    const feeds = new HomeFeeds(bus, app, createLogger('silent'));
    feeds.acquire('home-2');
    bus.publish(subjects.hubEvents('home-2', 'h9'), encode({ kind: 'online', home: 'home-2', hub: 'h9', node: 'n', ts: 1 }));
    expect(published.map((p) => p.topic)).toEqual(['m/home-2']);
  });
});
