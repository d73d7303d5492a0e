import { afterEach, describe, expect, it, vi } from 'vitest';
import { TimerWheel, type TimerHandle, type TimerTarget, type TimerWheelOptions } from '../../src/actors/timer-wheel.js';

const TICK = 10;
const SLOTS = 8;
/** one lap of the wheel: a timer further out waits for later laps */
const LAP = TICK * SLOTS;

interface Fired {
  name: string;
  at: number;
  tag: number;
  handle: TimerHandle;
  activeInCallback: boolean;
}

/** A wheel on a fake clock, advanced one millisecond at a time like a perfectly punctual interval. */
function fakeWheel(options: TimerWheelOptions = {}, start = 1_000_003) {
  let now = start;
  const errors: unknown[] = [];
  const fired: Fired[] = [];
  const wheel = new TimerWheel({ tickMs: TICK, slots: SLOTS, now: () => now, onError: (e) => errors.push(e), ...options });
  const target = (name: string, then?: () => void): TimerTarget => ({
    onTimer(tag, handle) {
      fired.push({ name, at: now, tag, handle, activeInCallback: handle.active });
      then?.();
    },
  });
  return {
    wheel,
    errors,
    fired,
    target,
    names: () => fired.map((f) => f.name),
    get now() {
      return now;
    },
    /** lets `ms` pass, calling advance() every millisecond */
    run(ms: number): void {
      for (let i = 0; i < ms; i++) {
        now++;
        wheel.advance();
      }
    },
    /** moves the clock without calling advance() */
    skip(ms: number): void {
      now += ms;
    },
    /** lets `ms` pass in one step, as after a stalled event loop */
    jump(ms: number): void {
      now += ms;
      wheel.advance();
    },
  };
}

const wheels: TimerWheel[] = [];
function track<T extends { wheel: TimerWheel }>(w: T): T {
  wheels.push(w.wheel);
  return w;
}

afterEach(() => {
  for (const w of wheels.splice(0)) w.close();
});

