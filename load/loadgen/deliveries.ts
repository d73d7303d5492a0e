/**
 * The reports of a worker on their way to the app subscribers that follow their homes (a home's
 * hubs and its subscribers live in one worker): by `lt` stamp, how many receipts by the subscribers
 * open when the reports were sent are still awaited. A stamp all of whose receipts came is
 * forgotten; what is left at the end of a run never arrived.
 */
export class Deliveries {
  /** `lt` (wall clock, ms; the reports of one tick may share one) → receipts still awaited */
  private readonly owed = new Map<number, number>();

  /** `subscribers(home)`: the subscribers following `home` now */
  constructor(private readonly subscribers: (home: string) => number) {}

  /** Reports awaited by at least one subscriber. */
  get size(): number {
    return this.owed.size;
  }

  /** A report of `home` stamped `lt` was sent. */
  sent(home: string, lt: number): void {
    const n = this.subscribers(home);
    if (n > 0) this.owed.set(lt, (this.owed.get(lt) ?? 0) + n);
  }

  /** A subscriber received the report stamped `lt`: true when it was awaited. */
  received(lt: number): boolean {
    const n = this.owed.get(lt);
    if (n === undefined) return false;
    if (n <= 1) this.owed.delete(lt);
    else this.owed.set(lt, n - 1);
    return true;
  }

  /** Every receipt still awaited, by report stamp, with its age at `now` (wall clock, ms); then forgotten. */
  forgetMissing(now: number): Array<{ ageMs: number; n: number }> {
    const out = [...this.owed].map(([lt, n]) => ({ ageMs: now - lt, n }));
    this.owed.clear();
    return out;
  }
}
