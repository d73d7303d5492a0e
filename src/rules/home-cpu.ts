/**
 * A home's share of the rule workers: a token bucket of worker time. It fills at `msPerSecond` ms
 * per second of wall time, up to one second's worth; each evaluation takes what the worker measured
 * for it and what the main thread spent on it (its state read, its task sent), after the fact: it
 * may go below zero. While it is empty the home's
 * events are dropped (`tier_rule_dropped_total{reason="home_cpu"}`) instead of queued for the
 * workers, so a home whose rules are costly cannot keep the threads from other homes, and what it
 * had queued drains at once when its load stops.
 */
export class HomeCpuBudget {
  #tokens: number;
  #at: number;

  /** `msPerSecond` 0: no budget. `now`: a monotonic clock in ms. */
  constructor(
    private readonly msPerSecond: number,
    private readonly now: () => number,
  ) {
    this.#tokens = msPerSecond;
    this.#at = now();
  }

  /** The home has used more worker time than its share: its next evaluation is dropped. */
  get overdrawn(): boolean {
    if (this.msPerSecond <= 0) return false;
    const now = this.now();
    this.#tokens = Math.min(this.msPerSecond, this.#tokens + ((now - this.#at) * this.msPerSecond) / 1000);
    this.#at = now;
    return this.#tokens <= 0;
  }

  /** The bucket is back at one second's worth: a fresh budget would be the same (it can be forgotten). */
  get full(): boolean {
    return this.msPerSecond <= 0 || (!this.overdrawn && this.#tokens >= this.msPerSecond);
  }

  /** Takes `ms` an evaluation of the home used: its worker time, and the main thread's for its state read and task. */
  charge(ms: number): void {
    if (this.msPerSecond > 0) this.#tokens -= ms;
  }
}