describe('TimerWheel on a fake clock', () => {
  describe('firing time', () => {
    const delays = [0, 1, 5, 9, 10, 11, 25, 79, 80, 81, 150];
    for (const start of [1_000_000, 1_000_003, 1_000_009]) {
      it.each(delays)(`fires at or after the deadline and within one tick (delay %i, start ${start % TICK} ms into a tick)`, (delay) => {
        const w = track(fakeWheel({}, start));
        w.wheel.schedule(delay, w.target('t'));
        const deadline = start + delay;
        w.run(delay + 2 * TICK);
        expect(w.fired).toHaveLength(1);
        const at = w.fired[0]!.at;
        expect(at).toBeGreaterThanOrEqual(deadline);
        expect(at).toBeLessThanOrEqual(deadline + TICK);
      });
    }

    it('does not fire before the deadline', () => {
      const w = track(fakeWheel());
      w.wheel.schedule(50, w.target('t'));
      w.run(49);
      expect(w.fired).toHaveLength(0);
      expect(w.wheel.size).toBe(1);
    });

    it('treats a negative delay as zero', () => {
      const w = track(fakeWheel());
      w.wheel.schedule(-100, w.target('t'));
      w.run(TICK);
      expect(w.names()).toEqual(['t']);
    });

    it('passes the tag and the handle, already inactive, to onTimer', () => {
      const w = track(fakeWheel());
      const h = w.wheel.schedule(20, w.target('t'), 7);
      expect(h.active).toBe(true);
      expect(h.tag).toBe(7);
      expect(h.deadline).toBe(w.now + 20);
      w.run(30);
      expect(w.fired[0]).toMatchObject({ tag: 7, activeInCallback: false });
      expect(w.fired[0]!.handle).toBe(h);
      expect(h.active).toBe(false);
    });

    it('fires each timer once', () => {
      const w = track(fakeWheel());
      w.wheel.schedule(15, w.target('t'));
      w.run(LAP * 3);
      w.jump(LAP * 10);
      expect(w.names()).toEqual(['t']);
    });
  });

  describe('slack', () => {
    it('puts a timer with slack on a grid of that step: never before its deadline, at most the slack (and a tick) after', () => {
      for (const delay of [1, 14, 39, 40, 41, 95]) {
        const w = track(fakeWheel({}, 1_000_003));
        w.wheel.schedule(delay, w.target('t'), 0, 4 * TICK);
        w.run(delay + 6 * TICK);
        const at = w.fired[0]!.at;
        expect(at).toBeGreaterThanOrEqual(1_000_003 + delay);
        expect(at).toBeLessThanOrEqual(1_000_003 + delay + 5 * TICK);
        // on the grid: a multiple of the step, in ticks
        expect(Math.floor(at / TICK) % 4).toBe(0);
      }
    });

    it('fires timers with slack whose deadlines differ within one step together', () => {
      const w = track(fakeWheel({}, 1_000_000));
      for (const d of [3, 12, 27, 38]) w.wheel.schedule(d, w.target(String(d)), 0, 4 * TICK);
      w.run(5 * TICK);
      expect(w.names()).toEqual(['3', '12', '27', '38']);
      expect(new Set(w.fired.map((f) => f.at)).size).toBe(1);
    });
  });

  describe('order', () => {
    it('fires in deadline order across slots', () => {
      const w = track(fakeWheel());
      for (const d of [50, 20, 65, 35, 10, 42]) w.wheel.schedule(d, w.target(String(d)));
      w.run(LAP);
      expect(w.names()).toEqual(['10', '20', '35', '42', '50', '65']);
    });

    it('fires in deadline order when one advance covers several ticks (less than a lap)', () => {
      const w = track(fakeWheel());
      for (const d of [60, 20, 45, 31, 10]) w.wheel.schedule(d, w.target(String(d)));
      w.jump(70);
      expect(w.names()).toEqual(['10', '20', '31', '45', '60']);
    });

    it('fires timers of one slot in scheduling order', () => {
      const w = track(fakeWheel({}, 1_000_000));
      for (const name of ['a', 'b', 'c']) w.wheel.schedule(25, w.target(name));
      w.run(40);
      expect(w.names()).toEqual(['a', 'b', 'c']);
    });
  });

  describe('cancel', () => {
    it('prevents firing and leaves the others', () => {
      const w = track(fakeWheel());
      const a = w.wheel.schedule(20, w.target('a'));
      w.wheel.schedule(20, w.target('b'));
      const c = w.wheel.schedule(LAP * 2 + 5, w.target('c'));
      w.wheel.cancel(a);
      w.wheel.cancel(c);
      expect(a.active).toBe(false);
      w.run(LAP * 3);
      expect(w.names()).toEqual(['b']);
    });

    it('from inside another timer\'s callback, also for a timer of the same slot', () => {
      const w = track(fakeWheel({}, 1_000_000));
      let later: TimerHandle | undefined;
      let sameSlot: TimerHandle | undefined;
      w.wheel.schedule(
        20,
        w.target('first', () => {
          w.wheel.cancel(sameSlot);
          w.wheel.cancel(later);
        }),
      );
      sameSlot = w.wheel.schedule(20, w.target('same slot'));
      later = w.wheel.schedule(40, w.target('later'));
      w.run(LAP);
      expect(w.names()).toEqual(['first']);
      expect(w.wheel.size).toBe(0);
    });

    it('is harmless twice, after firing, or with nothing', () => {
      const w = track(fakeWheel());
      const a = w.wheel.schedule(10, w.target('a'));
      w.wheel.schedule(LAP, w.target('b'));
      w.run(2 * TICK);
      expect(w.names()).toEqual(['a']);
      w.wheel.cancel(a);
      w.wheel.cancel(null);
      w.wheel.cancel(undefined);
      expect(w.wheel.size).toBe(1);
      w.run(LAP);
      expect(w.names()).toEqual(['a', 'b']);
    });
  });

  describe('beyond one lap', () => {
    it.each([LAP + 1, LAP * 2 + 7, LAP * 5, LAP * 12 + 3])('a %i ms timer fires on time, not at an earlier lap', (delay) => {
      const w = track(fakeWheel());
      const deadline = w.now + delay;
      w.wheel.schedule(delay, w.target('far'));
      w.wheel.schedule(5, w.target('near'));
      w.run(delay + TICK);
      expect(w.names()).toEqual(['near', 'far']);
      const at = w.fired[1]!.at;
      expect(at).toBeGreaterThanOrEqual(deadline);
      expect(at).toBeLessThanOrEqual(deadline + TICK);
    });

    it('after a stall longer than a lap, fires everything due once and keeps what is not', () => {
      const w = track(fakeWheel());
      const start = w.now;
      // LAP - 3 lands in the slot the cursor stands on: a stall must visit that one too
      for (const d of [5, 30, LAP - 3, LAP + 20, LAP * 3]) w.wheel.schedule(d, w.target(String(d)));
      w.wheel.schedule(LAP * 6, w.target('later'));
      w.jump(LAP * 4);
      expect([...w.names()].sort()).toEqual(['100', '240', '30', '5', String(LAP - 3)].sort());
      expect(w.wheel.size).toBe(1);
      w.run(LAP * 2 + TICK);
      expect(w.names().at(-1)).toBe('later');
      expect(w.fired.at(-1)!.at).toBeGreaterThanOrEqual(start + LAP * 6);
      expect(w.fired.at(-1)!.at).toBeLessThanOrEqual(start + LAP * 6 + TICK);
    });

    it('a timer scheduled after the wheel sat idle for many laps fires on time', () => {
      const w = track(fakeWheel());
      w.wheel.schedule(5, w.target('first'));
      w.run(2 * TICK);
      // idle: no timer pending, so nothing calls advance() while the clock moves on
      w.skip(LAP * 50 + 3);
      const deadline = w.now + 25;
      w.wheel.schedule(25, w.target('second'));
      w.run(24);
      expect(w.names()).toEqual(['first']);
      w.run(1 + TICK);
      expect(w.names()).toEqual(['first', 'second']);
      expect(w.fired[1]!.at).toBeGreaterThanOrEqual(deadline);
      expect(w.fired[1]!.at).toBeLessThanOrEqual(deadline + TICK);
    });
  });

  describe('callbacks', () => {
    it('a callback may schedule another timer, which fires on time', () => {
      const w = track(fakeWheel());
      let second: number | undefined;
      w.wheel.schedule(
        20,
        w.target('first', () => {
          second = w.now + 30;
          w.wheel.schedule(30, w.target('second'));
        }),
      );
      w.run(100);
      expect(w.names()).toEqual(['first', 'second']);
      expect(w.fired[1]!.at).toBeGreaterThanOrEqual(second!);
      expect(w.fired[1]!.at).toBeLessThanOrEqual(second! + TICK);
    });

    it('a callback that reschedules itself runs as a periodic timer', () => {
      const w = track(fakeWheel());
      let runs = 0;
      const periodic: TimerTarget = {
        onTimer() {
          runs++;
          if (runs < 5) w.wheel.schedule(25, periodic);
        },
      };
      w.wheel.schedule(25, periodic);
      w.run(25 * 4 + 3 * TICK);
      expect(runs).toBe(4);
      w.run(LAP);
      expect(runs).toBe(5);
      expect(w.wheel.size).toBe(0);
    });

    it('a callback scheduling with delay 0 does not fire before a later tick of the same advance', () => {
      const w = track(fakeWheel());
      w.wheel.schedule(
        10,
        w.target('first', () => {
          w.wheel.schedule(0, w.target('zero'));
        }),
      );
      w.run(10 + 2 * TICK);
      expect(w.names()).toEqual(['first', 'zero']);
      expect(w.fired[1]!.at).toBeGreaterThanOrEqual(w.fired[0]!.at);
      expect(w.fired[1]!.at).toBeLessThanOrEqual(w.fired[0]!.at + TICK);
    });

    it('a throwing callback goes to onError and the other timers still fire', () => {
      const w = track(fakeWheel({}, 1_000_000));
      const boom = new Error('boom');
      w.wheel.schedule(15, w.target('before'));
      w.wheel.schedule(
        15,
        w.target('thrower', () => {
          throw boom;
        }),
      );
      w.wheel.schedule(15, w.target('same slot after'));
      w.wheel.schedule(40, w.target('later'));
      w.run(LAP);
      expect(w.names()).toEqual(['before', 'thrower', 'same slot after', 'later']);
      expect(w.errors).toEqual([boom]);
      expect(w.wheel.size).toBe(0);
    });
  });

  describe('size', () => {
    it('counts timers scheduled and neither fired nor cancelled', () => {
      const w = track(fakeWheel());
      expect(w.wheel.size).toBe(0);
      const a = w.wheel.schedule(10, w.target('a'));
      const b = w.wheel.schedule(30, w.target('b'));
      w.wheel.schedule(LAP * 2, w.target('c'));
      expect(w.wheel.size).toBe(3);
      w.wheel.cancel(b);
      expect(w.wheel.size).toBe(2);
      w.wheel.cancel(b);
      expect(w.wheel.size).toBe(2);
      w.run(2 * TICK);
      expect(w.names()).toEqual(['a']);
      expect(w.wheel.size).toBe(1);
      w.wheel.cancel(a);
      expect(w.wheel.size).toBe(1);
      w.run(LAP * 2);
      expect(w.wheel.size).toBe(0);
    });
  });

  describe('close', () => {
    it('drops pending timers: none fires, size is 0, handles are inactive', () => {
      const w = track(fakeWheel());
      const handles = [10, 50, LAP * 3].map((d) => w.wheel.schedule(d, w.target(String(d))));
      w.wheel.close();
      expect(w.wheel.size).toBe(0);
      for (const h of handles) expect(h.active).toBe(false);
      w.run(LAP * 4);
      w.jump(LAP * 10);
      expect(w.fired).toHaveLength(0);
    });

    it('is harmless from inside a callback and twice; the wheel can be used again', () => {
      const w = track(fakeWheel({}, 1_000_000));
      // one slot holding, in this order: a timer of a later lap (kept), the closer, another timer
      w.wheel.schedule(15 + LAP, w.target('same slot, later lap'));
      w.wheel.schedule(15, w.target('closer', () => w.wheel.close()));
      w.wheel.schedule(15, w.target('same slot'));
      w.wheel.schedule(40, w.target('later'));
      w.run(LAP * 3);
      w.wheel.close();
      expect(w.names()).toEqual(['closer']);
      expect(w.wheel.size).toBe(0);
      expect(w.errors).toEqual([]);
      // a timer scheduled afterwards in that slot fires normally
      w.wheel.schedule(LAP, w.target('again'));
      expect(() => w.run(LAP + TICK)).not.toThrow();
      expect(w.names()).toEqual(['closer', 'again']);
    });
  });
});

