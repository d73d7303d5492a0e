import type { Logger } from '../log/logger.js';
import type { TimerWheel } from './timer-wheel.js';

/** What every actor of a node shares: the timer wheel, the logger, the supervisor's counters. */
export interface ActorSystem {
  readonly timers: TimerWheel;
  readonly log: Logger;
  /** @default 128: queued messages before an actor's overflow policy applies */
  readonly mailboxSize: number;
  /** called once per failed message; the count is exported as a metric */
  onFailure?(address: string, messageType: string, err: unknown): void;
}

/** A failed message resumes the actor; this many failures in its lifetime stop it. */
export const MAX_FAILURES = 10;

/**
 * An address, a bounded mailbox and a behaviour. Messages are processed one at a time in arrival
 * order; when `receive` returns a promise, the next message waits for it. A throw or rejection is
 * caught here, logged with the address and message type, and counted: it never reaches the caller
 * of `tell` (a uWS callback, a bus handler) or another actor. The mailbox array exists only while
 * messages wait, so an idle actor costs a few fields.
 */
export abstract class Actor<M extends { type: string }> {
  #mailbox: M[] | null = null;
  #busy = false;
  #failures = 0;
  protected stopped = false;

  constructor(
    readonly address: string,
    protected readonly system: ActorSystem,
  ) {}

  /** Delivers a message. false: refused by the overflow policy or the actor has stopped. */
  tell(msg: M): boolean {
    if (this.stopped) return false;
    if (!this.#busy) {
      this.#drain(msg);
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

  /** Called when the actor gives up after too many failures; it should release what it holds. */
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
    this.#failures++;
    this.system.onFailure?.(this.address, msg.type, err);
    this.system.log.error({ err, actor: this.address, message: msg.type, failures: this.#failures }, 'actor message failed');
    if (this.#failures >= MAX_FAILURES && !this.stopped) {
      this.stop(`${this.#failures} failed messages`);
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

  /** Messages waiting (not counting the one being processed). */
  get queued(): number {
    return this.#mailbox?.length ?? 0;
  }
}
