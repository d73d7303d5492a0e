import { TierError } from '../../errors.js';
import type { Logger } from '../../log/logger.js';
import type { TimerHandle, TimerTarget, TimerWheel } from '../../actors/timer-wheel.js';
import {
  NoRespondersError,
  RequestTimeoutError,
  validateSubject,
  type Bus,
  type BusHandler,
  type BusMessage,
  type BusSubscription,
  type SubscribeOptions,
} from './bus.js';

/** The tail of a subject without wildcards after its literal prefix, and of one ending in `>`: shared. */
const NO_TAIL: readonly string[] = Object.freeze([]);
const REST_TAIL: readonly string[] = Object.freeze(['>']);

/**
 * One subscription, as one object: a node holds one per hub session, so its `unsubscribe` is a
 * method, not a closure, and it keeps only the tokens after its literal prefix (`tail`).
 */
class Sub implements BusSubscription {
  active = true;
  constructor(
    /** the bus's index, where this subscription is listed under `key` */
    private readonly index: Map<string, Sub[]>,
    /** the literal prefix: the tokens before the first wildcard */
    readonly key: string,
    readonly tail: readonly string[],
    readonly handler: BusHandler,
    readonly queue: string | undefined,
  ) {}

  unsubscribe(): void {
    if (!this.active) return;
    this.active = false;
    const l = this.index.get(this.key);
    if (!l) return;
    const i = l.indexOf(this);
    if (i >= 0) l.splice(i, 1);
    if (l.length === 0) this.index.delete(this.key);
  }
}

/**
 * In-process bus for the embedded default: the same subjects, wildcards, queue groups and
 * request/reply as NATS. Delivery is synchronous, in subscription order. Subscriptions are indexed
 * by their literal prefix (the tokens before the first wildcard), so a publish costs one map
 * look-up per subject token however many hubs are subscribed.
 */
export class MemoryBus implements Bus {
  private readonly byPrefix = new Map<string, Sub[]>();
  private closed = false;
  private readonly queue: Array<{ subs: Sub[]; msg: MemoryMessage }> = [];
  private delivering = false;

  constructor(
    private readonly timers: TimerWheel,
    private readonly log: Logger,
  ) {}

  publish(subject: string, data: Uint8Array): void {
    validateSubject(subject, false);
    this.deliver(subject, data, undefined);
  }

  subscribe(subject: string, handler: BusHandler, options: SubscribeOptions = {}): BusSubscription {
    if (this.closed) throw new TierError('draining', `bus closed: cannot subscribe to ${subject}`);
    validateSubject(subject, true);
    const pattern = subject.split('.');
    let literal = 0;
    while (literal < pattern.length && pattern[literal] !== '*' && pattern[literal] !== '>') literal++;
    const key = pattern.slice(0, literal).join('.');
    const sub = new Sub(this.byPrefix, key, tailOf(pattern, literal), handler, options.queue);
    const list = this.byPrefix.get(key);
    if (list) list.push(sub);
    else this.byPrefix.set(key, [sub]);
    return sub;
  }

