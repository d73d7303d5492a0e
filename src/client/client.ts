// Over 400 lines: one client's connection (attempts, backoff, keepalive, close) and its requests share
// the socket's state; subscriptions, requests and the cursor are modules of their own.
import type { AppRequest } from '../../proto/app.js';
import { CloseCode } from '../../proto/errors.js';
import { delayMs, MAX_DELAY_MS } from './delay.js';
import type { Attrs } from '../../proto/frames.js';
import { backoffDelay, backoffOptions, type BackoffOptions } from './backoff.js';
import { ClientError } from './errors.js';
import { Requests } from './requests.js';
import { OPEN, appProtocols, appSocketUrl, errorText, messageText, refusedAs401, type WebSocketConstructor, type WebSocketLike } from './socket.js';
import { Subscriptions, type Subscription, type SubscriptionHandlers, type SubscribeOptions } from './subscriptions.js';
import { parseIncoming } from './wire.js';

/** Where a browser (or a worker) says the network is back; absent in Node. */
const onlineEvents = (globalThis as { addEventListener?: unknown }).addEventListener === undefined ? undefined : (globalThis as unknown as Pick<EventTarget, 'addEventListener' | 'removeEventListener'>);

/** The code a WebSocket reports when no close frame came (RFC 6455 §7.1.5); also used when no socket could be made. */
const NO_CLOSE_FRAME = 1006;

export type ConnectionState =
  /** `attempt`: failed attempts since the last stable connection (0 on the first) */
  | { state: 'connecting'; attempt: number }
  | { state: 'open' }
  /**
   * `unauthorized`: the upgrade was refused with 401 (seen in Node's `ws`; a browser cannot tell)
   * or the server closed with 4007 (`CloseCode.unauthorized`: its token was revoked or reached its `exp`). `reconnectInMs` is null once the client is closed for good.
   */
  | { state: 'closed'; code: number; reason: string; unauthorized: boolean; reconnectInMs: number | null };

/** `set` or `method` (with its `params`), never both: the server refuses both with invalid_field. */
export type CommandBody = { set: Attrs; method?: never; params?: never } | { method: string; params?: Record<string, unknown>; set?: never };

export interface CommandOptions {
  /** the server waits this long for the hub (at most its TIER_COMMAND_TIMEOUT_MAX_MS) @default the client's commandTimeoutMs */
  timeoutMs?: number;
}

export interface ClientOptions {
  /** the node's origin, `ws://host:port` or `wss://…`; `/app/v1` is added unless already there */
  url: string;
  /**
   * a user JWT (or the admin token), or a function asked for one before every connection attempt;
   * it must give a non-empty string, and is given up with the attempt after `connectTimeoutMs`
   */
  token: string | (() => string | Promise<string>);
  /** @default globalThis.WebSocket; in Node 20 pass the `ws` package's class */
  WebSocket?: WebSocketConstructor;
  /** reconnect delays @default { initialMs: 500, maxMs: 30_000, factor: 2, jitter: 0.5 } */
  backoff?: Partial<BackoffOptions>;
  /** a number in [0, 1) for the jitter @default Math.random */
  random?: () => number;
  /** a connection open this long resets the backoff to its first step @default 10_000 (ms) */
  stableAfterMs?: number;
  /** how long the server waits for a hub's answer when a command names none @default 5_000 (ms) */
  commandTimeoutMs?: number;
  /** the client gives a command up this much after its timeout, if no answer came @default 2_000 (ms) */
  commandMarginMs?: number;
  /**
   * after this long with nothing received, the client pings; a link that does not answer within
   * `keepaliveTimeoutMs` is taken for dead and replaced (a phone that changed networks keeps a
   * socket that looks open for minutes) @default 25_000 (ms); 0: never
   */
  keepaliveMs?: number;
  /** @default 10_000 (ms) */
  keepaliveTimeoutMs?: number;
  /**
   * a connection attempt not open this long after it asked for the token is given up and retried
   * after the backoff (a token function that never settles; a black-holed network or a frozen node
   * that accepts TCP and never answers the upgrade) @default 10_000 (ms); 0: never
   */
  connectTimeoutMs?: number;
  /**
   * a `sub` the open socket does not answer within this long is taken for a stuck session: the
   * socket is replaced (closed 4102) and every home resubscribes from its position @default 10_000 (ms); 0: never
   */
  subscribeTimeoutMs?: number;
  /** every change of the connection's state */
  onState?: (state: ConnectionState) => void;
}

