import { monotonicMs } from '../actors/clock.js';
import { memoryPressure, type MemoryReading } from './cgroup-memory.js';

/** Handshakes past TIER_MAX_HUB_SESSIONS of hubs that hold a session on the node (a takeover ends it). */
const REPLACING_HEADROOM = 64;

/** Handshakes refused `busy` since start, by which limit refused them. */
export interface AdmissionRefusals {
  readonly full: number;
  readonly handshakes: number;
  readonly rate: number;
  readonly late: number;
  readonly memory: number;
}

/** Why a handshake was refused `busy`. */
export type BusyReason = keyof AdmissionRefusals;

export interface UpgradeLimitOptions {
  /** hub sockets this node holds at most (the open-file limit leaves room for ~19,900) */
  maxSockets: number;
  /** handshakes being authenticated at once */
  maxPending: number;
  /** new hub sockets per second, sustained (the burst is one second's worth) */
  ratePerSec: number;
  /** refuse while the event loop runs later than this (ms; 0: never), as `loopLagMs` tells */
  maxLoopLagMs?: number;
  loopLagMs?: () => number;
  /** refuse while the memory the kernel cannot reclaim, or the heap, is above this fraction of its limit (0: never) */
  maxMemoryFraction?: number;
  memory?: () => MemoryReading;
  /** told of each refusal for memory (the node then collects its garbage, HeapRelease) */
  memoryPressed?: () => void;
}

/**
 * Admission control for hub upgrades: a node refuses a handshake with 503 `busy` (temporary, with
 * Retry-After) before doing any work for it when it is full, has too many handshakes in flight,
 * its memory nears its cgroup's limit or its heap's (a pod's: a connect burst's garbage held by V8 for half a
 * minute would get it killed, BENCHMARKS.md), is taking new hubs faster than its rate, or its
 * event loop runs late. A reconnect storm then becomes a queue in the hubs' backoff instead of an
 * overloaded or killed node, and the hubs that get in keep a working node. The last limit is off
 * unless configured (TIER_SHED_LOOP_LAG_MS): where
 * nodes share cores, a late loop is waiting for a core, and a refused hub comes back to the same
 * cores; at 500,000 hubs on 27 nodes it cut the connect rate to a third (BENCHMARKS.md).
 */
export class UpgradeLimits {
  private pending = 0;
  private sockets = 0;
  private tokens: number;
  private tokensAt: number;
  /** read by the metrics at scrape time */
  readonly refusals = { full: 0, handshakes: 0, rate: 0, late: 0, memory: 0 };

  constructor(
    private readonly options: UpgradeLimitOptions,
    /** @default monotonicMs: on the wall clock, a step back refused every hub until it caught up */
    private readonly now: () => number = monotonicMs,
  ) {
    this.tokens = options.ratePerSec;
    this.tokensAt = now();
  }

  /**
   * Reserves a handshake slot, or returns why not. A reason, not an error: in a reconnect storm
   * refusals are most of what a node does, and an error's stack trace was a fifth of one's cost.
   */
  tryStart(replacing = false): BusyReason | null {
    // a hub replacing its own session (a half-open socket it gave up on) ends that session once
    // admitted: refused `full`, it was locked out until the old one's idle timeout. A few such
    // handshakes may pass the bound at once, never many: the file limit leaves little room above it
    const bound = this.options.maxSockets + (replacing ? REPLACING_HEADROOM : 0);
    if (this.sockets + this.pending >= bound) return this.refuse('full');
    if (this.pending >= this.options.maxPending) return this.refuse('handshakes');
    const maxLag = this.options.maxLoopLagMs ?? 0;
    if (maxLag > 0 && this.options.loopLagMs && this.options.loopLagMs() > maxLag) return this.refuse('late');
    const most = this.options.maxMemoryFraction ?? 0;
    if (most > 0 && this.options.memory) {
      if (memoryPressure(this.options.memory(), most) !== null) {
        this.options.memoryPressed?.();
        return this.refuse('memory');
      }
    }
    const now = this.now();
    this.tokens = Math.min(this.options.ratePerSec, this.tokens + ((now - this.tokensAt) * this.options.ratePerSec) / 1000);
    this.tokensAt = now;
    if (this.tokens < 1) return this.refuse('rate');
    this.tokens -= 1;
    this.pending++;
    return null;
  }

  /** What a hub refused for `reason` is told (the same for every refusal of this node: answers are built once). */
  message(reason: BusyReason): string {
    switch (reason) {
      case 'full':
        return `this node holds its maximum of ${this.options.maxSockets} hub sessions: try another node or later`;
      case 'handshakes':
        return 'too many handshakes in progress: retry later';
      case 'late':
        return `this node is overloaded (its event loop runs more than ${this.options.maxLoopLagMs ?? 0} ms late): retry later`;
      case 'memory':
        return 'this node is near its memory limit: retry later';
      case 'rate':
        return `new hub connections are limited to ${this.options.ratePerSec}/s on this node: retry later`;
    }
  }

  private refuse(reason: BusyReason): BusyReason {
    this.refusals[reason]++;
    return reason;
  }

  /** The handshake reserved by `tryStart` ended: `upgraded` when it became a socket. */
  finish(upgraded: boolean): void {
    this.pending--;
    if (upgraded) this.sockets++;
  }

  /**
   * A handshake refused for its credentials gives its token back: the rate paces the work of
   * starting sessions, which it never reached, and forged handshakes at the rate (5,000/s by
   * default, from one machine) would otherwise have refused every real hub `busy`.
   */
  refund(): void {
    this.tokens = Math.min(this.options.ratePerSec, this.tokens + 1);
  }

  /** A hub socket closed. */
  socketClosed(): void {
    this.sockets--;
  }

  get stats(): { sockets: number; pending: number } {
    return { sockets: this.sockets, pending: this.pending };
  }
}
