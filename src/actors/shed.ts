/**
 * Moving hubs off a node that holds more than its share: nothing spreads them again after a rolling
 * update (the node restarted last gets only new connections), so an operator sheds the fuller
 * nodes (`POST /debug/shed` on the admin port). `n` of the node's sessions, picked at random, are
 * told `reconnect {after, e:"rebalancing"}` a few at a time over `overMs`, each back within a
 * second through the load balancer, most to other nodes; a hub is offline that second, not the
 * whole spread. One shed at a time: a new one replaces the one in progress.
 */
import type { SessionView } from './session-index.js';
import { monotonicMs } from './clock.js';

/** A session as the shedder sees it: HubSession.shutdown. */
export interface Sheddable {
  /** `online` until told to go (a session already told, or closing, is not picked again) */
  readonly state: string;
  shutdown(afterMs: number, resultsMs: undefined, why: 'rebalancing'): void;
}

const TICK_MS = 100;

export class Shedder {
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly sessions: SessionView<Sheddable>,
    private readonly random: () => number = Math.random,
    /** intervals on the monotonic clock: on the wall clock a step forward told every session at once (review "clock") */
    private readonly now: () => number = monotonicMs,
  ) {}

  /** Starts shedding `n` sessions (at most all online) evenly over `overMs`; answers how many of how many online. */
  start(n: number, overMs: number): { shedding: number; sessions: number } {
    this.stop();
    const all = this.sessions.list().filter((s) => s.state === 'online');
    const k = Math.min(n, all.length);
    // the first k of a random order (a partial Fisher–Yates)
    for (let i = 0; i < k; i++) {
      const j = i + Math.floor(this.random() * (all.length - i));
      [all[i], all[j]] = [all[j]!, all[i]!];
    }
    const picked = all.slice(0, k);
    const started = this.now();
    let next = 0;
    const tick = () => {
      const due = Math.min(k, Math.ceil(((this.now() - started + TICK_MS) / Math.max(overMs, TICK_MS)) * k));
      for (; next < due; next++) picked[next]!.shutdown(Math.floor(this.random() * 1_000), undefined, 'rebalancing');
      if (next >= k) this.stop();
    };
    if (k > 0) {
      this.timer = setInterval(tick, TICK_MS).unref();
      tick();
    }
    return { shedding: k, sessions: all.length };
  }

  /** Sessions still to be told, none once stopped or done. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
