import { TierError } from '../../errors.js';

/** A message as delivered to a subscriber. */
export interface BusMessage {
  readonly subject: string;
  readonly data: Uint8Array;
  /** set when the sender waits for an answer (request/reply) */
  readonly replyTo: string | undefined;
  /** Answers a request; false when the message carries no reply address. */
  respond(data: Uint8Array): boolean;
}

export type BusHandler = (msg: BusMessage) => void;

/** A subscriber as an object: one held per hub session then needs no closure of its own. */
export interface BusListener {
  onBusMessage(msg: BusMessage): void;
}

export type BusSubscriber = BusHandler | BusListener;

/** Gives a message to a subscriber, function or listener. */
export function handOver(subscriber: BusSubscriber, msg: BusMessage): void {
  if (typeof subscriber === 'function') subscriber(msg);
  else subscriber.onBusMessage(msg);
}

export interface BusSubscription {
  unsubscribe(): void;
}

export interface SubscribeOptions {
  /** queue group: each message goes to one member of the group instead of to all */
  queue?: string;
}

/**
 * The message bus between nodes (NATS in cluster mode).
 *
 * - Subjects are dot-separated tokens; subscriptions may use `*` (one token) and `>` (the rest).
 * - Delivery is at most once, in order per publisher and subject. No persistence: a message
 *   published while nobody listens is gone.
 * - `request` sends to the subject and resolves with the first answer. With no subscriber it fails
 *   at once with `NoRespondersError` (how "hub offline" is told without a lookup), and after
 *   `timeoutMs` with `RequestTimeoutError`.
 * - Subscribers (a function, or a listener's `onBusMessage`) run on the event loop and must not
 *   throw; an exception is logged and dropped by the implementation, never passed to the publisher.
 * - Subjects are validated: an empty token, whitespace, or a wildcard in a publish/request subject
 *   throws a TypeError (a request rejects with it).
 * - While disconnected (NATS), publishes and answers are dropped and counted, and requests fail at
 *   once with `BusUnavailableError` (temporary); subscriptions are restored by the implementation
 *   on reconnect.
 *   After `close()`, publishes are dropped and subscribe/request fail `draining` (nothing sent). A
 *   request sent before it still gets its answer or its timeout; one whose connection the close
 *   ends (NATS, after a bounded wait for answers) fails `RequestCutError` (its responder may have
 *   acted on it), never `draining`.
 */
export interface Bus {
  publish(subject: string, data: Uint8Array): void;
  subscribe(subject: string, subscriber: BusSubscriber, options?: SubscribeOptions): BusSubscription;
  request(subject: string, data: Uint8Array, timeoutMs: number): Promise<Uint8Array>;
  /**
   * Resolves when everything published so far has left this process and every subscription made
   * before the call is registered where publishers' messages are routed (the NATS server): a
   * session announces its takeover only after that. No-op in memory.
   */
  flush(): Promise<void>;
  close(): Promise<void>;
}

/**
 * A bus that can lose its server (NATS) says so here; the memory bus never does and has none.
 * Messages published while `connected` is false are gone (at most once): what must reach every
 * node is held by the caller and published again from `onReconnect`.
 */
export interface BusLink {
  /** false from the moment the client saw the server gone until it is back */
  readonly connected: boolean;
  /**
   * Calls `listener` after each reconnect, once the client restored its subscriptions, with when
   * the outage began (ms since the Unix epoch): messages between then and now were dropped, and
   * so may be those published shortly before (until the client noticed the server gone).
   */
  onReconnect(listener: (downSince: number) => void): BusSubscription;
}

export class NoRespondersError extends TierError {
  override name = 'NoRespondersError';
  constructor(subject: string) {
    super('hub_offline', `no responders on ${subject}`);
  }
}

export class RequestTimeoutError extends TierError {
  override name = 'RequestTimeoutError';
  constructor(subject: string, timeoutMs: number) {
    super('command_timeout', `no answer on ${subject} within ${timeoutMs} ms`);
  }
}

/**
 * A request that went out and was cut by the bus closing (the node stopping) before its answer:
 * the responder may have acted on it, so it is not `draining` (a refusal that sent nothing).
 */
export class RequestCutError extends TierError {
  override name = 'RequestCutError';
  constructor(subject: string, options?: { cause?: unknown }) {
    super('command_timeout', `the bus closed (the node stopping) after the request on ${subject} went out, before its answer: its outcome is unknown`, options);
  }
}

const WHITESPACE = /\s/;
const DOT = 46;
const STAR = 42;
const GT = 62;

/**
 * Checks a subject (tokens non-empty and without whitespace; with wildcards allowed, `>` only
 * last) and answers its tokens: a publish splits its subject once, here. Throws a TypeError.
 */
export function validateSubject(subject: string, allowWildcards: boolean): string[] {
  // one scan of the whole subject, not a test per token
  if (WHITESPACE.test(subject)) throw new TypeError(`bad subject "${subject}"`);
  const tokens = subject.split('.');
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.length === 0) throw new TypeError(`bad subject "${subject}"`);
    if (t.length !== 1 || (t !== '*' && t !== '>')) continue;
    if (!allowWildcards) throw new TypeError(`wildcards not allowed in "${subject}"`);
    if (t === '>' && i !== tokens.length - 1) throw new TypeError(`">" must be the last token in "${subject}"`);
  }
  return tokens;
}

/**
 * Checks a subject to publish to, as `validateSubject(subject, false)` does, in one scan and
 * without splitting it: writes where each token ends into `ends` and answers the token count. A
 * publish then looks its prefixes up as slices, and makes no token strings.
 */
export function publishTokenEnds(subject: string, ends: number[]): number {
  let n = 0;
  let start = 0;
  // the first token's fault, told after the scan: whitespace anywhere is told first, as validateSubject does
  let fault: string | null = null;
  for (let i = 0; i <= subject.length; i++) {
    const c = i === subject.length ? DOT : subject.charCodeAt(i);
    if (c === DOT) {
      if (i === start) fault ??= `bad subject "${subject}"`;
      else if (i === start + 1) {
        const t = subject.charCodeAt(start);
        if (t === STAR || t === GT) fault ??= `wildcards not allowed in "${subject}"`;
      }
      ends[n++] = i;
      start = i + 1;
    } else if (c === 32 || (c >= 9 && c <= 13) || (c > 127 && WHITESPACE.test(subject[i]!))) {
      throw new TypeError(`bad subject "${subject}"`);
    }
  }
  if (fault !== null) throw new TypeError(fault);
  return n;
}

/** A request refused at once because the bus has no server now (NATS reconnecting): it never left. */
export class BusUnavailableError extends TierError {
  override name = 'BusUnavailableError';
  constructor(subject: string) {
    super('unavailable', `bus disconnected: cannot request ${subject}`);
  }
}
