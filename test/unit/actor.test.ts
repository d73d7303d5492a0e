import { afterEach, describe, expect, it } from 'vitest';
import { Actor, ActorDirectory, FAILURE_WINDOW_MS, MAX_FAILURES, type ActorSystem, type Supervision } from '../../src/actors/actor.js';
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import { createLogger } from '../../src/log/logger.js';

type Msg =
  | { type: 'note'; v: string }
  | { type: 'wait'; v: string; gate: Promise<void> }
  | { type: 'throw'; v: string }
  | { type: 'reject'; v: string }
  | { type: 'tellSelf'; v: string; next: Msg };

/** A promise with its resolve and reject at hand. */
function deferred(): { promise: Promise<void>; resolve: () => void; reject: (e: unknown) => void } {
  let resolve!: () => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets every pending promise continuation run (a macrotask comes after all microtasks). */
const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

class TestActor extends Actor<Msg> {
  readonly log: string[] = [];
  readonly refusals: Msg[] = [];
  readonly stops: string[] = [];
  readonly overflows: Array<{ msg: Msg; queued: Msg[] }> = [];
  /** messages inside receive right now; must never exceed 1 */
  inside = 0;
  maxInside = 0;
  /** replaces the default overflow policy when set */
  policy: ((msg: Msg, queued: Msg[]) => boolean) | undefined;
  private readonly waiters: Array<{ n: number; resolve: () => void }> = [];

  constructor(
    readonly address: string,
    protected readonly system: ActorSystem,
  ) {
    super();
  }

  protected receive(msg: Msg): void | Promise<void> {
    this.inside++;
    this.maxInside = Math.max(this.maxInside, this.inside);
    try {
      switch (msg.type) {
        case 'note':
          this.record(msg.v);
          return;
        case 'throw':
          this.record(`${msg.v}!`);
          throw new Error(`failed ${msg.v}`);
        case 'tellSelf':
          this.record(`${msg.v}:start`);
          this.tell(msg.next);
          this.record(`${msg.v}:end`);
          return;
        case 'wait':
        case 'reject':
          return this.receiveAsync(msg);
      }
    } finally {
      if (msg.type !== 'wait' && msg.type !== 'reject') this.inside--;
    }
  }

  private async receiveAsync(msg: Msg & { type: 'wait' | 'reject' }): Promise<void> {
    try {
      this.record(`${msg.v}:start`);
      if (msg.type === 'wait') await msg.gate;
      else {
        await Promise.resolve();
        throw new Error(`rejected ${msg.v}`);
      }
      this.record(`${msg.v}:end`);
    } finally {
      this.inside--;
    }
  }

  protected override overflow(msg: Msg, queued: Msg[]): boolean {
    this.overflows.push({ msg, queued: [...queued] });
    return this.policy ? this.policy(msg, queued) : super.overflow(msg, queued);
  }

  protected override refused(msg: Msg): void {
    this.refusals.push(msg);
  }

  protected onStop(reason: string): void {
    this.stops.push(reason);
  }

  /** exposes the protected stop() */
  shutDown(reason: string): void {
    this.stop(reason);
  }

  /** resolves once `n` entries are in the log */
  logged(n: number): Promise<void> {
    if (this.log.length >= n) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ n, resolve }));
  }

  private record(entry: string): void {
    this.log.push(entry);
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      if (this.log.length >= this.waiters[i]!.n) this.waiters.splice(i, 1)[0]!.resolve();
    }
  }
}

interface Failure {
  address: string;
  type: string;
  err: unknown;
}

const wheels: TimerWheel[] = [];
afterEach(() => {
  for (const w of wheels.splice(0)) w.close();
});

