import { outsideSpans } from '../trace/active-span.js';
import { tracing } from '../trace/tracing.js';

/**
 * One hashed timing wheel per node for every actor timer (command timeouts, hello and idle
 * checks). Scheduling and cancelling are O(1) and allocate one small handle; a single interval
 * ticks only while timers are pending, so tens of thousands of actors cost no per-actor timers.
 * Resolution is `tickMs`: a timer fires between its deadline and one tick later.
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
  /** clock, replaceable in tests */
  now?: () => number;
  onError?: (err: unknown) => void;
}

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
  private interval: NodeJS.Timeout | null = null;

  constructor(options: TimerWheelOptions = {}) {
    this.tickMs = options.tickMs ?? 10;
    const slots = options.slots ?? 1024;
    if ((slots & (slots - 1)) !== 0) throw new RangeError('slots must be a power of two');
    this.mask = slots - 1;
    this.buckets = Array.from({ length: slots }, () => []);
    this.now = options.now ?? Date.now;
    this.onError = options.onError ?? ((err) => queueMicrotask(() => { throw err; }));
    this.cursor = Math.floor(this.now() / this.tickMs);
  }

  /** Calls `target.onTimer(tag)` once, `delayMs` from now, unless cancelled first. */
  schedule(delayMs: number, target: TimerTarget, tag = 0): TimerHandle {
    const deadline = this.now() + Math.max(0, delayMs);
    const handle = new TimerHandle(target, tag, deadline);
    // never into a slot the cursor has already passed: at the earliest the next tick
    const tick = Math.max(Math.ceil(deadline / this.tickMs), this.cursor + 1);
    this.buckets[tick & this.mask]!.push(handle);
    this.pending++;
    if (this.interval === null) this.start();
    return handle;
  }

  cancel(handle: TimerHandle | null | undefined): void {
    if (handle?.target) {
      handle.target = null;
      this.pending--;
      if (this.pending === 0) this.stop();
    }
  }

  /** Timers scheduled and neither fired nor cancelled. */
  get size(): number {
    return this.pending;
  }

  /** Fires everything due up to now; called by the interval, and by tests with a fake clock. */
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
    if (this.pending === 0) this.stop();
  }

  private start(): void {
    this.cursor = Math.max(this.cursor, Math.floor(this.now() / this.tickMs));
    // one interval serves every timer: a span active where the first one was set must not stay in it
    this.interval = tracing === null ? setInterval(() => this.advance(), this.tickMs) : outsideSpans(() => setInterval(() => this.advance(), this.tickMs));
    this.interval.unref();
  }

  private stop(): void {
    if (this.interval !== null) {
      clearInterval(this.interval);
      this.interval = null;
    }
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