/** The close code the client reports for a link it gave up as dead (no answer to its ping). */
export const KEEPALIVE_CLOSE = 4100;
/** The close code the client reports for an attempt it gave up: not open within `connectTimeoutMs`. */
export const CONNECT_TIMEOUT_CLOSE = 4101;
/** The close code the client reports for a socket it replaced because a `sub` got no answer within `subscribeTimeoutMs`. */
export const SUBSCRIBE_TIMEOUT_CLOSE = 4102;

/**
 * A connection of an app to `/app/v1` that stays up: it reconnects with jittered exponential
 * backoff, asks for a token on every attempt, resubscribes every home from its last position and
 * delivers each event once and in order, or tells the app to reload. Commands are promises.
 */
export class HubtierClient {
  private readonly url: string;
  private readonly WebSocket: WebSocketConstructor;
  private readonly token: () => Promise<string>;
  /** the token comes from a function: a request refused `unauthorized` (token expired) waits for the next one */
  private readonly refreshable: boolean;
  private readonly backoff: BackoffOptions;
  private readonly random: () => number;
  private readonly stableAfterMs: number;
  private readonly commandTimeoutMs: number;
  private readonly commandMarginMs: number;
  private readonly listeners = new Set<(state: ConnectionState) => void>();
  private readonly requests = new Requests((msg) => this.write(msg));
  private readonly subs: Subscriptions;
  private socket: WebSocketLike | null = null;
  private current: ConnectionState = { state: 'connecting', attempt: 0 };
  /** failed attempts since the last stable connection */
  private failures = 0;
  private openedAt: number | null = null;
  private retry: ReturnType<typeof setTimeout> | null = null;
  private closing = false;
  private whenClosed: Promise<void> | null = null;
  private closedNow: () => void = () => {};
  private readonly keepaliveMs: number;
  private readonly keepaliveTimeoutMs: number;
  private keepalive: ReturnType<typeof setTimeout> | null = null;
  private lastHeard = 0;
  private pinging = false;
  private readonly connectTimeoutMs: number;
  private connectTimer: ReturnType<typeof setTimeout> | null = null;
  /**
   * Numbers the current attempt; bumped when it is given up (timed out, or the client closed), so
   * that a token function settling late opens no socket and reports nothing.
   */
  private attemptId = 0;
  private closeWait: ReturnType<typeof setTimeout> | null = null;

  constructor(opts: ClientOptions) {
    const Impl = opts.WebSocket ?? ((globalThis as { WebSocket?: unknown }).WebSocket as WebSocketConstructor | undefined);
    if (Impl === undefined) throw new TypeError('no WebSocket implementation: pass options.WebSocket (in Node 20, the ws package)');
    this.WebSocket = Impl;
    this.url = appSocketUrl(opts.url);
    const token: unknown = opts.token;
    if (typeof token === 'string' ? token === '' : typeof token !== 'function') throw new TypeError('token must be a non-empty string or a function that gives one');
    // called inside then() so that a function that throws fails the attempt instead of the caller
    this.token = typeof token === 'string' ? () => Promise.resolve(token) : () => Promise.resolve().then(opts.token as () => string | Promise<string>);
    this.backoff = backoffOptions(opts.backoff);
    this.random = opts.random ?? Math.random;
    this.stableAfterMs = delayMs('stableAfterMs', opts.stableAfterMs ?? 10_000);
    this.commandTimeoutMs = delayMs('commandTimeoutMs', opts.commandTimeoutMs ?? 5_000);
    this.commandMarginMs = delayMs('commandMarginMs', opts.commandMarginMs ?? 2_000);
    this.keepaliveMs = delayMs('keepaliveMs', opts.keepaliveMs ?? 25_000);
    this.keepaliveTimeoutMs = delayMs('keepaliveTimeoutMs', opts.keepaliveTimeoutMs ?? 10_000);
    this.connectTimeoutMs = delayMs('connectTimeoutMs', opts.connectTimeoutMs ?? 10_000);
    const subscribeTimeoutMs = delayMs('subscribeTimeoutMs', opts.subscribeTimeoutMs ?? 10_000);
    this.refreshable = typeof token === 'function';
    this.subs = new Subscriptions(
      this.requests,
      () => this.isOpen(),
      subscribeTimeoutMs,
      (home) => this.giveUp(SUBSCRIBE_TIMEOUT_CLOSE, 'subscribe timeout', `no answer to the sub of ${home} within ${subscribeTimeoutMs} ms (subscribeTimeoutMs)`),
      this.refreshable,
      (refusals) => backoffDelay(refusals, this.backoff, this.random),
    );
    if (opts.onState) this.listeners.add(opts.onState);
    // a browser says when the network is back: waiting out the backoff (up to maxMs) was for nothing
    onlineEvents?.addEventListener('online', this.onOnline);
    this.connect();
  }

