import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Logger } from '../../log/logger.js';
import { handOver, type BusMessage, type BusSubscriber, type BusSubscription } from './bus.js';

/** What a subscription needs of its bus: one object per bus, shared by all its subscriptions. */
export interface SubscriptionHost {
  readonly log: Logger;
  isClosed(): boolean;
  message(msg: Msg): BusMessage;
}

/** Makes a NatsBus subscription (subject and queue already checked). */
export type Subscribe = (subject: string, queue: string | undefined, subscriber: BusSubscriber) => BusSubscription;

/**
 * What the client's protocol handler (`ProtocolHandler` of @nats-io/nats-core 3.x, the
 * connection's `protocol`) does with a subscription object: `subscribe` gives it a `sid` and
 * sends SUB (again after every reconnect, with its `subject` and `queue`); each message of that
 * sid counts `received` and calls `callback(null, msg)`; a permissions error calls
 * `callback(err)` and `close()`; `unsubscribe` sends UNSUB and drops it (`close()`); the
 * connection's drain calls `drain()` and waits for it, its close calls `close()`.
 */
interface ClientProtocol {
  subscribe(sub: LeanSubscription): unknown;
  unsubscribe(sub: LeanSubscription): void;
  unsub(sub: LeanSubscription): void;
  flush(): Promise<void>;
  readonly subscriptions: { cancel(sub: LeanSubscription): void };
}

/**
 * The subscriptions of one connection. A node holds one per hub session, and the client's own
 * (`SubscriptionImpl`) costs about 1 KB each even with a callback (three deferred promises and an
 * iterator's state), so the bus hands the client's protocol handler an object of its own that does
 * what that handler asks of a subscription and nothing else (about 100 bytes). A client whose
 * handler is not of that shape gets the public `subscribe` instead, and a warning.
 */
export function subscriptions(nc: NatsConnection, host: SubscriptionHost): Subscribe {
  const protocol = clientProtocol(nc);
  if (protocol) {
    const owner = new LeanOwner(protocol, host);
    return (subject, queue, subscriber) => owner.subscribe(subject, queue, subscriber);
  }
  host.log.warn('the NATS client has no protocol handler of the known shape: each subscription takes the client\'s own (about 1 KB more per hub)');
  return (subject, queue, subscriber) => {
    const subscription = new ClientSubscription(host, subscriber);
    subscription.start(nc.subscribe(subject, { ...(queue === undefined ? {} : { queue }), callback: subscription.deliver.bind(subscription) }));
    return subscription;
  };
}

/** The connection's protocol handler when it has every method a lean subscription relies on. */
function clientProtocol(nc: NatsConnection): ClientProtocol | null {
  const p = (nc as { protocol?: Partial<ClientProtocol> }).protocol;
  const known =
    typeof p?.subscribe === 'function' &&
    typeof p.unsubscribe === 'function' &&
    typeof p.unsub === 'function' &&
    typeof p.flush === 'function' &&
    typeof p.subscriptions?.cancel === 'function';
  return known ? (p as ClientProtocol) : null;
}

/** What the lean subscriptions of one connection share. */
class LeanOwner {
  /** the round trip that ends a drain: one for all subscriptions */
  private drained: Promise<void> | null = null;

  constructor(
    readonly protocol: ClientProtocol,
    readonly host: SubscriptionHost,
  ) {}

  subscribe(subject: string, queue: string | undefined, subscriber: BusSubscriber): LeanSubscription {
    const sub = new LeanSubscription(this, subject, queue, subscriber);
    this.protocol.subscribe(sub);
    return sub;
  }

  /**
   * Resolves once the server has answered a PING sent after every UNSUB of the drain: the client
   * calls `drain()` of all subscriptions in one loop, so the PING waits for the loop's end.
   */
  flushed(): Promise<void> {
    this.drained ??= Promise.resolve().then(() => this.protocol.flush());
    return this.drained;
  }
}

/** One subscription as the client's protocol handler sees it (ClientProtocol). */
class LeanSubscription implements BusSubscription {
  /** the client's id of this subscription, given by `subscribe` (and anew after a reconnect) */
  sid = 0;
  /** messages the client delivered */
  received = 0;
  private done = false;

  constructor(
    private readonly owner: LeanOwner,
    readonly subject: string,
    readonly queue: string | undefined,
    private readonly subscriber: BusSubscriber,
  ) {}

  /** The client's call: each message, or the error that ends this subscription. */
  callback(err: Error | null, msg: Msg): void {
    if (err) {
      // terminal for this subscription (e.g. a permissions violation); the client closes it next
      this.owner.host.log.error({ err, subject: this.subject }, 'nats subscription failed');
      return;
    }
    deliver(this.owner.host, this.subscriber, msg);
  }

  /** The client's call when it drops this subscription. */
  close(): void {
    this.done = true;
  }

  /** The client's drain: UNSUB now, dropped once the server has seen it (what comes meanwhile is delivered). */
  drain(): Promise<void> {
    const { protocol } = this.owner;
    protocol.unsub(this);
    const drop = (): void => protocol.subscriptions.cancel(this);
    return this.owner.flushed().then(drop, drop);
  }

  unsubscribe(): void {
    if (this.done) return;
    this.done = true;
    // a closing connection drains every subscription itself
    if (!this.owner.host.isClosed()) this.owner.protocol.unsubscribe(this);
  }
}

/** One subscription through the client's public API: its `SubscriptionImpl`, callback `deliver` bound to this. */
class ClientSubscription implements BusSubscription {
  /** the client's subscription; null once unsubscribed */
  private sub: Subscription | null = null;

  constructor(
    private readonly host: SubscriptionHost,
    private readonly subscriber: BusSubscriber,
  ) {}

  start(sub: Subscription): void {
    this.sub = sub;
  }

  deliver(err: Error | null, msg: Msg): void {
    if (err) {
      this.host.log.error({ err, subject: this.sub?.getSubject() }, 'nats subscription failed');
      return;
    }
    deliver(this.host, this.subscriber, msg);
  }

  unsubscribe(): void {
    const sub = this.sub;
    if (sub === null) return;
    this.sub = null;
    if (!this.host.isClosed() && !sub.isClosed()) sub.unsubscribe();
  }
}

/** Hands a message to the subscriber; a throw is logged, never thrown into the client. */
function deliver(host: SubscriptionHost, subscriber: BusSubscriber, msg: Msg): void {
  try {
    handOver(subscriber, host.message(msg));
  } catch (e) {
    host.log.error({ err: e, subject: msg.subject }, 'bus handler threw');
  }
}