describe('TimerWheel on the real clock', () => {
  it('sleeps until the slot of its next timer instead of waking every tick', async () => {
    const wheel = new TimerWheel({ tickMs: 5 });
    wheels.push(wheel);
    const wakes = vi.spyOn(wheel, 'advance');
    await new Promise<void>((resolve) => wheel.schedule(300, { onTimer: () => resolve() }));
    // 60 ticks passed: one wake-up, and a second when the first came a little early
    expect(wakes.mock.calls.length).toBeLessThanOrEqual(2);
  });

  it('wakes for a timer scheduled earlier than the wake-up already set', async () => {
    const wheel = new TimerWheel({ tickMs: 5 });
    wheels.push(wheel);
    const fired: string[] = [];
    wheel.schedule(2_000, { onTimer: () => fired.push('far') });
    await new Promise<void>((resolve) => wheel.schedule(20, { onTimer: () => resolve() }));
    expect(fired).toEqual([]);
  });

  it('a callback scheduling a later timer does not delay a timer due before it', async () => {
    const wheel = new TimerWheel({ tickMs: 5 });
    wheels.push(wheel);
    const fired: string[] = [];
    wheel.schedule(20, { onTimer: () => void wheel.schedule(2_000, { onTimer: () => fired.push('late') }) });
    await new Promise<void>((resolve) => wheel.schedule(60, { onTimer: () => resolve() }));
    // had the wheel slept until the late timer, both would have fired in one wake-up
    expect(fired).toEqual([]);
  });

  it("arms no setTimeout past its 2^31-1 ms (Node fires such a timer at once, with a warning): a 30-day token's expiry on a quiet wheel", async () => {
    const wheel = new TimerWheel({ tickMs: 5 });
    wheels.push(wheel);
    const warnings: string[] = [];
    const onWarning = (w: Error) => void warnings.push(w.name);
    process.on('warning', onWarning);
    const fired: string[] = [];
    wheel.schedule(30 * 86_400_000, { onTimer: () => fired.push('expiry') });
    await new Promise((r) => setTimeout(r, 50));
    process.off('warning', onWarning);
    expect(warnings).toEqual([]);
    expect(fired).toEqual([]);
    expect(wheel.size).toBe(1);
  });

  it('ticks by itself while timers are pending', async () => {
    const wheel = new TimerWheel({ tickMs: 5 });
    wheels.push(wheel);
    const started = Date.now();
    const firedAt = await new Promise<number>((resolve) => {
      wheel.schedule(30, { onTimer: () => resolve(Date.now()) });
    });
    expect(firedAt - started).toBeGreaterThanOrEqual(29);
    expect(wheel.size).toBe(0);
  });
});