  private readonly onOnline = (): void => this.reconnectNow();

  /**
   * The network is back (a browser's `online` event calls it; a mobile app coming to the
   * foreground may): a client waiting out its backoff connects now; an open one pings at once, so
   * a link that died unnoticed is replaced within `keepaliveTimeoutMs` instead of after
   * `keepaliveMs` of silence. Nothing while connecting, or once closed.
   */
  reconnectNow(): void {
    if (this.closing) return;
    if (this.retry !== null) {
      clearTimeout(this.retry);
      return this.connect();
    }
    if (this.isOpen() && !this.pinging && this.keepaliveMs > 0) {
      this.lastHeard = -Infinity;
      this.checkAlive();
    }
  }

  /** The connection's state now. */
  get state(): ConnectionState {
    return this.current;
  }

  /** Calls `listener` on every change of state; returns the function that stops it. */
  onState(listener: (state: ConnectionState) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Receives a home's events from now on (or from `opts.since`, a position the app stored), across
   * reconnects. Subscribing again to a home already subscribed adds handlers to the same
   * subscription (one position per home; its `since` is then ignored).
   */
  subscribe(home: string, handlers: SubscriptionHandlers, opts: SubscribeOptions = {}): Subscription {
    if (this.closing) throw ClientError.local('session_closed', 'the client is closed');
    return this.subs.add(home, handlers, opts);
  }

  /**
   * Sends a command and resolves with the hub's result. Rejects with a ClientError: the server's
   * refusal, `command_timeout` when no answer came within the timeout plus the margin (`sent: false`
   * when it never reached the node: safe to send again), or `session_closed` when the connection
   * dropped after sending (the hub may have run it). A command made while reconnecting waits for the
   * connection, within the same timeout; one refused `unauthorized` (the token expired under it: not
   * run) is sent again once with the token function's fresh token. `set` with `method` rejects
   * `invalid_field` unsent, as the node would refuse it.
   */
  command(hubId: string, deviceId: string, body: CommandBody, opts: CommandOptions = {}): Promise<unknown> {
    if (this.closing) return Promise.reject(ClientError.local('session_closed', 'the client is closed'));
    // plain JavaScript passes CommandBody's type check by; the node refuses both (invalid_field method)
    if (body.set !== undefined && body.method !== undefined) return Promise.reject(ClientError.invalid('method', 'set and method together: send one of them'));
    const timeoutMs = opts.timeoutMs ?? this.commandTimeoutMs;
    // NaN or a negative number timed out here at once, "may have run", where the node refuses it unrun
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1) return Promise.reject(ClientError.invalid('timeoutMs', `timeoutMs must be a whole number of ms of at least 1 (got ${String(timeoutMs)})`));
    const spec = body.set !== undefined ? { set: body.set } : { method: body.method, params: body.params ?? {} };
    // a timeout the node refuses (past TIER_COMMAND_TIMEOUT_MAX_MS) is answered by it, not timed out here at once
    const limit = Math.min(MAX_DELAY_MS, timeoutMs + this.commandMarginMs);
    const deadline = performance.now() + timeoutMs;
    return new Promise<unknown>((resolve, reject) => {
      this.requests.add(
        // written after a reconnect, it gives the node what is left of its time: the node then answers
        // within the margin of the client's own timeout, never after it (a hub that ran it was told
        // the app `command_timeout`, and a retry ran it twice: review "clientlib"); none left: unsent
        (id): AppRequest | null => {
          const left = Math.ceil(deadline - performance.now());
          return left < 1 ? null : { op: 'cmd', id, hub: hubId, device: deviceId, ...spec, timeoutMs: left };
        },
        { ok: resolve, fail: reject },
        {
          onDrop: 'reject',
          queue: true,
          timeoutMs: limit,
          timeout: (sent) => reject(ClientError.local('command_timeout', sent ? `no answer within ${limit} ms` : `not sent: no connection within ${limit} ms`, undefined, sent)),
          resendUnauthorized: this.refreshable,
        },
      );
    });
  }

