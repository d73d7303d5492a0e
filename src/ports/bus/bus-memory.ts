import { TierError } from '../../errors.js';
import type { Logger } from '../../log/logger.js';
import type { TimerHandle, TimerTarget, TimerWheel } from '../../actors/timer-wheel.js';
import {
  handOver,
  NoRespondersError,
  publishTokenEnds,
  RequestTimeoutError,
  validateSubject,
  type Bus,
  type BusMessage,
  type BusSubscriber,
  type BusSubscription,
  type SubscribeOptions,
} from './bus.js';

/** The tails every hub session's subscription has, or most: shared (see `tailOf`). */
const NO_TAIL: readonly string[] = Object.freeze([]);
const ONE_TOKEN_TAIL: readonly string[] = Object.freeze(['*']);
const REST_TAIL: readonly string[] = Object.freeze(['>']);

/** The bus's subscriptions: the first of each literal prefix, and how many have a prefix of each length. */
class SubIndex {
  readonly byPrefix = new Map<string, Sub>();
  /** subscriptions by the token count of their literal prefix: a publish looks up only these lengths */
  readonly depths: number[] = [];

  add(sub: Sub, depth: number): void {
    this.depths[depth] = (this.depths[depth] ?? 0) + 1;
    let last = this.byPrefix.get(sub.key);
    if (last === undefined) this.byPrefix.set(sub.key, sub);
    else {
      while (last.next) last = last.next;
      last.next = sub;
    }
  }
}

/**
 * One subscription, as one object: a node holds one per hub session, so its `unsubscribe` is a
 * method, not a closure, it keeps only the tokens after its literal prefix (`tail`), and the
 * subscriptions of one prefix are a chain (`next`), not an array per prefix.
 */
class Sub implements BusSubscription {
  active = true;
  /** the next subscription of the same prefix, in subscription order */
  next: Sub | undefined = undefined;
  constructor(
    private readonly index: SubIndex,
    /** the literal prefix: the tokens before the first wildcard */
    readonly key: string,
    readonly tail: readonly string[],
    readonly subscriber: BusSubscriber,
    readonly queue: string | undefined,
  ) {}

  unsubscribe(): void {
    if (!this.active) return;
    this.active = false;
    // the prefix's token count, from the key rather than a field in every subscription
    let depth = this.key.length === 0 ? 0 : 1;
    for (let i = this.key.indexOf('.'); i !== -1; i = this.key.indexOf('.', i + 1)) depth++;
    this.index.depths[depth]!--;
    const byPrefix = this.index.byPrefix;
    const first = byPrefix.get(this.key);
    if (first === this) {
      if (this.next) byPrefix.set(this.key, this.next);
      else byPrefix.delete(this.key);
      return;
    }
    for (let s = first; s; s = s.next) {
      if (s.next === this) {
        s.next = this.next;
        return;
      }
    }
  }
}

/**
 * In-process bus for the embedded default: the same subjects, wildcards, queue groups and
 * request/reply as NATS. Delivery is synchronous, in subscription order. Subscriptions are indexed
 * by their literal prefix (the tokens before the first wildcard), so a publish costs one map
 * look-up per prefix length some subscription has, however many hubs are subscribed.
 */
export class MemoryBus implements Bus {
  private readonly index = new SubIndex();
  /** where each token of the subject being published ends (see publishTokenEnds) */
  private readonly ends: number[] = [];
  private closed = false;
  private readonly queue: Array<{ subs: Sub[]; msg: MemoryMessage }> = [];
  private delivering = false;

  constructor(
    private readonly timers: TimerWheel,
    private readonly log: Logger,
  ) {}

  publish(subject: string, data: Uint8Array): void {
    this.deliver(subject, publishTokenEnds(subject, this.ends), data, undefined);
  }

