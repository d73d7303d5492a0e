/**
 * How late this node's event loop runs: the drift of a timer that should fire every `intervalMs`.
 * One sampler serves admission control (`ms`: the worst of the last `windowMs`, so a starved node
 * sheds at once) and the diagnose check (`window()`: p99 and max since the previous read).
 */
export class LoopLag {
  private readonly recent: Float64Array;
  private next = 0;
  /** samples since the last `window()`, the newest MAX_WINDOW_SAMPLES of them */
  private since: number[] = [];
  private sinceAt = performance.now();
  private last = performance.now();
  private readonly timer: NodeJS.Timeout;

  /** `onSample(lateMs, now)` runs at each tick: the /metrics sampler rides this timer (one timer a node, not two) */
  constructor(
    private readonly intervalMs = 100,
    windowMs = 500,
    private readonly onSample?: (lateMs: number, now: number) => void,
  ) {
    this.recent = new Float64Array(Math.max(1, Math.round(windowMs / intervalMs)));
    this.timer = setInterval(this.sample, intervalMs);
    this.timer.unref();
  }

  private readonly sample = (): void => {
    const now = performance.now();
    const late = Math.max(0, now - this.last - this.intervalMs);
    this.last = now;
    this.recent[this.next++ % this.recent.length] = late;
    // a window nobody reads stays bounded: the oldest samples go
    if (this.since.length >= MAX_WINDOW_SAMPLES) this.since.splice(0, MAX_WINDOW_SAMPLES / 2);
    this.since.push(late);
    this.onSample?.(late, now);
  };

  /** ms the loop ran late at worst within the last `windowMs` */
  get ms(): number {
    let max = 0;
    for (const s of this.recent) if (s > max) max = s;
    return max;
  }

  /** p99 and max lateness (ms) since the previous call (or the start), and how long that was; starts a new window. */
  window(): { p99Ms: number; maxMs: number; windowS: number } {
    const sorted = this.since.sort((a, b) => a - b);
    const now = performance.now();
    const out = {
      p99Ms: sorted.length > 0 ? sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.99) - 1)]! : 0,
      maxMs: sorted.length > 0 ? sorted[sorted.length - 1]! : 0,
      windowS: (now - this.sinceAt) / 1000,
    };
    this.since = [];
    this.sinceAt = now;
    return out;
  }

  close(): void {
    clearInterval(this.timer);
  }
}

/** Samples kept for `window()` at most: an hour at the default interval. */
const MAX_WINDOW_SAMPLES = 36_000;
