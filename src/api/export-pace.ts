/**
 * How often one home may be exported: after an export whose build took `t` of the loop past `freeMs`, the
 * home's next one is refused `429 rate_limited` for `(share⁻¹ − 1) × t`, so one home's exports
 * take at most `share` of the node's time however fast its users ask again (a user repeating a
 * 25 MB export kept a node's loop busy most of the time: a hostile review, 2026-12-06). Small
 * homes, built in less than `freeMs`, are never paced. The homes remembered are those still
 * waiting: swept as they are added.
 */
import { TierError } from '../errors.js';

export class ExportPace {
  private readonly until = new Map<string, number>();

  constructor(
    private readonly share = 0.1,
    private readonly freeMs = 50,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Throws `rate_limited` (with the wait, whole seconds) while the home's last export is paid for. */
  check(homeId: string): void {
    const until = this.until.get(homeId);
    if (until === undefined) return;
    const wait = until - this.now();
    if (wait <= 0) {
      this.until.delete(homeId);
      return;
    }
    throw new TierError('rate_limited', `home ${homeId} was exported a moment ago and its export is large: try again in ${Math.ceil(wait / 1000)} s`, { retryAfterMs: wait });
  }

  /** An export of the home took `ms` of the loop (the slices of its build, not the turns between). */
  built(homeId: string, ms: number): void {
    if (ms < this.freeMs) return;
    const now = this.now();
    for (const [home, until] of this.until) if (until <= now) this.until.delete(home);
    this.until.set(homeId, now + ms * (1 / this.share - 1));
  }
}