  /**
   * Closes for good: pending commands and unanswered subscriptions reject with `session_closed`.
   * Resolves once the socket closed, or `keepaliveTimeoutMs` after asking on a link that does not answer.
   */
  close(): Promise<void> {
    if (this.whenClosed) return this.whenClosed;
    this.closing = true;
    // a token fetch in progress is abandoned: what it gives later is dropped
    this.attemptId++;
    if (this.retry !== null) clearTimeout(this.retry);
    this.retry = null;
    const error = () => ClientError.local('session_closed', 'the client was closed');
    this.requests.failAll(error);
    this.subs.closed(error);
    this.whenClosed = new Promise<void>((resolve) => (this.closedNow = resolve));
    const ws = this.socket;
    if (ws === null) this.ended(CloseCode.normal, 'closed by the client');
    else {
      ws.close(CloseCode.normal, 'closed by the client');
      // a dead link may never complete the close handshake (ws waits 30 s, a browser longer)
      this.closeWait = setTimeout(() => this.ended(CloseCode.normal, `closed by the client (the close was not answered within ${this.keepaliveTimeoutMs} ms)`), this.keepaliveTimeoutMs);
    }
    return this.whenClosed;
  }

  private connect(): void {
    this.retry = null;
    const attempt = ++this.attemptId;
    this.setState({ state: 'connecting', attempt: this.failures });
    // a state listener may have closed the client
    if (attempt !== this.attemptId) return;
    // the timeout runs from here: a token function that never settles is an attempt that hangs
    if (this.connectTimeoutMs > 0) this.connectTimer = setTimeout(() => this.connectTimedOut(), this.connectTimeoutMs);
    // a fresh token for every attempt: an expired or refused one is replaced on the way back
    this.token().then(
      (token: unknown) => {
        if (attempt !== this.attemptId) return;
        if (typeof token === 'string' && token !== '') return this.dial(token);
        this.lost(NO_CLOSE_FRAME, `token: the token function gave ${token === '' ? 'an empty string' : typeof token}, not a non-empty string`, false);
      },
      (err: unknown) => {
        if (attempt === this.attemptId) this.lost(NO_CLOSE_FRAME, `token: ${errorText(err) || String(err)}`, false);
      },
    );
  }

  private dial(token: string): void {
    let ws: WebSocketLike;
    const protocols = appProtocols(token);
    try {
      ws = new this.WebSocket(this.url, protocols);
    } catch (err) {
      // a bad URL throws here (SyntaxError); an app may show the reason: never with the token in it
      return this.lost(NO_CLOSE_FRAME, errorText(err).split(protocols[1]!).join('bearer.<token>').split(token).join('<token>'), false);
    }
    this.socket = ws;
    let error: unknown = null;
    ws.onopen = () => {
      if (this.socket === ws) this.opened();
    };
    ws.onmessage = (ev) => {
      if (this.socket === ws) this.received(ev.data);
    };
    ws.onerror = (ev) => {
      error = ev;
    };
    ws.onclose = (ev) => {
      if (this.socket !== ws) return;
      this.socket = null;
      if (this.closing) return this.ended(ev.code, ev.reason);
      this.lost(ev.code, ev.reason || errorText(error), refusedAs401(error) || ev.code === CloseCode.unauthorized);
    };
  }

  private opened(): void {
    this.stopConnectTimer();
    this.openedAt = this.lastHeard = performance.now();
    this.pinging = false;
    this.armKeepalive(this.keepaliveMs);
    this.setState({ state: 'open' });
    this.subs.opened();
    this.requests.flush();
  }

  /** The socket closed (or never opened) and the client is not closing: try again after a delay. */
  private lost(code: number, reason: string, unauthorized: boolean): void {
    if (this.closing) return this.ended(code, reason);
    if (this.openedAt !== null && performance.now() - this.openedAt >= this.stableAfterMs) this.failures = 0;
    this.openedAt = null;
    this.armKeepalive(0);
    this.stopConnectTimer();
    this.requests.dropped(() => ClientError.local('session_closed', `the connection closed (${code}) before the answer`));
    this.subs.dropped();
    const delay = backoffDelay(this.failures++, this.backoff, this.random);
    // the timer first: a state listener may call close(), which clears it
    this.retry = setTimeout(() => this.connect(), delay);
    this.setState({ state: 'closed', code, reason, unauthorized, reconnectInMs: delay });
  }

