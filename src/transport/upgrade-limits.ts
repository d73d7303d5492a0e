import { TierError } from '../errors.js';

/** Handshakes refused `busy` since start, by which limit refused them. */
export interface AdmissionRefusals {
  readonly full: number;
  readonly handshakes: number;
  readonly rate: number;
}

export interface UpgradeLimitOptions {
  /** hub sockets this node holds at most (the open-file limit leaves room for ~19,900) */
  maxSockets: number;
  /** handshakes being authenticated at once */
  maxPending: number;
  /** new hub sockets per second, sustained (the burst is one second's worth) */
  ratePerSec: number;
}

/**
 * Admission control for hub upgrades: a node refuses a handshake with 503 `busy` (temporary, with
 * Retry-After) before doing any work for it when it is full, has too many handshakes in flight,
 * or is taking new hubs faster than its rate. A reconnect storm then becomes a queue in the hubs'
 * backoff instead of an overloaded node, and the hubs that get in keep a working node.
 */
export class UpgradeLimits {
  private pending = 0;
  private sockets = 0;
  private tokens: number;
  private tokensAt: number;
  /** read by the metrics at scrape time */
  readonly refusals = { full: 0, handshakes: 0, rate: 0 };

  constructor(
    private readonly options: UpgradeLimitOptions,
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = options.ratePerSec;
    this.tokensAt = now();
  }

  /** Reserves a handshake slot, or returns why not (a `busy` error to answer with). */
  tryStart(): TierError | null {
    if (this.sockets + this.pending >= this.options.maxSockets) return this.refuse('full', `this node holds its maximum of ${this.options.maxSockets} hub sessions: try another node or later`);
    if (this.pending >= this.options.maxPending) return this.refuse('handshakes', 'too many handshakes in progress: retry later');
    const now = this.now();
    this.tokens = Math.min(this.options.ratePerSec, this.tokens + ((now - this.tokensAt) * this.options.ratePerSec) / 1000);
    this.tokensAt = now;
    if (this.tokens < 1) return this.refuse('rate', `new hub connections are limited to ${this.options.ratePerSec}/s on this node: retry later`);
    this.tokens -= 1;
    this.pending++;
    return null;
  }

  private refuse(reason: keyof AdmissionRefusals, message: string): TierError {
    this.refusals[reason]++;
    return new TierError('busy', message);
  }

  /** The handshake reserved by `tryStart` ended: `upgraded` when it became a socket. */
  finish(upgraded: boolean): void {
    this.pending--;
    if (upgraded) this.sockets++;
  }

  /** A hub socket closed. */
  socketClosed(): void {
    this.sockets--;
  }

  get stats(): { sockets: number; pending: number } {
    return { sockets: this.sockets, pending: this.pending };
  }
}
