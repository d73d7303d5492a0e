/**
 * Fleet notices that must reach every node (`fleet.hubs.changed`, `fleet.tokens.revoked`), held so
 * that a node which published them while its bus was down, or shortly before it noticed (a dead
 * connection is seen only after missed pings), publishes them again once reconnected. Both are
 * safe to repeat: a changed hub is re-checked against the store, a revocation added twice is one.
 */
import { subjects } from '../../proto/subjects.js';
import type { Bus, BusLink } from '../ports/bus/bus.js';
import { encodeBus } from '../protocol/codec.js';
import { steadyWallMs } from '../actors/clock.js';

export interface NoticeOutboxOptions {
  /**
   * How long before an outage was seen a notice may have been lost: the bus's ping interval times
   * three (two missed pongs and the reconnect wait), with margin. @default 30_000 (ms)
   */
  recentMs?: number;
  /** notices held at most; past it the oldest go and the next reconnect asks for a full reconcile @default 10_000 */
  max?: number;
  now?: () => number;
}

interface Notice {
  readonly subject: string;
  readonly data: Uint8Array;
  /** when it was last published (ms since the Unix epoch) */
  at: number;
}

/** What a reconnect sent again. */
export interface Redelivery {
  /** notices published again */
  resent: number;
  /** true when `fleet.reconcile` was announced instead (notices were dropped from a full outbox) */
  reconcile: boolean;
}

export class NoticeOutbox {
  private held: Notice[] = [];
  private overflowAt = -Infinity;
  private readonly recentMs: number;
  private readonly max: number;
  private readonly now: () => number;

  constructor(
    private readonly bus: Bus,
    private readonly link: BusLink,
    options: NoticeOutboxOptions = {},
  ) {
    this.recentMs = options.recentMs ?? 30_000;
    this.max = options.max ?? 10_000;
    // as the bus's outage times (bus-nats.ts): a step back of the wall clock in an outage dropped its notices from the resend
    this.now = options.now ?? steadyWallMs;
  }

  get size(): number {
    return this.held.length;
  }

  /** Publishes now (dropped by the bus if it is down) and holds the notice for a reconnect. */
  publish(subject: string, data: Uint8Array): void {
    const now = this.now();
    this.prune(now);
    this.held.push({ subject, data, at: now });
    if (this.held.length > this.max) {
      this.held.shift();
      this.overflowAt = now;
    }
    this.bus.publish(subject, data);
  }

  /**
   * After a reconnect: the notices published since `downSince - recentMs` go out again (newest
   * kept), or, when some of those were dropped from a full outbox, one `fleet.reconcile` so every
   * node re-checks everything. Held ones stay for `recentMs` more, in case this link dies too.
   */
  reconnected(downSince: number): Redelivery {
    const now = this.now();
    const from = downSince - this.recentMs;
    this.held = this.held.filter((n) => n.at >= from);
    for (const n of this.held) n.at = now;
    if (this.overflowAt >= from) {
      this.overflowAt = now;
      this.bus.publish(subjects.fleetReconcile, encodeBus({ reason: 'outbox_overflow' }));
      return { resent: 0, reconcile: true };
    }
    for (const n of this.held) this.bus.publish(n.subject, n.data);
    return { resent: this.held.length, reconcile: false };
  }

  /** Only while connected: notices older than `recentMs` were delivered (or the link's loss would have been seen). */
  private prune(now: number): void {
    if (!this.link.connected) return;
    let drop = 0;
    while (drop < this.held.length && this.held[drop]!.at < now - this.recentMs) drop++;
    if (drop > 0) this.held.splice(0, drop);
  }
}
