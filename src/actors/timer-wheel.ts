import { monotonicMs } from './clock.js';
import { outsideSpans } from '../trace/active-span.js';
import { tracing } from '../trace/tracing.js';

/**
 * One hashed timing wheel per node for every actor timer (command timeouts, hello and idle
 * checks). Scheduling and cancelling are O(1) and allocate one small handle; one timer wakes the
 * wheel at the next tick whose slot holds anything, so tens of thousands of actors cost no
 * per-actor timers, and a wheel of far-off timers does not wake every tick (each wake-up costs a
 * node 40–90 µs here, and a machine runs dozens of nodes). Resolution is `tickMs`: a timer fires
 * between its deadline and one tick later, or up to its `slackMs` later when it has one.
 */
export interface TimerTarget {
  onTimer(tag: number, handle: TimerHandle): void;
}

export class TimerHandle {
  /** null once fired or cancelled */
  target: TimerTarget | null;
  constructor(
    target: TimerTarget,
    readonly tag: number,
    /** on the wheel's clock: by default `monotonicMs`, a small integer where ms since 1970 would be a heap number per handle */
    readonly deadline: number,
  ) {
    this.target = target;
  }
  get active(): boolean {
    return this.target !== null;
  }
}

export interface TimerWheelOptions {
  /** @default 10 (ms) */
  tickMs?: number;
  /** @default 1024: slots; timers further out than slots × tickMs wait for later laps */
  slots?: number;
  /** @default monotonicMs: a step of the wall clock neither fires every timer nor stalls them; replaceable in tests */
  now?: () => number;
  onError?: (err: unknown) => void;
}

