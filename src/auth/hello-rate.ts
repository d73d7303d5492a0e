import { monotonicMs } from '../actors/clock.js';

/**
 * Handshakes per hub: a bucket of `burst` hellos refilled one per `everyMs`, checked after the
 * signature verifies and before the nonce is claimed (hellos arriving together each take one),
 * given back unless the hello is admitted (a replay refused `nonce_reused`, or one failing on a
 * backend, spends nothing of the real hub's). One
 * hub's credentials (its owner can read them out of the device) could otherwise connect at the
 * node's whole connect rate: every real hub's handshakes crowded out, and a nonce stored per hello
 * for ten minutes (millions on disk). Buckets full again are forgotten, so the map holds only hubs
 * that connected lately.
 */
export interface HelloRateOptions {
  /** @default 10 */
  burst?: number;
  /** @default 6_000 (ms): ten hellos a minute, sustained */
  everyMs?: number;
  now?: () => number;
}

export class HelloRate {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly burst: number;
  private readonly everyMs: number;
  private readonly now: () => number;
  private sweptAt = 0;

  constructor(options: HelloRateOptions = {}) {
    this.burst = options.burst ?? 10;
    this.everyMs = options.everyMs ?? 6_000;
    // on the wall clock, a step back refused hubs that had connected before it until it caught up (2026-12-06)
    this.now = options.now ?? monotonicMs;
  }

  /** `perMin` handshakes a minute, a burst of as many; 0: none (no limit) */
  static perMinute(perMin: number): HelloRate | undefined {
    return perMin === 0 ? undefined : new HelloRate({ burst: perMin, everyMs: 60_000 / perMin });
  }

  /** Takes one of the hub's hellos; false when it has none left. */
  take(hubId: string): boolean {
    const now = this.now();
    if (now - this.sweptAt >= this.fullAfterMs()) this.sweep(now);
    const tokens = this.tokens(hubId, now);
    if (tokens < 1) return false;
    this.buckets.set(hubId, { tokens: tokens - 1, at: now });
    return true;
  }

  /** Gives back a hello taken for one that was not admitted (a replay, a backend away). */
  giveBack(hubId: string): void {
    const now = this.now();
    this.buckets.set(hubId, { tokens: Math.min(this.burst, this.tokens(hubId, now) + 1), at: now });
  }

  /** How long until the hub has a hello again, ms (0: it has one): what its refusal's Retry-After says. */
  waitMs(hubId: string): number {
    // less a hair: the float of a refill a millisecond short rounds up to two
    return Math.max(0, Math.ceil((1 - this.tokens(hubId, this.now())) * this.everyMs - 1e-6));
  }

  private tokens(hubId: string, now: number): number {
    const b = this.buckets.get(hubId);
    return b === undefined ? this.burst : Math.min(this.burst, b.tokens + (now - b.at) / this.everyMs);
  }

  get size(): number {
    return this.buckets.size;
  }

  private fullAfterMs(): number {
    return this.burst * this.everyMs;
  }

  /** Forgets the buckets that are full again: once per refill time, not per hello. */
  private sweep(now: number): void {
    this.sweptAt = now;
    for (const [hubId, b] of this.buckets) if (b.tokens + (now - b.at) / this.everyMs >= this.burst) this.buckets.delete(hubId);
  }
}
