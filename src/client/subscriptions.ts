import type { AppEventMessage, AppReloadMessage, Position, RecoveryFailure, SubResult } from '../../proto/app.js';
import { HomeCursor } from './cursor.js';
import { ClientError } from './errors.js';
import type { Requests } from './requests.js';
import { isPosition, parseSubResult } from './wire.js';

/** The app must reload the home's snapshot: the events it missed will not come. */
export interface ReloadInfo {
  /** the history changed (`epoch_changed`), the missed events are gone (`too_old`), or none are kept (`unavailable`) */
  reason: RecoveryFailure;
  /** events go on after this position; null when the server keeps no positions */
  pos: Position | null;
}

export interface SubscriptionHandlers {
  /** each event once, in the home's order */
  onEvent(event: AppEventMessage): void;
  /**
   * the event at this position was handed to onEvent before without a position (the server's
   * history stored it as its backend failed) and is not handed over again; for apps that keep
   * positions themselves: the position moves past it, in order with onEvent's
   */
  onSkip?(pos: Position): void;
  /** reload the home's snapshot (state may have changed unseen), then carry on with onEvent */
  onReload?(info: ReloadInfo): void;
  /** every answer to this home's `sub`: the first, and each after a reconnect or a gap */
  onSubscribed?(result: SubResult): void;
  /**
   * the server refused the subscription with a code that is not temporary, or ended it
   * (`forbidden`: the token no longer grants the home): it has ended. `unauthorized` (the socket's
   * token expired) ends it only with a string token, or when the fresh token's socket refuses it
   * too. A temporary refusal (`busy`) does not end it: the client subscribes again after a backoff
   */
  onError?(error: ClientError): void;
}

export interface SubscribeOptions {
  /**
   * the position of the last event the app processed, stored across restarts: the first `sub` asks
   * for the events after it, as after a reconnect (recovered, or `onReload` when they are gone)
   */
  since?: Position;
}

export interface Subscription {
  readonly home: string;
  /** the server's first answer; rejects with its refusal (or when the client closes first) */
  readonly ready: Promise<SubResult>;
  /** the position of the last event delivered (or the start the server gave) */
  readonly position: Position | null;
  /** stops this subscription's handlers; the last one of a home sends `unsub` */
  unsubscribe(): void;
}

interface Home {
  readonly home: string;
  readonly listeners: Set<SubscriptionHandlers>;
  readonly cursor: HomeCursor;
  /** the `sub` request waiting for its answer */
  pendingId: number | null;
  /** the server has this home subscribed on the current socket (answered `ok`) */
  joined: boolean;
  /** the last answer; null until the first */
  last: SubResult | null;
  readonly ready: Promise<SubResult>;
  settle: { resolve(r: SubResult): void; reject(e: ClientError): void } | null;
  /** the socket (number of opens) that refused this home `unauthorized` since its last answer; null: none */
  unauthorizedOn: number | null;
  /** a `sub` to send again after a temporary refusal (`busy`), and how many such refusals in a row */
  retry: ReturnType<typeof setTimeout> | null;
  refusals: number;
}

/**
 * The homes the app listens to, and their positions. On every open each home is (re)subscribed
 * with `since` its position; a recovery's events arrive as ordinary events and pass the cursor
 * like live ones, so duplicates drop and the order holds. A gap seen on a live event resubscribes.
 */
export class Subscriptions {
  private readonly homes = new Map<string, Home>();
  /** sockets opened so far: tells a refusal on the fresh token's socket from one on the expiring socket */
  private opens = 0;

  /**
   * `unanswered(home)`: a `sub` got no answer within `answerTimeoutMs` (0: never) on an open socket.
   * The node answers every `sub`, a failed recovery too, so the session is stuck: the caller replaces it.
   * `refreshable`: the token comes from a function, so an `unauthorized` answer (the socket's token
   * expired; the node closes it with 4007 within a second) waits for the next socket's fresh token.
   * `retryDelay(n)`: how long to wait before subscribing again after the n-th temporary refusal in a row.
   */
  constructor(
    private readonly requests: Requests,
    private readonly isOpen: () => boolean,
    private readonly answerTimeoutMs = 0,
    private readonly unanswered: (home: string) => void = () => {},
    private readonly refreshable = false,
    private readonly retryDelay: (refusals: number) => number = () => 1_000,
  ) {}

