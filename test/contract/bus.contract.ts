import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  NoRespondersError,
  RequestTimeoutError,
  type Bus,
  type BusHandler,
  type BusMessage,
  type BusSubscription,
  type SubscribeOptions,
} from '../../src/ports/bus/bus.js';

/** A bus under test; `close` releases it and whatever backs it (connections, processes). */
export interface BusFixture {
  bus: Bus;
  close(): Promise<void>;
}

/** Called once per test: a fresh bus, so no subscription or message leaks between tests. */
export type BusFactory = () => Promise<BusFixture>;

/**
 * The ceiling for anything that should arrive: only reached when the implementation is broken.
 * Below the test timeout (30 s) only so that the failure names what did not arrive.
 */
const ARRIVAL_MS = 20_000;

/**
 * A request timeout beyond any test's (vitest's 30 s): a request that settles at all settles
 * for another reason than its timeout, so "at once" needs no clock.
 */
const BEYOND_TEST_MS = 600_000;

const text = new TextEncoder();
const enc = (s: string): Uint8Array => text.encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

/** A unique first token per test, so tests sharing a real server never see each other's messages. */
const uniquePrefix = (): string => `t${randomUUID().replaceAll('-', '')}`;

/** What one subscription received, with a latch to await the n-th arrival. */
interface Inbox {
  readonly messages: BusMessage[];
  readonly subscription: BusSubscription;
  /** resolves once `n` messages have arrived in total; rejects after ARRIVAL_MS */
  count(n: number): Promise<BusMessage[]>;
  subjects(): string[];
  payloads(): string[];
}

function inbox(bus: Bus, subject: string, options?: SubscribeOptions, also?: BusHandler): Inbox {
  const messages: BusMessage[] = [];
  const waiters: Array<{ n: number; resolve: () => void }> = [];
  const subscription = bus.subscribe(
    subject,
    (msg) => {
      messages.push(msg);
      for (let i = waiters.length - 1; i >= 0; i--) {
        const w = waiters[i]!;
        if (messages.length >= w.n) {
          waiters.splice(i, 1);
          w.resolve();
        }
      }
      also?.(msg);
    },
    options,
  );
  return {
    messages,
    subscription,
    subjects: () => messages.map((m) => m.subject),
    payloads: () => messages.map((m) => dec(m.data)),
    count(n: number): Promise<BusMessage[]> {
      if (messages.length >= n) return Promise.resolve(messages);
      return new Promise<BusMessage[]>((resolve, reject) => {
        const timer = setTimeout(() => {
          const i = waiters.indexOf(waiter);
          if (i >= 0) waiters.splice(i, 1);
          reject(new Error(`${subject}: ${messages.length} of ${n} messages arrived within ${ARRIVAL_MS} ms`));
        }, ARRIVAL_MS);
        const waiter = {
          n,
          resolve: () => {
            clearTimeout(timer);
            resolve(messages);
          },
        };
        waiters.push(waiter);
      });
    },
  };
}

/** Settles a promise-returning call that may also throw synchronously. */
function attempt<T>(fn: () => Promise<T>): Promise<T> {
  return Promise.resolve().then(fn);
}

/**
 * The promises of `Bus` (src/ports/bus/bus.ts), for any implementation. Subscriptions are made
 * before publishing and followed by `flush()`, so a real server has registered interest first.
 * "Not delivered" is shown with a barrier: a later message on a matching subject from the same
 * publisher, which arrives only after anything published before it.
 */
