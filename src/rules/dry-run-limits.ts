import { TierError } from '../errors.js';
import { HomeCpuBudget } from './home-cpu.js';

/** Homes remembered before the full buckets are forgotten (a full bucket is a fresh one). */
const PRUNE_AT = 1_000;

/**
 * Dry runs of one home share a budget of worker time like its events (HomeCpuBudget, its own
 * bucket of the same size) and run one at a time: without it any user of a home could keep the
 * rule workers busy with dry runs of its costliest rule, 16 loops of them holding another home's
 * automations seconds late (the attacker red team, 2026-12-05). A refused one is `429 rate_limited`.
 */
export class DryRunLimits {
  readonly #homes = new Map<string, { budget: HomeCpuBudget; running: boolean }>();

  constructor(
    private readonly msPerSecond: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Runs `run` for `homeId` if the home may: it answers the worker time (ms) it used with its result. */
  async run<T>(homeId: string, run: () => Promise<{ value: T; workerMs: number }>): Promise<T> {
    const home = this.#home(homeId);
    if (home.running) throw new TierError('rate_limited', `a dry run of home ${homeId} is running: one at a time`);
    if (home.budget.overdrawn) throw new TierError('rate_limited', `the dry runs of home ${homeId} used more than their ${this.msPerSecond} ms of worker time per second: try again in a second`);
    home.running = true;
    const started = this.now();
    let workerMs: number | undefined;
    try {
      const out = await run();
      workerMs = out.workerMs;
      return out.value;
    } finally {
      home.running = false;
      // a failure (a timeout) is charged with its whole round trip
      home.budget.charge(workerMs ?? this.now() - started);
    }
  }

  #home(homeId: string): { budget: HomeCpuBudget; running: boolean } {
    let home = this.#homes.get(homeId);
    if (home) return home;
    if (this.#homes.size >= PRUNE_AT) for (const [id, h] of this.#homes) if (!h.running && h.budget.full) this.#homes.delete(id);
    home = { budget: new HomeCpuBudget(this.msPerSecond, this.now), running: false };
    this.#homes.set(homeId, home);
    return home;
  }
}