  add(home: string, handlers: SubscriptionHandlers, opts: SubscribeOptions = {}): Subscription {
    const since = opts.since;
    if (since !== undefined && !isPosition(since)) throw ClientError.invalid('since', 'since must be a position {epoch: string, offset: integer ≥ 0}');
    let h = this.homes.get(home);
    if (!h) {
      let settle: Home['settle'] = null;
      const ready = new Promise<SubResult>((resolve, reject) => (settle = { resolve, reject }));
      // the app need not await ready: a refusal also reaches onError
      ready.catch(() => {});
      h = { home, listeners: new Set(), cursor: new HomeCursor(), pendingId: null, joined: false, last: null, ready, settle, unauthorizedOn: null, retry: null, refusals: 0 };
      // the first `sub` then carries since, and its answer is taken as a resubscription's
      if (since !== undefined) h.cursor.pos = { epoch: since.epoch, offset: since.offset };
      this.homes.set(home, h);
      if (this.isOpen()) this.send(h);
    }
    h.listeners.add(handlers);
    const own = h;
    return {
      home,
      ready: own.last !== null ? Promise.resolve(own.last) : own.ready,
      get position() {
        return own.cursor.pos;
      },
      unsubscribe: () => this.remove(own, handlers),
    };
  }

  /** The socket opened: every home subscribes again from its position (one added by a state listener just now has been). */
  opened(): void {
    this.opens++;
    for (const h of this.homes.values()) {
      this.stopRetry(h);
      if (h.pendingId === null) this.send(h);
    }
  }

  /** The socket dropped: answers and recoveries in progress are void; held events will come again. */
  dropped(): void {
    for (const h of this.homes.values()) {
      h.pendingId = null;
      h.joined = false;
      h.cursor.clearHeld();
    }
  }

  /** The client closed: subscriptions not yet answered reject. */
  closed(error: () => ClientError): void {
    for (const h of this.homes.values()) {
      this.stopRetry(h);
      h.settle?.reject(error());
    }
    this.homes.clear();
  }

  event(evt: AppEventMessage): void {
    const h = this.homes.get(evt.home);
    if (!h) return;
    this.deliver(h, h.cursor.place(evt));
    // an event past a gap: ask for what is missing (held events wait for it), unless a `sub`
    // waiting for its answer will bring it
    if (h.pendingId === null && h.cursor.gapOpen && this.isOpen()) this.resubscribe(h);
  }

  /** The server ended the home's subscription (its token lost the home): it ends here too, as a refused `sub` does. */
  ended(home: string, error: ClientError): void {
    const h = this.homes.get(home);
    if (h) this.end(h, error);
  }

  reload(msg: AppReloadMessage): void {
    const h = this.homes.get(msg.home);
    if (!h) return;
    const released = h.cursor.jump(msg.pos);
    this.each(h, (l) => l.onReload?.({ reason: msg.reason, pos: msg.pos }));
    this.deliver(h, released);
  }

  get size(): number {
    return this.homes.size;
  }

  /**
   * Subscribes again from the position on the same socket: `unsub` first, because the server
   * answers a `sub` of a home it has subscribed with where it stands and recovers nothing.
   */
  private resubscribe(h: Home): void {
    const noop = () => {};
    if (h.joined) this.requests.add((id) => ({ op: 'unsub', id, home: h.home }), { ok: noop, fail: noop }, { onDrop: 'forget', queue: false });
    h.joined = false;
    this.send(h);
  }

  private send(h: Home): void {
    // the two fields a `since` has: a key a newer server adds to positions would get it refused
    const at = h.cursor.pos;
    const since = at === null ? undefined : { epoch: at.epoch, offset: at.offset };
    h.cursor.asked();
    const id = this.requests.add(
      // `carry`: a position of an epoch the server's history continues is taken over (answered in the new one)
      (rid) => (since ? { op: 'sub', id: rid, home: h.home, since, carry: true } : { op: 'sub', id: rid, home: h.home }),
      { ok: (result) => this.answered(h, since, parseSubResult(result, h.home)), fail: (err) => this.refused(h, err) },
      this.answerTimeoutMs > 0 ? { onDrop: 'forget', queue: false, timeoutMs: this.answerTimeoutMs, timeout: () => this.unanswered(h.home) } : { onDrop: 'forget', queue: false },
    );
    h.pendingId = id;
  }