export function busContract(name: string, make: BusFactory): void {
  describe(name, () => {
    let fx: BusFixture;
    let bus: Bus;
    let p: string;

    beforeEach(async () => {
      fx = await make();
      bus = fx.bus;
      p = uniquePrefix();
    });

    afterEach(async () => {
      await fx.close();
    });

    describe('after close', () => {
      it('refuses subscribe and request with draining, and drops publishes without throwing', async () => {
        await bus.close();
        expect(() => bus.subscribe(`${p}.x`, () => {})).toThrow(expect.objectContaining({ code: 'draining' }));
        await expect(bus.request(`${p}.x`, new Uint8Array(1), 500)).rejects.toMatchObject({ code: 'draining' });
        expect(() => bus.publish(`${p}.x`, new Uint8Array(1))).not.toThrow();
      });
    });

    describe('publish/subscribe', () => {
      it('delivers a message to a subscriber of the exact subject, bytes intact', async () => {
        const box = inbox(bus, `${p}.a.b`);
        await bus.flush();
        const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
        bus.publish(`${p}.a.b`, bytes);
        bus.publish(`${p}.a.b`, new Uint8Array(0));
        const [first, second] = await box.count(2);
        expect(first!.subject).toBe(`${p}.a.b`);
        expect(Array.from(first!.data)).toEqual(Array.from(bytes));
        expect(second!.data.length).toBe(0);
        // a plain publish carries no reply address and cannot be answered
        expect(first!.replyTo).toBeUndefined();
        expect(first!.respond(enc('x'))).toBe(false);
      });

      it('delivers to a listener object (its onBusMessage) as to a function', async () => {
        const heard: string[] = [];
        let arrived!: () => void;
        const done = new Promise<void>((resolve) => (arrived = resolve));
        bus.subscribe(`${p}.l`, {
          onBusMessage(msg: BusMessage) {
            heard.push(dec(msg.data));
            arrived();
          },
        });
        await bus.flush();
        bus.publish(`${p}.l`, enc('hi'));
        await done;
        expect(heard).toEqual(['hi']);
      });

      it('does not deliver other subjects, nor longer or shorter ones', async () => {
        const box = inbox(bus, `${p}.a.b`);
        await bus.flush();
        bus.publish(`${p}.a.c`, enc('other'));
        bus.publish(`${p}.a.b.c`, enc('longer'));
        bus.publish(`${p}.a`, enc('shorter'));
        bus.publish(`${p}.a.b`, enc('barrier'));
        await box.count(1);
        await bus.flush();
        expect(box.payloads()).toEqual(['barrier']);
      });

      it('gives every matching subscription its own copy', async () => {
        const exact = inbox(bus, `${p}.a.b`);
        const exact2 = inbox(bus, `${p}.a.b`);
        const star = inbox(bus, `${p}.*.b`);
        const rest = inbox(bus, `${p}.>`);
        await bus.flush();
        bus.publish(`${p}.a.b`, enc('m'));
        for (const box of [exact, exact2, star, rest]) expect((await box.count(1)).map((m) => dec(m.data))).toEqual(['m']);
        // and only one copy each
        bus.publish(`${p}.a.b`, enc('barrier'));
        for (const box of [exact, exact2, star, rest]) expect((await box.count(2)).map((m) => dec(m.data))).toEqual(['m', 'barrier']);
      });
    });

    describe('wildcards', () => {
      it('`*` matches exactly one token', async () => {
        const box = inbox(bus, `${p}.a.*`);
        await bus.flush();
        bus.publish(`${p}.a.b`, enc('1'));
        bus.publish(`${p}.a.b.c`, enc('too long'));
        bus.publish(`${p}.a`, enc('too short'));
        bus.publish(`${p}.x.b`, enc('other literal'));
        bus.publish(`${p}.a.z`, enc('2'));
        await box.count(2);
        await bus.flush();
        expect(box.subjects()).toEqual([`${p}.a.b`, `${p}.a.z`]);
      });

      it('`*` in the middle matches one token there', async () => {
        const box = inbox(bus, `${p}.*.cmd`);
        await bus.flush();
        bus.publish(`${p}.hub1.cmd`, enc('1'));
        bus.publish(`${p}.hub1.desired`, enc('no'));
        bus.publish(`${p}.hub1.x.cmd`, enc('no'));
        bus.publish(`${p}.hub2.cmd`, enc('2'));
        await box.count(2);
        await bus.flush();
        expect(box.subjects()).toEqual([`${p}.hub1.cmd`, `${p}.hub2.cmd`]);
      });

      it('`>` matches one or more trailing tokens, never zero', async () => {
        const box = inbox(bus, `${p}.a.>`);
        await bus.flush();
        bus.publish(`${p}.a.b`, enc('1'));
        bus.publish(`${p}.a`, enc('zero tokens'));
        bus.publish(`${p}.b.c`, enc('other literal'));
        bus.publish(`${p}.a.b.c.d`, enc('2'));
        bus.publish(`${p}.a.z`, enc('3'));
        await box.count(3);
        await bus.flush();
        expect(box.subjects()).toEqual([`${p}.a.b`, `${p}.a.b.c.d`, `${p}.a.z`]);
      });

      it('`*` and `>` combine', async () => {
        const box = inbox(bus, `${p}.*.x.>`);
        await bus.flush();
        bus.publish(`${p}.a.x`, enc('no: > needs a token'));
        bus.publish(`${p}.a.y.z`, enc('no: literal x'));
        bus.publish(`${p}.a.x.1.2`, enc('1'));
        bus.publish(`${p}.b.x.3`, enc('2'));
        await box.count(2);
        await bus.flush();
        expect(box.subjects()).toEqual([`${p}.a.x.1.2`, `${p}.b.x.3`]);
      });
    });

    describe('queue groups', () => {
      it('gives each message to exactly one member of a group, and to every plain subscriber', async () => {
        const n = 60;
        const seen = new Map<string, number>();
        const counted: BusHandler = (m) => seen.set(dec(m.data), (seen.get(dec(m.data)) ?? 0) + 1);
        const members = [1, 2, 3].map(() => inbox(bus, `${p}.work`, { queue: 'workers' }, counted));
        const plainA = inbox(bus, `${p}.work`);
        const plainB = inbox(bus, `${p}.*`);
        await bus.flush();
        for (let i = 0; i < n; i++) bus.publish(`${p}.work`, enc(String(i)));
        await plainA.count(n);
        await plainB.count(n);
        // barrier: once it reached a plain subscriber, every earlier message reached its member
        bus.publish(`${p}.work`, enc('barrier'));
        await plainA.count(n + 1);
        await plainB.count(n + 1);
        await waitUntil(() => seen.has('barrier'));
        await bus.flush();

        expect(plainA.messages).toHaveLength(n + 1);
        expect(plainB.messages).toHaveLength(n + 1);
        const total = members.reduce((s, m) => s + m.messages.length, 0);
        expect(total).toBe(n + 1);
        for (let i = 0; i < n; i++) expect(seen.get(String(i)), `message ${i}`).toBe(1);
        // the group shares the load rather than one member taking everything
        expect(members.filter((m) => m.messages.length > 0).length).toBeGreaterThan(1);
      });

      it('gives one copy to each of two groups on the same subject', async () => {
        const g1 = [inbox(bus, `${p}.s`, { queue: 'g1' }), inbox(bus, `${p}.s`, { queue: 'g1' })];
        const g2 = [inbox(bus, `${p}.s`, { queue: 'g2' }), inbox(bus, `${p}.s`, { queue: 'g2' })];
        const plain = inbox(bus, `${p}.s`);
        await bus.flush();
        for (let i = 0; i < 10; i++) bus.publish(`${p}.s`, enc(String(i)));
        bus.publish(`${p}.s`, enc('barrier'));
        await plain.count(11);
        await waitUntil(() => sum(g1) >= 11 && sum(g2) >= 11);
        await bus.flush();
        expect(sum(g1)).toBe(11);
        expect(sum(g2)).toBe(11);
      });

      it('after a member unsubscribes, the remaining member gets every message', async () => {
        const a = inbox(bus, `${p}.q`, { queue: 'g' });
        const b = inbox(bus, `${p}.q`, { queue: 'g' });
        await bus.flush();
        a.subscription.unsubscribe();
        await bus.flush();
        for (let i = 0; i < 20; i++) bus.publish(`${p}.q`, enc(String(i)));
        await b.count(20);
        expect(a.messages).toHaveLength(0);
        expect(b.payloads()).toEqual(Array.from({ length: 20 }, (_, i) => String(i)));
      });
    });

    describe('unsubscribe', () => {
      it('stops delivery to that subscription only; a second unsubscribe is harmless', async () => {
        const gone = inbox(bus, `${p}.u`);
        const stays = inbox(bus, `${p}.u`);
        await bus.flush();
        bus.publish(`${p}.u`, enc('before'));
        await gone.count(1);
        await stays.count(1);

        gone.subscription.unsubscribe();
        gone.subscription.unsubscribe();
        await bus.flush();
        bus.publish(`${p}.u`, enc('after'));
        bus.publish(`${p}.u`, enc('barrier'));
        await stays.count(3);
        await bus.flush();
        expect(gone.payloads()).toEqual(['before']);
        expect(stays.payloads()).toEqual(['before', 'after', 'barrier']);
      });

      it('of the middle one of three on a subject leaves the other two every message', async () => {
        const first = inbox(bus, `${p}.m`);
        const middle = inbox(bus, `${p}.m`);
        const last = inbox(bus, `${p}.m`);
        await bus.flush();
        middle.subscription.unsubscribe();
        await bus.flush();
        bus.publish(`${p}.m`, enc('1'));
        bus.publish(`${p}.m`, enc('2'));
        await first.count(2);
        await last.count(2);
        await bus.flush();
        expect(first.payloads()).toEqual(['1', '2']);
        expect(last.payloads()).toEqual(['1', '2']);
        expect(middle.messages).toHaveLength(0);
      });

      it('of a wildcard subscription stops its delivery', async () => {
        const gone = inbox(bus, `${p}.>`);
        const stays = inbox(bus, `${p}.w`);
        await bus.flush();
        gone.subscription.unsubscribe();
        await bus.flush();
        bus.publish(`${p}.w`, enc('1'));
        await stays.count(1);
        await bus.flush();
        expect(gone.messages).toHaveLength(0);
      });
    });

    describe('subscriptions of several prefix lengths', () => {
      it('removing one leaves those with longer and shorter literal prefixes delivering, and its length can be taken again', async () => {
        const deep = inbox(bus, `${p}.a.b.*`);
        const shallow = inbox(bus, `${p}.*`);
        const gone = inbox(bus, `${p}.a.*`);
        await bus.flush();
        gone.subscription.unsubscribe();
        await bus.flush();
        bus.publish(`${p}.a.b.c`, enc('deep'));
        bus.publish(`${p}.a`, enc('shallow'));
        expect((await deep.count(1)).map((m) => dec(m.data))).toEqual(['deep']);
        expect((await shallow.count(1)).map((m) => dec(m.data))).toEqual(['shallow']);
        const again = inbox(bus, `${p}.a.*`);
        await bus.flush();
        bus.publish(`${p}.a.x`, enc('again'));
        expect((await again.count(1)).map((m) => dec(m.data))).toEqual(['again']);
        expect(gone.messages).toHaveLength(0);
      });
    });

    describe('request/reply', () => {
      it('resolves with the answer of the responder', async () => {
        let replyTo: string | undefined;
        let responded: boolean | undefined;
        bus.subscribe(`${p}.cmd`, (msg) => {
          replyTo = msg.replyTo;
          responded = msg.respond(enc(`echo:${dec(msg.data)}`));
        });
        await bus.flush();
        const answer = await bus.request(`${p}.cmd`, enc('ping'), ARRIVAL_MS);
        expect(dec(answer)).toBe('echo:ping');
        expect(replyTo).toEqual(expect.any(String));
        expect(responded).toBe(true);
      });

      it('matches a responder that subscribed with a wildcard, and answers each request with its own reply', async () => {
        bus.subscribe(`${p}.*.cmd`, (msg) => {
          msg.respond(enc(`${msg.subject}:${dec(msg.data)}`));
        });
        await bus.flush();
        const answers = await Promise.all(
          ['h1', 'h2', 'h3'].map((h, i) => bus.request(`${p}.${h}.cmd`, enc(String(i)), ARRIVAL_MS)),
        );
        expect(answers.map(dec)).toEqual([`${p}.h1.cmd:0`, `${p}.h2.cmd:1`, `${p}.h3.cmd:2`]);
      });

      it('accepts an answer given later, asynchronously', async () => {
        bus.subscribe(`${p}.slow`, (msg) => {
          setTimeout(() => msg.respond(enc('late but in time')), 20);
        });
        await bus.flush();
        expect(dec(await bus.request(`${p}.slow`, enc(''), ARRIVAL_MS))).toBe('late but in time');
      });

      it('resolves with one of the answers when two responders answer', async () => {
        bus.subscribe(`${p}.two`, (msg) => void msg.respond(enc('a')));
        bus.subscribe(`${p}.two`, (msg) => void msg.respond(enc('b')));
        await bus.flush();
        expect(['a', 'b']).toContain(dec(await bus.request(`${p}.two`, enc(''), ARRIVAL_MS)));
      });

      it('rejects at once with NoRespondersError when nobody subscribes', async () => {
        // the request timeout is far beyond the test's: only the no-responders notice can settle it
        const err = await bus.request(`${p}.nobody.cmd`, enc('x'), BEYOND_TEST_MS).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(NoRespondersError);
        expect((err as NoRespondersError).code).toBe('hub_offline');
      });

      it('rejects with NoRespondersError once the only responder has unsubscribed', async () => {
        const sub = bus.subscribe(`${p}.gone`, (msg) => void msg.respond(enc('here')));
        await bus.flush();
        expect(dec(await bus.request(`${p}.gone`, enc(''), ARRIVAL_MS))).toBe('here');
        sub.unsubscribe();
        await bus.flush();
        await expect(bus.request(`${p}.gone`, enc(''), BEYOND_TEST_MS)).rejects.toBeInstanceOf(NoRespondersError);
      });

      it('rejects with RequestTimeoutError after timeoutMs when the subscriber never answers', async () => {
        const received = inbox(bus, `${p}.mute`);
        await bus.flush();
        const timeoutMs = 150;
        const started = Date.now();
        const err = await bus.request(`${p}.mute`, enc('hello?'), timeoutMs).then(
          () => undefined,
          (e: unknown) => e,
        );
        const elapsed = Date.now() - started;
        expect(err).toBeInstanceOf(RequestTimeoutError);
        expect((err as RequestTimeoutError).code).toBe('command_timeout');
        // the subscriber got it (it may be processed after the timeout on a busy machine)
        expect((await received.count(1)).map((m) => dec(m.data))).toEqual(['hello?']);
        // not early (a few ms of clock granularity allowed); how late is left to the test's timeout
        expect(elapsed).toBeGreaterThanOrEqual(timeoutMs - 5);
      });

      it('drops an answer given after the timeout: the next request gets its own answer', async () => {
        const asked: BusMessage[] = [];
        bus.subscribe(`${p}.late`, (msg) => {
          asked.push(msg);
          if (asked.length < 2) return; // the first request is left to time out
          // the first request's answer comes now, just before the second's, on the same subject
          asked[0]!.respond(enc(`too late for ${dec(asked[0]!.data)}`));
          msg.respond(enc(`answer to ${dec(msg.data)}`));
        });
        await bus.flush();
        await expect(bus.request(`${p}.late`, enc('first'), 50)).rejects.toBeInstanceOf(RequestTimeoutError);
        expect(dec(await bus.request(`${p}.late`, enc('second'), ARRIVAL_MS))).toBe('answer to second');
        expect(asked.map((m) => dec(m.data))).toEqual(['first', 'second']);
      });

      it('resolves with the first answer when a responder answers twice', async () => {
        bus.subscribe(`${p}.twice`, (msg) => {
          msg.respond(enc('first'));
          msg.respond(enc('second'));
        });
        await bus.flush();
        expect(dec(await bus.request(`${p}.twice`, enc(''), ARRIVAL_MS))).toBe('first');
        // the second answer reached nobody: a following request still gets its own first answer
        expect(dec(await bus.request(`${p}.twice`, enc(''), ARRIVAL_MS))).toBe('first');
      });
    });

    describe('ordering', () => {
      it('delivers 1000 messages of one publisher on one subject in order', async () => {
        const n = 1000;
        const box = inbox(bus, `${p}.seq`);
        await bus.flush();
        for (let i = 0; i < n; i++) bus.publish(`${p}.seq`, enc(String(i)));
        await box.count(n);
        expect(box.payloads()).toEqual(Array.from({ length: n }, (_, i) => String(i)));
      });

      it('keeps each subject in order when subjects interleave, also through a wildcard subscription', async () => {
        const n = 500;
        const all = inbox(bus, `${p}.>`);
        await bus.flush();
        for (let i = 0; i < n; i++) {
          bus.publish(`${p}.x`, enc(`x${i}`));
          bus.publish(`${p}.y`, enc(`y${i}`));
        }
        await all.count(2 * n);
        const xs = all.messages.filter((m) => m.subject === `${p}.x`).map((m) => dec(m.data));
        const ys = all.messages.filter((m) => m.subject === `${p}.y`).map((m) => dec(m.data));
        expect(xs).toEqual(Array.from({ length: n }, (_, i) => `x${i}`));
        expect(ys).toEqual(Array.from({ length: n }, (_, i) => `y${i}`));
      });

      it('keeps order for every subscriber when a handler publishes on the same subject', async () => {
        // the first subscriber answers message 1 by publishing message 2: the second subscriber
        // must still see 1 before 2 (one publisher: this process)
        const first = inbox(bus, `${p}.r`, undefined, (m) => {
          if (dec(m.data) === '1') bus.publish(`${p}.r`, enc('2'));
        });
        const second = inbox(bus, `${p}.r`);
        await bus.flush();
        bus.publish(`${p}.r`, enc('1'));
        await first.count(2);
        await second.count(2);
        expect(first.payloads()).toEqual(['1', '2']);
        expect(second.payloads()).toEqual(['1', '2']);
      });
    });

    describe('failing handlers', () => {
      it('a handler that throws breaks neither the publisher, nor other subscribers, nor its own subscription', async () => {
        let thrown = 0;
        bus.subscribe(`${p}.f`, () => {
          thrown++;
          throw new Error('handler bug');
        });
        const other = inbox(bus, `${p}.f`);
        await bus.flush();
        expect(() => bus.publish(`${p}.f`, enc('1'))).not.toThrow();
        expect(() => bus.publish(`${p}.f`, enc('2'))).not.toThrow();
        await other.count(2);
        await waitUntil(() => thrown === 2);
        expect(other.payloads()).toEqual(['1', '2']);
        expect(thrown).toBe(2);
      });

      it('a request still gets its answer when another subscriber of the subject throws', async () => {
        bus.subscribe(`${p}.rq`, () => {
          throw new Error('handler bug');
        });
        bus.subscribe(`${p}.rq`, (msg) => void msg.respond(enc('fine')));
        await bus.flush();
        expect(dec(await bus.request(`${p}.rq`, enc(''), ARRIVAL_MS))).toBe('fine');
      });
    });

    describe('subjects', () => {
      const badAnywhere = ['', '.', 'a..b', '.a', 'a.', 'a b', 'a.b\tc', 'a.b\u00a0c', 'a\u2028.b', 'a.>.b', '>.a'];

      it.each(badAnywhere)('subscribe(%j) throws', (s) => {
        expect(() => bus.subscribe(s, () => {})).toThrow(TypeError);
      });

      it.each([...badAnywhere, 'a.*', 'a.>', '*', '>'])('publish(%j) throws', (s) => {
        expect(() => bus.publish(s, enc(''))).toThrow(TypeError);
      });

      it.each(['', 'a..b', 'a b', 'a.*'])('request(%j) fails', async (s) => {
        await expect(attempt(() => bus.request(s, enc(''), 1_000))).rejects.toThrow(TypeError);
      });

      it('a refused subject leaves the bus working', async () => {
        expect(() => bus.subscribe(`${p}..x`, () => {})).toThrow(TypeError);
        const box = inbox(bus, `${p}.ok`);
        await bus.flush();
        bus.publish(`${p}.ok`, enc('1'));
        expect((await box.count(1)).map((m) => dec(m.data))).toEqual(['1']);
      });
    });
  });
}

function sum(boxes: Inbox[]): number {
  return boxes.reduce((s, b) => s + b.messages.length, 0);
}

/** Polls a condition the test has already caused; fails after ARRIVAL_MS. */
async function waitUntil(cond: () => boolean): Promise<void> {
  const deadline = Date.now() + ARRIVAL_MS;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}
