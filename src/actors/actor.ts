import type { Logger } from '../log/logger.js';
import { failureLog, type SampledLog } from '../log/sampler.js';
import { outsideSpans } from '../trace/active-span.js';
import { tracing } from '../trace/tracing.js';
import type { TimerWheel } from './timer-wheel.js';
import { monotonicMs } from './clock.js';

/** When a supervisor gives up on an actor: this many failed messages within `withinMs`. */
export interface Supervision {
  maxFailures: number;
  /** ms; a failure older than this is forgotten */
  withinMs: number;
}

/** The default supervision: this many failed messages… */
export const MAX_FAILURES = 10;
/** …within this many ms stop an actor. */
export const FAILURE_WINDOW_MS = 60_000;

/** What the actors of a node (or of one kind, such as the rules engine's homes) share: timers, logger, mailbox bound, supervision. */
export interface ActorSystem {
  readonly timers: TimerWheel;
  readonly log: Logger;
  /** @default 128: queued messages before an actor's overflow policy applies */
  readonly mailboxSize: number;
  /** called once per failed message; the count is exported as a metric */
  onFailure?(address: string, messageType: string, err: unknown): void;
  /** @default { maxFailures: MAX_FAILURES, withinMs: FAILURE_WINDOW_MS } */
  readonly supervision?: Supervision;
  /**
   * where `actor message failed` lines go, keyed by actor kind and message type (`hub:frame`): a
   * backend away fails every session's messages alike, so the node samples them (failureLog). Absent: each is logged
   */
  readonly failureLog?: SampledLog;
  /** the clock (ms) of the supervisor's window and of app tokens' expiry, replaceable in tests; @default the monotonic clock for the window, Date.now for expiry */
  readonly now?: () => number;
}

/**
 * An address, a bounded mailbox and a behaviour. Messages are processed one at a time in arrival
 * order; when `receive` returns a promise, the next message waits for it. A throw or rejection is
 * caught here, logged with the address and message type, and counted: it never reaches the caller
 * of `tell` (a uWS callback, a bus handler) or another actor. The mailbox array exists only while
 * messages wait, so an idle actor costs a few fields.
 *
 * Supervision: a failed message resumes the actor; `maxFailures` failures within `withinMs`
 * (default 10 within a minute) stop it. Failures older than the window are forgotten, so a session
 * that lives for a month is not stopped by rare faults that add up over its life (Akka's
 * `restartWithLimit(n, within)`).
 */
export abstract class Actor<M extends { type: string }> {
  #mailbox: M[] | null = null;
  #busy = false;
  /** times of the failures within the supervision window, oldest first; null until one fails */
  #failures: number[] | null = null;
  protected stopped = false;
  /**
   * The actor's name in logs and failure counts (`hub:<id>`), and its system: given by the
   * subclass, as a field or derived on use (a node holds one hub session per hub: each field counts).
   */
  abstract readonly address: string;
  protected abstract readonly system: ActorSystem;

  /** Delivers a message. false: refused by the overflow policy or the actor has stopped. */
  tell(msg: M): boolean {
    if (this.stopped) return false;
    if (!this.#busy) {
      // each message is work of its own: the teller's span (tracing on) stays out of it and of
      // the messages drained after it; an actor makes its message's span active itself
      if (tracing === null) this.#drain(msg);
      else outsideSpans(() => this.#drain(msg));
      return true;
    }
    const box = (this.#mailbox ??= []);
    if (box.length < this.system.mailboxSize) {
      box.push(msg);
      return true;
    }
    return this.overflow(msg, box);
  }

  /** Handles one message. May be async: the mailbox waits for it. */
  protected abstract receive(msg: M): void | Promise<void>;

  /**
   * The overflow policy when the mailbox is full: return true if the message was absorbed (for
   * example coalesced into a queued one), false after telling its sender it was refused.
   * The default refuses everything.
   */
  protected overflow(msg: M, _queued: M[]): boolean {
    this.refused(msg);
    return false;
  }

  /** Tells the sender of a refused message (an error frame, a `busy` reply). */
  protected refused(_msg: M): void {}

  /** Called once when the actor stops (too many failures, `stop`, `retire`); it should release what it holds. */
  protected abstract onStop(reason: string): void;

  #drain(first: M): void {
    this.#busy = true;
    let msg: M | undefined = first;
    while (msg !== undefined) {
      try {
        const r = this.receive(msg);
        if (r !== undefined) {
          const current: M = msg;
          r.then(
            () => this.#resume(),
            (err: unknown) => {
              this.#fail(current, err);
              this.#resume();
            },
          );
          return;
        }
      } catch (err) {
        this.#fail(msg, err);
      }
      msg = this.#next();
    }
    this.#busy = false;
  }

  #resume(): void {
    const msg = this.#next();
    if (msg === undefined) this.#busy = false;
    else this.#drain(msg);
  }

