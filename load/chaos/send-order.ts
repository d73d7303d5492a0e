/**
 * When the hubs of a chaos run sent each counter value, on one clock for the whole fleet: a
 * value's first send and its last (a resend after a reconnect). An app may be handed a value
 * again after a larger one (at least once: a report resent after its session ended), but never
 * a value whose last send came before the larger one was first sent: that is an old value
 * published after a newer one, as a node that stalled and resumed would, after its hubs moved on.
 */
export class SendOrder {
  private clock = 0;
  /** by `deviceKey`: per counter value (its index), the clock at its first and last send */
  private readonly first = new Map<string, number[]>();
  private readonly last = new Map<string, number[]>();
  /** by `deviceKey`: per counter value, s since this order began at its first send (a miss is told by when) */
  private readonly firstS = new Map<string, number[]>();
  private readonly began = performance.now();

  /** The value's first send. */
  sent(key: string, n: number): void {
    const at = ++this.clock;
    stamp(this.first, key, n, at);
    stamp(this.last, key, n, at);
    stamp(this.firstS, key, n, Math.round(performance.now() - this.began) / 1000);
  }

  /** s since the order began, on the clock of `sentAtS`. */
  nowS(): number {
    return Math.round(performance.now() - this.began) / 1000;
  }

  /** When the value was first sent: s since the order began (the run's traffic). */
  sentAtS(key: string, n: number): number | undefined {
    return this.firstS.get(key)?.[n];
  }

  /** The value sent again (unacknowledged when the hub's session ended). */
  resent(key: string, n: number): void {
    stamp(this.last, key, n, ++this.clock);
  }

  /**
   * True when `older`, delivered after `newer`, could only come from a session the hub had left:
   * the hub last sent `older` before it first sent `newer`.
   */
  stale(key: string, older: number, newer: number): boolean {
    const lastOlder = this.last.get(key)?.[older];
    const firstNewer = this.first.get(key)?.[newer];
    return lastOlder !== undefined && firstNewer !== undefined && lastOlder < firstNewer;
  }
}

function stamp(byKey: Map<string, number[]>, key: string, n: number, at: number): void {
  let values = byKey.get(key);
  if (!values) byKey.set(key, (values = []));
  values[n] = at;
}