  private answered(h: Home, since: Position | undefined, result: SubResult): void {
    if (this.homes.get(h.home) !== h) return;
    h.pendingId = null;
    h.joined = true;
    h.unauthorizedOn = null;
    h.refusals = 0;
    const first = h.last === null;
    h.last = result;
    let released: AppEventMessage[] = [];
    let reload: ReloadInfo | null = null;
    if (since !== undefined && result.recovered === true) {
      // the missed events follow this answer as ordinary events: the cursor stays at since, or
      // moves to the same offset of the epoch it was carried into
      if (result.pos !== null && result.pos.epoch !== since.epoch) released = h.cursor.jump(result.pos);
    } else if (since !== undefined || !first) {
      // not recovered (or a server that keeps no history, or resubscribed without a position):
      // what happened while away is unknown, so the app reloads, then goes on from pos
      reload = { reason: result.reason ?? 'unavailable', pos: result.pos };
      released = h.cursor.jump(result.pos);
    } else {
      released = h.cursor.start(result.pos);
    }
    this.each(h, (l) => l.onSubscribed?.(result));
    if (reload !== null) {
      const info = reload;
      this.each(h, (l) => l.onReload?.(info));
    }
    this.deliver(h, released);
    h.settle?.resolve(result);
    h.settle = null;
  }

  private refused(h: Home, error: ClientError): void {
    if (this.homes.get(h.home) !== h) return;
    if (error.code === 'unauthorized' && this.refreshable && (h.unauthorizedOn === null || h.unauthorizedOn === this.opens)) {
      // the token expired under the socket: kept for the next open, which brings a fresh token;
      // refused on that socket too, the token function's tokens are refused and it ends
      h.unauthorizedOn = this.opens;
      h.pendingId = null;
      h.joined = false;
      return;
    }
    if (error.temporary) {
      // `busy` (the node's session for this socket is full) passes: the subscription and its
      // position stay, and the same `sub` goes again after a growing, jittered wait
      h.pendingId = null;
      h.joined = false;
      this.stopRetry(h);
      h.retry = setTimeout(() => {
        h.retry = null;
        if (this.homes.get(h.home) === h && h.pendingId === null && this.isOpen()) this.send(h);
      }, this.retryDelay(h.refusals++));
      return;
    }
    this.end(h, error);
  }

  private stopRetry(h: Home): void {
    if (h.retry !== null) clearTimeout(h.retry);
    h.retry = null;
  }

  private end(h: Home, error: ClientError): void {
    this.stopRetry(h);
    this.homes.delete(h.home);
    this.forgetPending(h);
    this.each(h, (l) => l.onError?.(error));
    h.settle?.reject(error);
    h.settle = null;
  }

  private remove(h: Home, handlers: SubscriptionHandlers): void {
    if (!h.listeners.delete(handlers) || h.listeners.size > 0 || this.homes.get(h.home) !== h) return;
    this.stopRetry(h);
    this.homes.delete(h.home);
    this.forgetPending(h);
    h.settle?.reject(ClientError.local('session_closed', `unsubscribed from ${h.home} before the server answered`));
    h.settle = null;
    const noop = () => {};
    if (this.isOpen()) this.requests.add((id) => ({ op: 'unsub', id, home: h.home }), { ok: noop, fail: noop }, { onDrop: 'forget', queue: false });
  }

  /**
   * A subscription ended while its `sub` waited for the answer: the answer no longer matters, and
   * its timeout must not close the socket as stuck (4102).
   */
  private forgetPending(h: Home): void {
    if (h.pendingId === null) return;
    this.requests.forget(h.pendingId);
    h.pendingId = null;
  }

  private deliver(h: Home, events: AppEventMessage[]): void {
    for (const evt of events) {
      if (h.cursor.skipped.has(evt)) this.each(h, (l) => l.onSkip?.(evt.pos!));
      else this.each(h, (l) => l.onEvent(evt));
    }
  }

  /** Calls each handler; one that throws is reported later (as an EventTarget does) and stops no other. */
  private each(h: Home, call: (l: SubscriptionHandlers) => void): void {
    for (const l of [...h.listeners]) {
      try {
        call(l);
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
}