  /** The client is closed for good: said once, however the last socket or token fetch ends. */
  private ended(code: number, reason: string): void {
    if (this.current.state === 'closed' && this.current.reconnectInMs === null) return;
    this.armKeepalive(0);
    this.stopConnectTimer();
    if (this.closeWait !== null) clearTimeout(this.closeWait);
    this.socket = null;
    this.openedAt = null;
    onlineEvents?.removeEventListener('online', this.onOnline);
    this.setState({ state: 'closed', code, reason, unauthorized: false, reconnectInMs: null });
    this.closedNow();
  }

  /**
   * The attempt did not open in time: given up (the socket may never close by itself on a network
   * that drops everything; the token function may never settle) and retried after the backoff.
   */
  private connectTimedOut(): void {
    this.connectTimer = null;
    if (this.openedAt !== null) return;
    const waited = `within ${this.connectTimeoutMs} ms (connectTimeoutMs)`;
    this.giveUp(CONNECT_TIMEOUT_CLOSE, 'connect timeout', this.socket === null ? `token: the token function gave none ${waited}` : `not open ${waited}`);
  }

  /**
   * Drops the attempt or socket in progress without waiting for its close (which may never come
   * on a dead link) and reconnects after the backoff, reporting `code` and `reason`. The close
   * frame carries `short`: a browser throws on a reason over 123 bytes and would keep the socket.
   */
  private giveUp(code: number, short: string, reason: string): void {
    const ws = this.socket;
    this.socket = null;
    this.attemptId++;
    try {
      ws?.close(code, short);
    } catch {
      // a socket that cannot even close is dropped all the same
    }
    this.lost(code, reason, false);
  }

  private stopConnectTimer(): void {
    if (this.connectTimer !== null) clearTimeout(this.connectTimer);
    this.connectTimer = null;
  }

  /** (Re)starts the keepalive timer; 0 stops it. */
  private armKeepalive(ms: number): void {
    if (this.keepalive !== null) clearTimeout(this.keepalive);
    this.keepalive = ms > 0 && this.keepaliveMs > 0 ? setTimeout(() => this.checkAlive(), ms) : null;
  }

  /** Pings after `keepaliveMs` of silence; any message (the answer or another) proves the link. */
  private checkAlive(): void {
    const ws = this.socket;
    if (ws === null || !this.isOpen()) return;
    const silent = performance.now() - this.lastHeard;
    if (silent < this.keepaliveMs) return this.armKeepalive(this.keepaliveMs - silent);
    if (!this.pinging) {
      this.pinging = true;
      this.requests.add((id): AppRequest => ({ op: 'ping', id }), { ok: () => {}, fail: () => {} }, { onDrop: 'forget', queue: false, timeoutMs: this.keepaliveTimeoutMs, timeout: () => {} });
      return this.armKeepalive(this.keepaliveTimeoutMs);
    }
    // nothing heard since the ping: the socket is given up (its close may never complete) and replaced
    this.giveUp(KEEPALIVE_CLOSE, 'keepalive timeout', `no answer to a keepalive ping within ${this.keepaliveTimeoutMs} ms`);
  }

  private received(data: unknown): void {
    this.lastHeard = performance.now();
    if (this.pinging) {
      // the link answered: the next silence is counted from now
      this.pinging = false;
      this.armKeepalive(this.keepaliveMs);
    }
    const text = messageText(data);
    const msg = text === null ? null : parseIncoming(text);
    if (msg === null) return;
    if (msg.type === 'answer') this.requests.answer(msg.id, msg.outcome);
    else if (msg.type === 'event') this.subs.event(msg.event);
    else if (msg.type === 'end') this.subs.ended(msg.home, msg.error);
    else this.subs.reload(msg.reload);
  }

  private isOpen(): boolean {
    return this.socket !== null && this.openedAt !== null && this.socket.readyState === OPEN;
  }

  private write(msg: AppRequest): boolean {
    if (!this.isOpen()) return false;
    try {
      this.socket!.send(JSON.stringify(msg));
      return true;
    } catch {
      return false;
    }
  }

  private setState(state: ConnectionState): void {
    this.current = state;
    for (const listener of [...this.listeners]) {
      try {
        listener(state);
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
}
