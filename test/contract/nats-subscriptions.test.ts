import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log/logger.js';
import type { BusMessage, BusSubscription } from '../../src/ports/bus/bus.js';
import { subscriptions, type Subscribe, type SubscriptionHost } from '../../src/ports/bus/nats-subscriptions.js';
import { startNats, uniquePrefix, type Backend } from '../../load/harness/index.js';

/**
 * The bus's own subscription objects on the NATS client's protocol handler (nats-subscriptions.ts):
 * what the client asks of them, checked against the installed client, so that an upgrade which
 * changes the handler fails here rather than losing a hub's commands.
 */

/** The parts of the client's protocol handler these tests look at. */
interface Protocol {
  subscriptions: { get(sid: number): unknown; size(): number };
}

let nats: Backend;
beforeAll(async () => {
  nats = await startNats();
});
afterAll(async () => {
  await nats?.stop();
});

const opened: NatsConnection[] = [];
afterEach(async () => {
  if (!nats.running) await nats.restart();
  await Promise.all(opened.splice(0).map((nc) => (nc.isClosed() ? undefined : nc.close())));
});

async function client(): Promise<NatsConnection> {
  const nc = await connect({ servers: nats.url, reconnectTimeWait: 50, maxReconnectAttempts: -1 });
  opened.push(nc);
  return nc;
}

const host = (warnings: string[] = []): SubscriptionHost => {
  const log = createLogger('silent');
  log.warn = ((msg: string) => void warnings.push(msg)) as typeof log.warn;
  return { log, isClosed: () => false, message: (msg) => ({ subject: msg.subject, data: msg.data, replyTo: undefined, respond: () => false }) };
};

/** Retries `check` (an assertion) every 10 ms until it passes; the test's timeout is the ceiling. */
async function eventually(check: () => void): Promise<void> {
  for (;;) {
    try {
      check();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

const protocolOf = (nc: NatsConnection): Protocol => (nc as unknown as { protocol: Protocol }).protocol;
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

/** Subscribes `n` subjects `${p}.i` and collects what each receives, in order. */
function collect(subscribe: Subscribe, p: string, n: number): { subs: BusSubscription[]; got: string[][] } {
  const got = Array.from({ length: n }, (): string[] => []);
  const subs = got.map((into, i) => subscribe(`${p}.${i}`, undefined, (m: BusMessage) => void into.push(dec(m.data))));
  return { subs, got };
}

describe('NATS subscriptions of the bus', () => {
  it('are objects of the bus registered on the client\'s protocol handler, not the client\'s own', async () => {
    const nc = await client();
    const warnings: string[] = [];
    const subscribe = subscriptions(nc, host(warnings));
    const p = uniquePrefix().slice(0, -1);
    const { subs, got } = collect(subscribe, p, 3);
    const protocol = protocolOf(nc);
    for (const sub of subs) {
      const sid = (sub as unknown as { sid: number }).sid;
      expect(sid).toBeGreaterThan(0);
      expect(protocol.subscriptions.get(sid)).toBe(sub);
    }
    expect(warnings).toEqual([]);

    const pub = await client();
    for (let i = 0; i < 3; i++) for (let k = 0; k < 5; k++) pub.publish(`${p}.${i}`, enc(`${i}:${k}`));
    await eventually(() => expect(got).toEqual([0, 1, 2].map((i) => [0, 1, 2, 3, 4].map((k) => `${i}:${k}`))));
    expect((subs[0] as unknown as { received: number }).received).toBe(5);
  });

  it('unsubscribe drops it from the client and the server: no more messages, no responders', async () => {
    const nc = await client();
    const p = uniquePrefix().slice(0, -1);
    const { subs, got } = collect(subscriptions(nc, host()), p, 2);
    const sid = (subs[0] as unknown as { sid: number }).sid;
    await nc.flush();
    subs[0]!.unsubscribe();
    subs[0]!.unsubscribe(); // twice is harmless
    expect(protocolOf(nc).subscriptions.get(sid)).toBeUndefined();
    await nc.flush();

    const pub = await client();
    pub.publish(`${p}.0`, enc('after'));
    pub.publish(`${p}.1`, enc('after'));
    // the second subject's message arrived: the first's, published before it, would have too
    await eventually(() => expect(got[1]).toEqual(['after']));
    expect(got[0]).toEqual([]);
    await expect(pub.request(`${p}.0`, enc('?'), { timeout: 10_000 })).rejects.toThrow(/no responders/i);
  });

  it('are made again on a restarted server, a queue group\'s included', async () => {
    const nc = await client();
    const p = uniquePrefix().slice(0, -1);
    const subscribe = subscriptions(nc, host());
    const { got } = collect(subscribe, p, 2);
    const queued: string[] = [];
    subscribe(`${p}.q`, 'workers', (m) => void queued.push(dec(m.data)));
    await nc.flush();

    await nats.kill();
    await nats.restart();
    const pub = await client();
    // until the subscriber has reconnected and subscribed again, the publishes find nobody
    await eventually(() => {
      pub.publish(`${p}.1`, enc('back'));
      pub.publish(`${p}.q`, enc('back'));
      expect(got[1]).toContain('back');
      expect(queued).toContain('back');
    });
  });

  it('a drain delivers what reached the server before it, then drops them all', async () => {
    const nc = await client();
    const p = uniquePrefix().slice(0, -1);
    const { got } = collect(subscriptions(nc, host()), p, 50);
    await nc.flush();
    // published on the same connection right before the drain: the server has them before the
    // UNSUBs, and its messages are still on their way back when the drain begins
    for (let k = 0; k < 20; k++) for (let i = 0; i < 50; i++) nc.publish(`${p}.${i}`, enc(String(k)));
    await nc.drain();
    const expected = Array.from({ length: 20 }, (_, k) => String(k));
    for (const into of got) expect(into).toEqual(expected);
    expect(protocolOf(nc).subscriptions.size()).toBe(0);
  });

  it('without a protocol handler of the known shape, falls back to the client\'s own subscriptions and says so', async () => {
    const nc = await client();
    // the connection as a client without `protocol` would be
    const bare = new Proxy(nc, {
      get: (target, key) => {
        if (key === 'protocol') return undefined;
        const value = Reflect.get(target, key) as unknown;
        return typeof value === 'function' ? value.bind(target) : value;
      },
    }) as NatsConnection;
    const warnings: string[] = [];
    const p = uniquePrefix().slice(0, -1);
    const { subs, got } = collect(subscriptions(bare, host(warnings)), p, 2);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/protocol handler/);
    const own = protocolOf(nc).subscriptions.get(1);
    expect(own).not.toBe(subs[0]);
    expect((own as { constructor: { name: string } }).constructor.name).toBe('SubscriptionImpl');

    await nc.flush();
    subs[0]!.unsubscribe();
    const pub = await client();
    pub.publish(`${p}.0`, enc('x'));
    pub.publish(`${p}.1`, enc('x'));
    await eventually(() => expect(got[1]).toEqual(['x']));
    expect(got[0]).toEqual([]);
  });
});
