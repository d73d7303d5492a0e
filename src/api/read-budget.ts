/**
 * The event loop's time one home's shadow reads may take a second (`GET /v1/hubs/{hubId}/shadow`):
 * a hub at its limits is about 6 ms of the loop a read, unpaced, and four loops of one user's token
 * held every other hub's acks from p50 3 ms to 77-112 ms (review "complexity"). A home past its
 * budget is answered `429 rate_limited` until the bucket refills; a home whose reads cost less than
 * `freeMs` is never tracked, and those tracked are forgotten once their bucket is full again.
 */
import { TierError } from '../errors.js';
import { HomeCpuBudget } from '../rules/home-cpu.js';

export class HomeReadBudget {
  private readonly homes = new Map<string, HomeCpuBudget>();
  private swept: number;

  constructor(
    private readonly msPerSecond = 100,
    private readonly freeMs = 2,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.swept = now();
  }

  /** Throws `rate_limited` while the home's reads are past their budget. */
  check(homeId: string): void {
    if (this.homes.get(homeId)?.overdrawn !== true) return;
    throw new TierError('rate_limited', `home ${homeId}'s shadows were read for more than ${this.msPerSecond} ms of the node's time in a second: try again in a second`, { retryAfterMs: 1_000 });
  }

  /** A read of the home took `ms` of the loop. */
  spent(homeId: string, ms: number): void {
    let budget = this.homes.get(homeId);
    if (budget === undefined) {
      if (ms < this.freeMs) return;
      this.homes.set(homeId, (budget = new HomeCpuBudget(this.msPerSecond, this.now)));
    }
    budget.charge(ms);
    const now = this.now();
    if (now - this.swept < 1_000) return;
    this.swept = now;
    for (const [home, b] of this.homes) if (b.full) this.homes.delete(home);
  }

  /** homes tracked (bounded by those that read costly shadows in the last second or so) */
  get size(): number {
    return this.homes.size;
  }
}