describe('an idle wheel', () => {
  it('keeps no cancelled handle: a wheel whose every timer was cancelled never visits its slots again', async () => {
    const { setFlagsFromString } = await import('node:v8');
    const { runInNewContext } = await import('node:vm');
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const w = fakeWheel();
    // app sockets opened and closed in a loop: each schedules its token's expiry and cancels it at
    // close (made in a function of their own, so that no local of this one holds the last)
    const socketsOpenedAndClosed = (n: number): Array<WeakRef<TimerHandle>> =>
      Array.from({ length: n }, (_, i) => {
        // an hour out, in a slot the run below does not visit (slot 6 of 8; the due one is in slot 1)
        const h = w.wheel.schedule(3_600_050, w.target(`socket-${i}`));
        w.wheel.cancel(h);
        return new WeakRef(h);
      });
    const refs = socketsOpenedAndClosed(200);
    // the last one fired, the others cancelled beside it: the wheel goes idle from a visit of a slot too
    w.wheel.schedule(5, w.target('due'));
    refs.push(...socketsOpenedAndClosed(50));
    w.run(TICK);
    expect(w.names()).toEqual(['due']);
    expect(w.wheel.size).toBe(0);
    await new Promise((resolve) => setImmediate(resolve));
    gc();
    expect(refs.filter((r) => r.deref() !== undefined)).toHaveLength(0);
    // the wheel lives on (a node's does): its slots, not its end, let the handles go
    expect(w.wheel.schedule(1, w.target('alive')).active).toBe(true);
  });
});