  subscribe(subject: string, subscriber: BusSubscriber, options: SubscribeOptions = {}): BusSubscription {
    if (this.closed) throw new TierError('draining', `bus closed: cannot subscribe to ${subject}`);
    const pattern = validateSubject(subject, true);
    let literal = 0;
    while (literal < pattern.length && pattern[literal] !== '*' && pattern[literal] !== '>') literal++;
    const key = pattern.slice(0, literal).join('.');
    const sub = new Sub(this.index, key, tailOf(pattern, literal), subscriber, options.queue);
    this.index.add(sub, literal);
    return sub;
  }

  request(subject: string, data: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    return new Promise<Uint8Array>((resolve, reject) => {
      if (this.closed) throw new TierError('draining', `bus closed: cannot request ${subject}`);
      const count = publishTokenEnds(subject, this.ends); // a throw here rejects the promise
      const pending = new PendingRequest(subject, timeoutMs, resolve, reject);
      const delivered = this.deliver(subject, count, data, pending);
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
    // the per-length counts stay: a subscription unsubscribed after this still counts itself out
    this.index.byPrefix.clear();
  }

  /** Subscriber count by literal prefix, for tests and diagnostics. */
  get subscriptionCount(): number {
    let n = 0;
    for (const first of this.index.byPrefix.values()) for (let s: Sub | undefined = first; s; s = s.next) n++;
    return n;
  }

  /** `count` tokens of `subject` end at `this.ends` (read before any handler runs: a handler may publish). */
  private deliver(subject: string, count: number, data: Uint8Array, pending: PendingRequest | undefined): number {
    if (this.closed) return 0;
    const { byPrefix, depths } = this.index;
    const ends = this.ends;
    let matched: Sub[] | null = null;
    // the prefixes of the subject some subscription could have, '' to all of it: slices of it
    for (let k = 0, last = Math.min(count, depths.length - 1); k <= last; k++) {
      if (!depths[k]) continue;
      for (let s = byPrefix.get(k === count ? subject : k === 0 ? '' : subject.slice(0, ends[k - 1])); s; s = s.next) {
        if (matches(s.tail, subject, ends, count, k)) (matched ??= []).push(s);
      }
    }
    if (matched === null) return 0;
    const chosen = pickQueueMembers(matched);
    const msg = new MemoryMessage(subject, data, pending);
    // a handler that publishes gets its message queued behind the one being delivered, so every
    // subscriber sees this process's messages in publish order
    if (this.delivering) this.queue.push({ subs: chosen, msg });
    else this.deliverNow(chosen, msg);
    return chosen.length;
  }

  /** Hands `msg` over, then whatever its handlers published meanwhile, in order. */
  private deliverNow(subs: Sub[], msg: MemoryMessage): void {
    this.delivering = true;
    try {
      this.handOverAll(subs, msg);
      for (let item = this.queue.shift(); item !== undefined; item = this.queue.shift()) this.handOverAll(item.subs, item.msg);
    } finally {
      this.delivering = false;
    }
  }

  private handOverAll(subs: Sub[], msg: MemoryMessage): void {
    for (const s of subs) {
      if (!s.active) continue;
      try {
        handOver(s.subscriber, msg);
      } catch (err) {
        this.log.error({ err, subject: msg.subject }, 'bus handler threw');
      }
    }
  }
}

/** The pattern's tokens from `literal` (its first wildcard) on; a shared array when none or one. */
function tailOf(pattern: string[], literal: number): readonly string[] {
  if (literal === pattern.length) return NO_TAIL;
  if (literal === pattern.length - 1) return pattern[literal] === '>' ? REST_TAIL : ONE_TOKEN_TAIL;
  return pattern.slice(literal);
}

/**
 * A subscription's tail against the subject's tokens from `from` on (its literal prefix already
 * matched); the subject's `count` tokens end at `ends`.
 */
function matches(tail: readonly string[], subject: string, ends: number[], count: number, from: number): boolean {
  for (let j = 0; j < tail.length; j++) {
    const i = from + j;
    const p = tail[j]!;
    if (p === '>') return count > i;
    if (i >= count) return false;
    if (p === '*') continue;
    const start = i === 0 ? 0 : ends[i - 1]! + 1;
    if (ends[i]! - start !== p.length || !subject.startsWith(p, start)) return false;
  }
  return from + tail.length === count;
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
