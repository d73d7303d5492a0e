import { TierError } from '../errors.js';

/** An action of a rule refused by its home's ActionBudget: counted apart (`result="refused"`), logged sampled. */
export class ActionBudgetError extends TierError {
  override name = 'ActionBudgetError';

  constructor(homeId: string, bound: BudgetBound) {
    super('rate_limited', `not run: home ${homeId}'s rules started more than ${bound.limit} ${bound.what} within ${bound.windowMs === 1_000 ? 'a second' : `${bound.windowMs / 1_000} s`} (${bound.setting})`);
  }
}

/** What a budget bounds, for its refusals' message. */
export interface BudgetBound {
  readonly limit: number;
  readonly windowMs: number;
  /** what is counted, e.g. "device commands and notifications" */
  readonly what: string;
  /** the setting that holds `limit` */
  readonly setting: string;
}

const ACTIONS: Omit<BudgetBound, 'limit'> = { windowMs: 1_000, what: 'device commands and notifications', setting: 'TIER_RULE_HOME_ACTIONS_PER_SEC' };

/** Homes remembered before the full buckets are forgotten (a full bucket is a fresh one). */
const PRUNE_AT = 1_000;

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * What one home's rule runs may start on the node's main thread: a token bucket per home of device
 * commands (a scene's each count), desired changes and notifications, filling at `perSecond` up to
 * one second's worth, so it bounds one event and every second alike. Worker time is HomeCpuBudget's;
 * this is what the evaluation decided to do: 200 rules of 20 scene actions of 50 commands had made
 * one event 200,000 commands, the main thread frozen ~19 s (the review of 2026-12-06). An action
 * past it is refused (`rate_limited`), not queued: an automation minutes late is wrong anyway.
 */
export class ActionBudget {
  readonly #homes = new Map<string, Bucket>();

  readonly #bound: BudgetBound;

  /**
   * `perSecond` 0: no bound. `now`: a monotonic clock in ms. `bound`: another window and name (the
   * notifications' per minute); `perSecond` is then what the window holds.
   */
  constructor(
    readonly perSecond: number,
    private readonly now: () => number,
    bound: Omit<BudgetBound, 'limit'> = ACTIONS,
  ) {
    this.#bound = { ...bound, limit: perSecond };
  }

  /** Throws ActionBudgetError when the home has nothing left (checked before a scene is read or audited). */
  check(homeId: string): void {
    if (this.perSecond > 0 && this.#bucket(homeId).tokens <= 0) throw new ActionBudgetError(homeId, this.#bound);
  }

  /**
   * Takes `n` for the home, or throws ActionBudgetError and empties its bucket: the rest of a flood
   * is then refused by `check`, before any more scenes are read. A charge larger than the bucket (a
   * scene of more commands than `perSecond`) is let through when the bucket is full.
   */
  take(homeId: string, n: number): void {
    if (this.perSecond <= 0) return;
    const b = this.#bucket(homeId);
    if (b.tokens >= Math.min(n, this.perSecond)) {
      b.tokens -= n;
      return;
    }
    b.tokens = Math.min(b.tokens, 0);
    throw new ActionBudgetError(homeId, this.#bound);
  }

  #bucket(homeId: string): Bucket {
    const now = this.now();
    let b = this.#homes.get(homeId);
    if (b === undefined) {
      if (this.#homes.size >= PRUNE_AT) this.#prune(now);
      b = { tokens: this.perSecond, at: now };
      this.#homes.set(homeId, b);
      return b;
    }
    b.tokens = Math.min(this.perSecond, b.tokens + ((now - b.at) * this.perSecond) / this.#bound.windowMs);
    b.at = now;
    return b;
  }

  #prune(now: number): void {
    for (const [id, b] of this.#homes) if (b.tokens + ((now - b.at) * this.perSecond) / this.#bound.windowMs >= this.perSecond) this.#homes.delete(id);
  }
}