  request(subject: string, data: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    return new Promise<Uint8Array>((resolve, reject) => {
      if (this.closed) throw new TierError('draining', `bus closed: cannot request ${subject}`);
      validateSubject(subject, false); // a throw here rejects the promise
      const pending = new PendingRequest(subject, timeoutMs, resolve, reject);
      const delivered = this.deliver(subject, data, pending);
      if (delivered === 0) {
        reject(new NoRespondersError(subject));
        return;
      }
      if (pending.settled) return;
      pending.timer = this.timers.schedule(timeoutMs, pending);
      pending.wheel = this.timers;
    });
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {
    this.closed = true;
    this.byPrefix.clear();
  }

  /** Subscriber count by literal prefix, for tests and diagnostics. */
  get subscriptionCount(): number {
    let n = 0;
    for (const l of this.byPrefix.values()) n += l.length;
    return n;
  }

  private deliver(subject: string, data: Uint8Array, pending: PendingRequest | undefined): number {
    if (this.closed) return 0;
    const tokens = subject.split('.');
    const matched: Sub[] = [];
    let prefix = '';
    for (let k = 0; k <= tokens.length; k++) {
      if (k > 0) prefix = k === 1 ? tokens[0]! : `${prefix}.${tokens[k - 1]}`;
      const list = this.byPrefix.get(prefix);
      if (list) for (const s of list) if (matches(s.tail, tokens, k)) matched.push(s);
    }
    if (matched.length === 0) return 0;
    const chosen = pickQueueMembers(matched);
    this.queue.push({ subs: chosen, msg: new MemoryMessage(subject, data, pending) });
    // a handler that publishes gets its message queued behind the one being delivered, so every
    // subscriber sees this process's messages in publish order
    if (!this.delivering) this.drainQueue();
    return chosen.length;
  }

  private drainQueue(): void {
    this.delivering = true;
    try {
      for (let item = this.queue.shift(); item !== undefined; item = this.queue.shift()) {
        for (const s of item.subs) {
          if (!s.active) continue;
          try {
            s.handler(item.msg);
          } catch (err) {
            this.log.error({ err, subject: item.msg.subject }, 'bus handler threw');
          }
        }
      }
    } finally {
      this.delivering = false;
    }
  }
}

/** The pattern's tokens from `literal` on, shared when there are none or only `>`. */
function tailOf(pattern: string[], literal: number): readonly string[] {
  if (literal === pattern.length) return NO_TAIL;
  if (literal === pattern.length - 1 && pattern[literal] === '>') return REST_TAIL;
  return pattern.slice(literal);
}

/** A subscription's tail against the subject's tokens from `from` on (its literal prefix already matched). */
function matches(tail: readonly string[], tokens: string[], from: number): boolean {
  for (let j = 0; j < tail.length; j++) {
    const i = from + j;
    const p = tail[j];
    if (p === '>') return tokens.length > i;
    if (i >= tokens.length) return false;
    if (p !== '*' && p !== tokens[i]) return false;
  }
  return from + tail.length === tokens.length;
}

/** Plain subscribers all get the message; of each queue group one member, chosen at random. */
function pickQueueMembers(subs: Sub[]): Sub[] {
  if (!subs.some((s) => s.queue !== undefined)) return subs;
  const out: Sub[] = [];
  const groups = new Map<string, Sub[]>();
  for (const s of subs) {
    if (s.queue === undefined) out.push(s);
    else {
      const g = groups.get(s.queue);
      if (g) g.push(s);
      else groups.set(s.queue, [s]);
    }
  }
  for (const g of groups.values()) out.push(g[Math.floor(Math.random() * g.length)]!);
  return out;
}

class PendingRequest implements TimerTarget {
  settled = false;
  timer: TimerHandle | null = null;
  wheel: TimerWheel | null = null;
  constructor(
    readonly subject: string,
    readonly timeoutMs: number,
    private readonly resolve: (data: Uint8Array) => void,
    private readonly reject: (err: Error) => void,
  ) {}

  answer(data: Uint8Array): boolean {
    if (this.settled) return false;
    this.settled = true;
    this.wheel?.cancel(this.timer);
    this.resolve(data);
    return true;
  }

  onTimer(): void {
    if (this.settled) return;
    this.settled = true;
    this.reject(new RequestTimeoutError(this.subject, this.timeoutMs));
  }
}

class MemoryMessage implements BusMessage {
  constructor(
    readonly subject: string,
    readonly data: Uint8Array,
    private readonly pending: PendingRequest | undefined,
  ) {}

  get replyTo(): string | undefined {
    return this.pending ? `_INBOX.memory` : undefined;
  }

  respond(data: Uint8Array): boolean {
    return this.pending?.answer(data) ?? false;
  }
}