/** The longest delay setTimeout takes as given (past it a timer fires at once). */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export class TimerWheel {
  private readonly tickMs: number;
  private readonly mask: number;
  private readonly buckets: TimerHandle[][];
  private readonly now: () => number;
  private readonly onError: (err: unknown) => void;
  private pending = 0;
  /** counts close() calls, so a bucket being fired notices that a callback closed the wheel */
  private closes = 0;
  private cursor: number;
  /** the one timer that wakes the wheel, and the tick it is set for */
  private wake: NodeJS.Timeout | null = null;
  private wakeTick = Infinity;

  constructor(options: TimerWheelOptions = {}) {
    this.tickMs = options.tickMs ?? 10;
    const slots = options.slots ?? 1024;
    if ((slots & (slots - 1)) !== 0) throw new RangeError('slots must be a power of two');
    this.mask = slots - 1;
    this.buckets = Array.from({ length: slots }, () => []);
    this.now = options.now ?? monotonicMs;
    this.onError = options.onError ?? ((err) => queueMicrotask(() => { throw err; }));
    this.cursor = Math.floor(this.now() / this.tickMs);
  }

  /**
   * Calls `target.onTimer(tag)` once, `delayMs` from now, unless cancelled first. `slackMs`: how
   * much later it may fire; timers with slack fall on a grid of that step, so thousands of idle
   * checks share a few ticks instead of waking the wheel at every one.
   */
  schedule(delayMs: number, target: TimerTarget, tag = 0, slackMs = 0): TimerHandle {
    const now = this.now();
    // from idle the cursor is stale: the wheel starts again at the present
    if (this.pending === 0) this.cursor = Math.max(this.cursor, Math.floor(now / this.tickMs));
    const deadline = now + Math.max(0, delayMs);
    const handle = new TimerHandle(target, tag, deadline);
    let tick = Math.ceil(deadline / this.tickMs);
    const step = Math.floor(slackMs / this.tickMs);
    if (step > 1) tick = Math.ceil(tick / step) * step;
    // never into a slot the cursor has already passed: at the earliest the next tick
    tick = Math.max(tick, this.cursor + 1);
    this.buckets[tick & this.mask]!.push(handle);
    this.pending++;
    if (tick < this.wakeTick) this.wakeAt(tick);
    return handle;
  }

  cancel(handle: TimerHandle | null | undefined): void {
    if (handle?.target) {
      handle.target = null;
      this.pending--;
      // its slot keeps the handle until visited: the wake-up planned for it stays (harmless)
      if (this.pending === 0) this.idle();
    }
  }

  /** Timers scheduled and neither fired nor cancelled. */
  get size(): number {
    return this.pending;
  }

  /** Fires everything due up to now; called at each wake-up, and by tests with a fake clock. */
  advance(): void {
    const target = Math.floor(this.now() / this.tickMs);
    const now = this.now();
    // after a long stall, one lap visits every slot once
    const last = Math.min(target, this.cursor + this.mask + 1);
    while (this.cursor < last) {
      this.cursor++;
      this.fireBucket(this.buckets[this.cursor & this.mask]!, now);
    }
    this.cursor = target;
  }

  /** Runs when the wake-up timer fires: what is due, then the next wake-up. */
  private readonly onWake = (): void => {
    this.wake = null;
    this.wakeTick = Infinity;
    this.advance();
    // callbacks may have set a wake-up already, later than a slot that still holds handles
    if (this.pending > 0) {
      const next = this.nextBusyTick();
      if (next < this.wakeTick) this.wakeAt(next);
    }
  };

  /** The next tick whose slot holds a handle (due then, a later lap's, or cancelled): at most a lap ahead. */
  private nextBusyTick(): number {
    for (let tick = this.cursor + 1; tick <= this.cursor + this.mask + 1; tick++) if (this.buckets[tick & this.mask]!.length > 0) return tick;
    return this.cursor + this.mask + 1;
  }

  /** (Re)sets the one wake-up timer for `tick`. */
  private wakeAt(tick: number): void {
    if (this.wake !== null) clearTimeout(this.wake);
    this.wakeTick = tick;
    // at most setTimeout's 2^31-1 ms: past it Node fires at once, with a warning on stderr (a 30-day
    // token's expiry on a quiet node); waking early, the wheel arms again for what is due
    const delay = Math.min(MAX_TIMEOUT_MS, Math.max(1, tick * this.tickMs - this.now()));
    // one timer serves every handle: a span active where one was scheduled must not stay in it
    this.wake = tracing === null ? setTimeout(this.onWake, delay) : outsideSpans(() => setTimeout(this.onWake, delay));
    this.wake.unref();
  }

  private fireBucket(bucket: TimerHandle[], now: number): void {
    if (bucket.length === 0) return;
    const closes = this.closes;
    let keep = 0;
    // bucket.length is read each lap: handles a callback pushes here are sorted too
    for (let i = 0; i < bucket.length; i++) {
      const h = bucket[i]!;
      const t = h.target;
      if (t === null) continue; // cancelled: drop lazily
      if (h.deadline > now) {
        bucket[keep++] = h; // a later lap
        continue;
      }
      h.target = null;
      this.pending--;
      try {
        t.onTimer(h.tag, h);
      } catch (err) {
        this.onError(err);
      }
      // close() emptied every bucket: leave this one as close() (and any later schedule) left it
      if (this.closes !== closes) return;
    }
    bucket.length = keep;
    if (this.pending === 0) this.idle();
  }

  /**
   * Nothing pending: no wake-up, and the slots emptied of the cancelled handles they still hold.
   * An idle wheel visits no slot, so a node whose only timers are cancelled (app sockets opened
   * and closed in a loop, each cancelling its expiry) would keep every handle until 2026-12-06.
   */
  private idle(): void {
    this.stop();
    for (const b of this.buckets) if (b.length > 0) b.length = 0;
  }

  private stop(): void {
    if (this.wake !== null) {
      clearTimeout(this.wake);
      this.wake = null;
    }
    this.wakeTick = Infinity;
  }

  /** Stops ticking; pending timers never fire. */
  close(): void {
    this.closes++;
    this.stop();
    for (const b of this.buckets) {
      for (const h of b) h.target = null;
      b.length = 0;
    }
    this.pending = 0;
  }
}