  #next(): M | undefined {
    if (this.stopped || this.#mailbox === null) return undefined;
    const msg = this.#mailbox.shift();
    if (this.#mailbox.length === 0) this.#mailbox = null;
    return msg;
  }

  #fail(msg: M, err: unknown): void {
    const { maxFailures, withinMs } = this.system.supervision ?? DEFAULT_SUPERVISION;
    // the window on the monotonic clock: after a step of the wall clock back, failures before it were
    // never forgotten and one every 30 s stopped the actor (until 2026-12-06: a review of the day's fixes)
    const now = (this.system.now ?? monotonicMs)();
    const times = (this.#failures ??= []);
    times.push(now);
    while (times.length > 0 && times[0]! <= now - withinMs) times.shift();
    this.system.onFailure?.(this.address, msg.type, err);
    const fields = { err, actor: this.address, message: msg.type, failures: times.length };
    const sampled = this.system.failureLog;
    if (sampled) sampled.write(`${kindOf(this.address)}:${msg.type}`, fields, 'actor message failed');
    else this.system.log.error(fields, 'actor message failed');
    if (times.length >= maxFailures && !this.stopped) {
      this.stop(`${times.length} failed messages within ${withinMs} ms`);
    }
  }

  /** Stops processing; queued messages are refused. */
  protected stop(reason: string): void {
    if (this.stopped) return;
    this.stopped = true;
    const queued = this.#mailbox;
    this.#mailbox = null;
    if (queued) for (const m of queued) this.refused(m);
    try {
      this.onStop(reason);
    } catch (err) {
      this.system.log.error({ err, actor: this.address }, 'actor stop failed');
    }
  }

  /**
   * Stops an idle actor (nothing in progress or queued), as its owner does to forget it; onStop
   * gets `reason`. false, and nothing done, when it is busy.
   */
  retire(reason = 'retired'): boolean {
    if (this.#busy) return false;
    this.stop(reason);
    return true;
  }

  /** Messages waiting (not counting the one being processed). */
  get queued(): number {
    return this.#mailbox?.length ?? 0;
  }

  /** Nothing in progress and nothing queued. */
  get idle(): boolean {
    return !this.#busy;
  }

  get isStopped(): boolean {
    return this.stopped;
  }
}

const DEFAULT_SUPERVISION: Supervision = { maxFailures: MAX_FAILURES, withinMs: FAILURE_WINDOW_MS };

/** A node's `ActorSystem.failureLog`: 10 lines per actor kind and message type and 10 s, then one with the count not logged. */
export function actorFailureLog(log: Logger): SampledLog {
  return failureLog(log, 'actor message failures not logged', 'error');
}

/** The kind of actor an address names (`hub:<id>` → `hub`): a sample key that no id can multiply. */
function kindOf(address: string): string {
  const colon = address.indexOf(':');
  return colon < 0 ? address : address.slice(0, colon);
}

/**
 * The actors of one kind by key (an id), each created on first use. Bounded: when a new one would
 * make more than `max`, idle actors are retired and forgotten (a tenth of `max`, at least one), so
 * actors for ids that come and go do not pile up. Oldest first, with a second chance: one used since
 * the last sweep is passed over once (a use costs one flag, not a re-ordering of the map). A busy
 * actor is never retired, so the count passes `max` only while more than `max` are busy. An actor
 * its supervisor stopped is replaced by a fresh one at the next `obtain`: a restart with new state.
 */
export class ActorDirectory<A extends Actor<{ type: string }>> {
  readonly #entries = new Map<string, { actor: A; used: boolean }>();

  constructor(
    private readonly create: (key: string) => A,
    /** actors kept; @default 50_000 */
    private readonly max = 50_000,
    /** whether an idle actor may be retired to make room now (a rules home with a run of its rules running its actions may not) */
    private readonly retirable: (actor: A) => boolean = () => true,
  ) {}

  /** The actor for `key`, created (or re-created after a stop) when needed. */
  obtain(key: string): A {
    const entry = this.#entries.get(key);
    if (entry !== undefined && !entry.actor.isStopped) {
      entry.used = true;
      return entry.actor;
    }
    if (entry === undefined && this.#entries.size >= this.max) this.#retireIdle();
    const actor = this.create(key);
    this.#entries.set(key, { actor, used: true });
    return actor;
  }

  /** The actor for `key` if there is one, without creating it or counting a use. */
  get(key: string): A | undefined {
    return this.#entries.get(key)?.actor;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Calls `fn` with every actor held (stopped ones included). */
  each(fn: (actor: A) => void): void {
    for (const entry of this.#entries.values()) fn(entry.actor);
  }

  /** Retires and forgets every idle actor that `idle` answers true for; answers how many. */
  forget(idle: (actor: A) => boolean): number {
    let n = 0;
    for (const [key, entry] of this.#entries) {
      if (entry.actor.isStopped || !idle(entry.actor) || !entry.actor.retire()) continue;
      this.#entries.delete(key);
      n++;
    }
    return n;
  }

  #retireIdle(): void {
    let n = Math.max(1, Math.floor(this.max / 10));
    // the first pass clears the marks it passes, so the second finds candidates if any are idle
    for (let pass = 0; pass < 2 && n > 0; pass++) {
      for (const [key, entry] of this.#entries) {
        if (n === 0) break;
        if (entry.used) {
          entry.used = false;
          continue;
        }
        if (!entry.actor.isStopped && (!this.retirable(entry.actor) || !entry.actor.retire())) continue;
        this.#entries.delete(key);
        n--;
      }
    }
  }
}
