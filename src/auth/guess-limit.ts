/**
 * Wrong admin tokens, counted by the client's address on both ports (the API takes the admin token
 * too): past `limit` in a window, the address is refused without a check until the window ends. A
 * person-chosen ADMIN_TOKEN could otherwise be guessed at thousands a second, from a script or a
 * rebound page in an operator's browser. Behind a port-forward every client is 127.0.0.1: a
 * guesser locks the operators out too, for the window. Per address only: a guesser with many
 * addresses (an IPv6 prefix) gets `limit` a window from each.
 */
import { monotonicMs } from '../actors/clock.js';
import type { Logger } from '../log/logger.js';
import { SampledLog, Sampler } from '../log/sampler.js';

export interface GuessLimitOptions {
  /** wrong tokens an address may send in a window; @default 10 */
  limit?: number;
  /** @default 10_000 (ms) */
  windowMs?: number;
  /** addresses remembered (the oldest forgotten first); @default 10_000 */
  maxAddresses?: number;
  now?: () => number;
}

export class GuessLimit {
  private readonly byAddress = new Map<string, { since: number; wrong: number }>();
  private readonly limit: number;
  private readonly windowMs: number;
  private readonly maxAddresses: number;
  private readonly now: () => number;

  constructor(options: GuessLimitOptions = {}) {
    this.limit = options.limit ?? 10;
    this.windowMs = options.windowMs ?? 10_000;
    this.maxAddresses = options.maxAddresses ?? 10_000;
    // a lock measured on the wall clock lasted as long as a step back of it (a review of clocks, 2026-12-06)
    this.now = options.now ?? monotonicMs;
  }

  /** ms until `address` may try again; 0: it may now */
  lockedFor(address: string): number {
    const entry = this.current(address);
    return entry && entry.wrong >= this.limit ? entry.since + this.windowMs - this.now() : 0;
  }

  /** `address` sent a wrong token */
  wrong(address: string): void {
    const entry = this.current(address);
    if (entry) {
      entry.wrong += 1;
      return;
    }
    if (this.byAddress.size >= this.maxAddresses) this.byAddress.delete(this.byAddress.keys().next().value!);
    this.byAddress.set(address, { since: this.now(), wrong: 1 });
  }

  get size(): number {
    return this.byAddress.size;
  }

  /** the address's count in its current window; a past window's is dropped */
  private current(address: string): { since: number; wrong: number } | undefined {
    const entry = this.byAddress.get(address);
    if (entry && this.now() - entry.since >= this.windowMs) {
      this.byAddress.delete(address);
      return undefined;
    }
    return entry;
  }
}

/** Where an admin token was refused, and why: counted and logged by the node. */
export interface GuessWatch {
  limit: GuessLimit;
  /** `token`: a wrong one; `locked`: refused unchecked, the address past its limit */
  refused(reason: 'token' | 'locked', address: string, surface: string): void;
}

export type TokenVerdict = { ok: true } | { ok: false; lockedMs: number };

/**
 * `given` checked against `tokens` for a client at `address` (`surface` names where, for the log).
 * No token given is refused without counting: a browser's first visit sends none.
 */
export function checkAdminToken(tokens: { matches(given: string): boolean }, given: string | undefined, address: string, surface: string, watch?: GuessWatch): TokenVerdict {
  if (given === undefined) return { ok: false, lockedMs: 0 };
  const lockedMs = watch?.limit.lockedFor(address) ?? 0;
  if (lockedMs > 0) {
    watch!.refused('locked', address, surface);
    return { ok: false, lockedMs };
  }
  if (tokens.matches(given)) return { ok: true };
  watch?.limit.wrong(address);
  watch?.refused('token', address, surface);
  return { ok: false, lockedMs: 0 };
}

/** The node's watch, for both ports: each refusal counted (`count`), and logged at warn with the address and where (`surface`), 10 lines per address and 10 s. */
export function guessWatch(log: Logger, count: (reason: 'token' | 'locked') => void, limit = new GuessLimit()): GuessWatch {
  const lines = new SampledLog(log, new Sampler(10, 10_000), 'wrong admin tokens not logged', 'remote', monotonicMs, 'warn');
  return {
    limit,
    refused(reason, address, surface) {
      count(reason);
      lines.write(address, { remote: address, surface, reason }, reason === 'locked' ? 'admin token refused unchecked: too many wrong ones from this address' : 'wrong admin token');
    },
  };
}