/** `clock` drives the supervisor's clock; without `supervision` the defaults apply. */
function setup(
  mailboxSize = 128,
  options: { clock?: { now: number }; supervision?: Supervision } = {},
): { actor: TestActor; failures: Failure[]; system: ActorSystem } {
  const failures: Failure[] = [];
  const { clock, supervision } = options;
  const timers = new TimerWheel(clock ? { now: () => clock.now } : {});
  wheels.push(timers);
  const system: ActorSystem = {
    timers,
    log: createLogger('silent'),
    mailboxSize,
    onFailure: (address, type, err) => failures.push({ address, type, err }),
    ...(clock ? { now: () => clock.now } : {}),
    ...(supervision ? { supervision } : {}),
  };
  return { actor: new TestActor('test/actor-1', system), failures, system };
}

const note = (v: string): Msg => ({ type: 'note', v });

describe('Actor', () => {
  describe('ordering', () => {
    it('processes messages one at a time in arrival order', () => {
      const { actor } = setup();
      for (const v of ['a', 'b', 'c', 'd']) expect(actor.tell(note(v))).toBe(true);
      expect(actor.log).toEqual(['a', 'b', 'c', 'd']);
      expect(actor.queued).toBe(0);
    });

    it('a message an actor tells itself runs after the current one, not inside it', () => {
      const { actor } = setup();
      actor.tell({ type: 'tellSelf', v: 'outer', next: note('inner') });
      expect(actor.log).toEqual(['outer:start', 'outer:end', 'inner']);
      expect(actor.maxInside).toBe(1);
    });

    it('an async receive makes later messages wait until it finishes', async () => {
      const { actor } = setup();
      const gate = deferred();
      actor.tell({ type: 'wait', v: 'slow', gate: gate.promise });
      actor.tell(note('b'));
      actor.tell(note('c'));
      await settle();
      expect(actor.log).toEqual(['slow:start']);
      expect(actor.queued).toBe(2);
      gate.resolve();
      await actor.logged(4);
      expect(actor.log).toEqual(['slow:start', 'slow:end', 'b', 'c']);
      expect(actor.queued).toBe(0);
    });

    it('several async messages run strictly one after another, in arrival order, however they finish', async () => {
      const { actor } = setup();
      const gates = [deferred(), deferred(), deferred()];
      gates.forEach((g, i) => actor.tell({ type: 'wait', v: `m${i}`, gate: g.promise }));
      actor.tell(note('last'));
      // open the gates in reverse: only the message being processed can finish
      for (const g of [...gates].reverse()) g.resolve();
      await actor.logged(7);
      expect(actor.log).toEqual(['m0:start', 'm0:end', 'm1:start', 'm1:end', 'm2:start', 'm2:end', 'last']);
      expect(actor.maxInside).toBe(1);
    });

    it('after an async message the actor is idle again and processes the next tell at once', async () => {
      const { actor } = setup();
      const gate = deferred();
      actor.tell({ type: 'wait', v: 'w', gate: gate.promise });
      gate.resolve();
      await actor.logged(2);
      await settle();
      actor.tell(note('now'));
      expect(actor.log).toEqual(['w:start', 'w:end', 'now']);
    });
  });

  describe('failures', () => {
    it('a throw is reported with the address and message type, never reaches the sender, and the actor continues', () => {
      const { actor, failures } = setup();
      expect(actor.tell({ type: 'throw', v: 'x' })).toBe(true);
      expect(actor.tell(note('after'))).toBe(true);
      expect(actor.log).toEqual(['x!', 'after']);
      expect(failures).toHaveLength(1);
      expect(failures[0]).toMatchObject({ address: 'test/actor-1', type: 'throw' });
      expect((failures[0]!.err as Error).message).toBe('failed x');
    });

    it('a rejection is reported likewise and the next message runs', async () => {
      const { actor, failures } = setup();
      actor.tell({ type: 'reject', v: 'r' });
      actor.tell(note('after'));
      await actor.logged(2);
      expect(actor.log).toEqual(['r:start', 'after']);
      expect(failures).toHaveLength(1);
      expect(failures[0]).toMatchObject({ address: 'test/actor-1', type: 'reject' });
      expect((failures[0]!.err as Error).message).toBe('rejected r');
      expect(actor.isStopped).toBe(false);
    });

    it('a queued message that throws does not stop the ones behind it', async () => {
      const { actor, failures } = setup();
      const gate = deferred();
      actor.tell({ type: 'wait', v: 'w', gate: gate.promise });
      actor.tell({ type: 'throw', v: 't' });
      actor.tell({ type: 'reject', v: 'r' });
      actor.tell(note('n'));
      gate.resolve();
      await actor.logged(5);
      expect(actor.log).toEqual(['w:start', 'w:end', 't!', 'r:start', 'n']);
      expect(failures.map((f) => f.type)).toEqual(['throw', 'reject']);
    });

    it(`${MAX_FAILURES} failures stop the actor: onStop once, later tells refused with false`, async () => {
      const { actor, failures } = setup();
      for (let i = 0; i < MAX_FAILURES - 1; i++) actor.tell({ type: 'throw', v: String(i) });
      expect(actor.isStopped).toBe(false);
      expect(actor.stops).toEqual([]);
      expect(actor.tell(note('still alive'))).toBe(true);
      expect(actor.log.at(-1)).toBe('still alive');

      actor.tell({ type: 'reject', v: 'last straw' });
      await settle();
      expect(failures).toHaveLength(MAX_FAILURES);
      expect(actor.isStopped).toBe(true);
      expect(actor.stops).toHaveLength(1);
      expect(actor.stops[0]).toEqual(expect.any(String));

      const logged = actor.log.length;
      expect(actor.tell(note('too late'))).toBe(false);
      expect(actor.tell({ type: 'throw', v: 'too late' })).toBe(false);
      expect(actor.log).toHaveLength(logged);
      expect(failures).toHaveLength(MAX_FAILURES);
      expect(actor.stops).toHaveLength(1);
    });

    it('stopping on the last failure refuses the queued messages and processes none of them', async () => {
      const { actor, failures } = setup();
      const gate = deferred();
      actor.tell({ type: 'wait', v: 'w', gate: gate.promise });
      for (let i = 0; i < MAX_FAILURES; i++) actor.tell(i % 2 === 0 ? { type: 'throw', v: String(i) } : { type: 'reject', v: String(i) });
      const behind = [note('q1'), note('q2'), note('q3')];
      for (const m of behind) actor.tell(m);
      expect(actor.queued).toBe(MAX_FAILURES + behind.length);

      gate.resolve();
      await actor.logged(2 + MAX_FAILURES);
      await settle();
      expect(failures).toHaveLength(MAX_FAILURES);
      expect(actor.stops).toHaveLength(1);
      expect(actor.refusals).toEqual(behind);
      expect(actor.log.filter((e) => e.startsWith('q'))).toEqual([]);
      expect(actor.queued).toBe(0);
    });

    it('an async message in flight when the actor stops finishes, and nothing after it runs', async () => {
      const { actor } = setup();
      const gate = deferred();
      actor.tell({ type: 'wait', v: 'w', gate: gate.promise });
      actor.tell(note('queued'));
      actor.shutDown('test');
      expect(actor.refusals).toEqual([note('queued')]);
      gate.resolve();
      await actor.logged(2);
      await settle();
      expect(actor.log).toEqual(['w:start', 'w:end']);
      expect(actor.tell(note('after'))).toBe(false);
    });
  });

  describe('stop', () => {
    it('calls onStop once however often it is asked; tell then answers false', () => {
      const { actor } = setup();
      actor.shutDown('first');
      actor.shutDown('second');
      expect(actor.stops).toEqual(['first']);
      expect(actor.tell(note('x'))).toBe(false);
      expect(actor.log).toEqual([]);
      // refused by stop, not by the overflow policy
      expect(actor.overflows).toEqual([]);
    });
  });

  describe('mailbox bound', () => {
    it('queues up to mailboxSize behind a busy message, then applies the overflow policy; the default refuses', async () => {
      const { actor } = setup(3);
      const gate = deferred();
      actor.tell({ type: 'wait', v: 'busy', gate: gate.promise });
      for (const v of ['a', 'b', 'c']) expect(actor.tell(note(v))).toBe(true);
      expect(actor.queued).toBe(3);
      expect(actor.overflows).toEqual([]);

      expect(actor.tell(note('d'))).toBe(false);
      expect(actor.overflows).toHaveLength(1);
      expect(actor.overflows[0]!.msg).toEqual(note('d'));
      expect(actor.overflows[0]!.queued).toEqual([note('a'), note('b'), note('c')]);
      expect(actor.refusals).toEqual([note('d')]);
      expect(actor.queued).toBe(3);

      gate.resolve();
      await actor.logged(5);
      await settle();
      expect(actor.log).toEqual(['busy:start', 'busy:end', 'a', 'b', 'c']);
      // room again: accepted without the policy
      expect(actor.tell(note('e'))).toBe(true);
      expect(actor.log.at(-1)).toBe('e');
      expect(actor.overflows).toHaveLength(1);
    });

    it('an overflow policy that absorbs a message (coalescing) is answered true and nothing is refused', async () => {
      const { actor } = setup(2);
      actor.policy = (msg, queued) => {
        // coalesce: the newest value replaces the last queued note
        const i = queued.length - 1;
        if (msg.type !== 'note' || queued[i]?.type !== 'note') return false;
        queued[i] = msg;
        return true;
      };
      const gate = deferred();
      actor.tell({ type: 'wait', v: 'busy', gate: gate.promise });
      actor.tell(note('t1'));
      actor.tell(note('t2'));
      expect(actor.tell(note('t3'))).toBe(true);
      expect(actor.tell(note('t4'))).toBe(true);
      expect(actor.refusals).toEqual([]);
      expect(actor.queued).toBe(2);
      gate.resolve();
      await actor.logged(4);
      await settle();
      expect(actor.log).toEqual(['busy:start', 'busy:end', 't1', 't4']);
    });

    it('an idle actor takes a message directly, whatever the mailbox size', () => {
      const { actor } = setup(0);
      expect(actor.tell(note('a'))).toBe(true);
      expect(actor.tell(note('b'))).toBe(true);
      expect(actor.log).toEqual(['a', 'b']);
      expect(actor.overflows).toEqual([]);
    });
  });
  describe('supervision within a time window', () => {
    const fail = (actor: TestActor, v: string) => actor.tell({ type: 'throw', v });

    it('failures spaced wider than the window never stop the actor, however many add up; one exactly a window old is forgotten', () => {
      const clock = { now: 1_000_000 };
      const { actor, failures } = setup(128, { clock, supervision: { maxFailures: 3, withinMs: 1_000 } });
      // every 500 ms: the window holds the failure now and the one 500 ms ago, never the one 1000 ms ago
      for (let i = 0; i < 30; i++) {
        fail(actor, String(i));
        clock.now += 500;
      }
      expect(failures).toHaveLength(30);
      expect(actor.isStopped).toBe(false);
      expect(actor.stops).toEqual([]);
      expect(actor.tell(note('alive'))).toBe(true);
      expect(actor.log.at(-1)).toBe('alive');
    });

    it('maxFailures within the window stop the actor, with the count and the window in the reason', () => {
      const clock = { now: 0 };
      const { actor } = setup(128, { clock, supervision: { maxFailures: 3, withinMs: 1_000 } });
      fail(actor, 'a');
      clock.now = 400;
      fail(actor, 'b');
      expect(actor.isStopped).toBe(false);
      clock.now = 999;
      fail(actor, 'c');
      expect(actor.isStopped).toBe(true);
      expect(actor.stops).toEqual(['3 failed messages within 1000 ms']);
      expect(actor.tell(note('late'))).toBe(false);
    });

    it(`the default is ${MAX_FAILURES} failures within ${FAILURE_WINDOW_MS} ms: as many over a longer span do not stop it, a burst then does`, () => {
      const clock = { now: 0 };
      const { actor, failures } = setup(128, { clock });
      const gap = Math.ceil(FAILURE_WINDOW_MS / (MAX_FAILURES - 1));
      for (let i = 0; i < MAX_FAILURES; i++) {
        fail(actor, `slow ${i}`);
        if (i < MAX_FAILURES - 1) clock.now += gap;
      }
      // a count over the actor's life would have stopped it here
      expect(failures).toHaveLength(MAX_FAILURES);
      expect(actor.isStopped).toBe(false);
      // the first has left the window; one more now makes MAX_FAILURES within it
      fail(actor, 'burst');
      expect(actor.isStopped).toBe(true);
      expect(actor.stops).toEqual([`${MAX_FAILURES} failed messages within ${FAILURE_WINDOW_MS} ms`]);
    });
  });

  describe('retire and idle', () => {
    it('an idle actor retires: onStop with the reason, later tells refused', () => {
      const { actor } = setup();
      actor.tell(note('a'));
      expect(actor.idle).toBe(true);
      expect(actor.retire()).toBe(true);
      expect(actor.stops).toEqual(['retired']);
      expect(actor.tell(note('b'))).toBe(false);
      expect(actor.log).toEqual(['a']);
    });

    it('a busy actor does not retire and goes on; idle is false while a message is in progress or queued', async () => {
      const { actor } = setup();
      const gate = deferred();
      actor.tell({ type: 'wait', v: 'w', gate: gate.promise });
      actor.tell(note('queued'));
      expect(actor.idle).toBe(false);
      expect(actor.retire()).toBe(false);
      gate.resolve();
      await actor.logged(3);
      await settle();
      expect(actor.idle).toBe(true);
      expect(actor.stops).toEqual([]);
      expect(actor.log).toEqual(['w:start', 'w:end', 'queued']);
    });
  });

  describe('ActorDirectory', () => {
    function directory(max: number): { dir: ActorDirectory<TestActor>; created: string[] } {
      const { system } = setup();
      const created: string[] = [];
      const dir = new ActorDirectory((address) => {
        created.push(address);
        return new TestActor(address, system);
      }, max);
      return { dir, created };
    }

    it('creates an actor on first use and returns the same one after; get neither creates nor counts a use', () => {
      const { dir, created } = directory(10);
      expect(dir.get('a')).toBeUndefined();
      const a = dir.obtain('a');
      expect(dir.obtain('a')).toBe(a);
      expect(dir.get('a')).toBe(a);
      expect(created).toEqual(['a']);
      expect(dir.size).toBe(1);
    });

    it('beyond max it retires the oldest idle actor not used since its last sweep; a recently used or busy one stays', () => {
      const { dir } = directory(3);
      const [a, b, c] = ['a', 'b', 'c'].map((x) => dir.obtain(x));
      const d = dir.obtain('d');
      // every actor was used since it was created: the oldest idle one goes
      expect(a!.stops).toEqual(['retired']);
      expect(dir.get('a')).toBeUndefined();
      dir.obtain('b'); // used since that sweep: passed over once
      const e = dir.obtain('e');
      expect(c!.stops).toEqual(['retired']);
      expect(b!.stops).toEqual([]);
      // b is now the oldest and unmarked, but busy: it stays and d goes
      b!.tell({ type: 'wait', v: 'busy', gate: new Promise<void>(() => {}) });
      const f = dir.obtain('f');
      expect(d.stops).toEqual(['retired']);
      expect(b!.stops).toEqual([]);
      expect([dir.get('b'), dir.get('e'), dir.get('f')]).toEqual([b, e, f]);
      expect(dir.size).toBe(3);
    });

    it('passes max only while every actor is busy', () => {
      const { dir } = directory(1);
      dir.obtain('a').tell({ type: 'wait', v: 'busy', gate: new Promise<void>(() => {}) });
      dir.obtain('b');
      expect(dir.size).toBe(2);
      expect(dir.get('a')!.stops).toEqual([]);
    });

    it('an actor its supervisor stopped is replaced by a fresh one at the next obtain', () => {
      const { dir, created } = directory(10);
      const a = dir.obtain('a');
      a.shutDown('gave up');
      const again = dir.obtain('a');
      expect(again).not.toBe(a);
      expect(again.isStopped).toBe(false);
      expect(again.tell(note('x'))).toBe(true);
      expect(created).toEqual(['a', 'a']);
      expect(dir.size).toBe(1);
    });
  });
});
