import type { BusObserver, BusRequestOutcome } from '../ports.js';
import { readFileSync } from 'node:fs';
import { connect, credsAuthenticator, errors, type Msg, type NatsConnection, type Status } from '@nats-io/transport-node';
import { natsConnectTarget } from '../../config/backend-urls.js';
import { TierError } from '../../errors.js';
import type { Logger } from '../../log/logger.js';
import { subscriptions, type Subscribe } from './nats-subscriptions.js';
import { untrustedCertificate } from '../tls-failure.js';
import {
  BusUnavailableError,
  NoRespondersError,
  RequestCutError,
  RequestTimeoutError,
  validateSubject,
  type Bus,
  type BusLink,
  type BusSubscriber,
  type BusMessage,
  type BusSubscription,
  type SubscribeOptions,
} from './bus.js';
import { steadyWallMs } from '../../actors/clock.js';

/** of a close's time, what the drain keeps after the wait for answers (ms): what is published goes out */
const DRAIN_FLOOR_MS = 1_000;

export type NatsBusState = 'connected' | 'reconnecting' | 'closed';

/** What readiness reports about the bus. */
export interface NatsBusStatus {
  state: NatsBusState;
  /** host:port of the server this client talks to (or last talked to) */
  server: string;
  /** reconnects since start */
  reconnects: number;
  /** ms since the Unix epoch of the last state change */
  since: number;
  /** messages (and replies) dropped since start because they were published while disconnected */
  dropped: number;
}

/** how long a flush waits for the server's answer (ms): the time every Redis call gets */
const FLUSH_TIMEOUT_MS = 2_000;

export interface NatsBusOptions {
  /** client name shown by the server's monitoring (`connz`), e.g. the node id */
  name: string;
  log: Logger;
  /** @default 2_000 (ms): wait between reconnect attempts (plus up to 100 ms jitter) */
  reconnectTimeWaitMs?: number;
  /** @default 5_000 (ms): how long the first connection may take before start-up fails */
  connectTimeoutMs?: number;
  /** @default 5_000 (ms): how long `close()` may drain before it closes hard */
  drainTimeoutMs?: number;
  /**
   * A ping to the server this often; two unanswered when the third is due make the connection
   * stale, and the client reconnects (a hung server is left after 2–3 intervals, not the client's
   * own 4–6 minutes, during which every request would wait out its timeout).
   * @default 5_000 (ms)
   */
  pingIntervalMs?: number;
  /** told of each request's outcome and round trip */
  observe?: BusObserver;
  /** a `.creds` file (the user's JWT and nkey seed: NGS, an operator-mode server), read at each connect so a rotated file is used */
  credsFile?: string;
  /** TLS files: the CA to trust, and a client certificate with its key for a server that asks for one (mTLS); any of them requires TLS */
  tls?: { caFile?: string; certFile?: string; keyFile?: string };
}

/**
 * The bus over NATS core (no JetStream): subjects, wildcards and queue groups are the server's own.
 *
 * - `request` uses the server's no-responders notice (NATS ≥ 2.2, headers), so a request nobody
 *   subscribes to fails at once with `NoRespondersError`; no answer within the timeout is a
 *   `RequestTimeoutError`.
 * - The first connection must succeed within `connectTimeoutMs` (a node does not start without its
 *   bus); after that the client reconnects forever and re-subscribes by itself. Messages published
 *   while disconnected are dropped and counted (`status().dropped`): the client would discard its
 *   outbound buffer at the next reconnect attempt anyway, and at most once allows it. A request made
 *   meanwhile fails at once with `BusUnavailableError` (a temporary `unavailable`). A server that
 *   stops answering is left after two pings without a pong (`pingIntervalMs`), as if it had gone.
 * - Handlers are called synchronously from the socket's data event; a throw is caught and logged.
 * - After `close()`, publish and respond are dropped silently (a session shutting down may still
 *   publish its offline event); subscribe and request fail with a `draining` TierError.
 */
export class NatsBus implements Bus, BusLink {
  private state: NatsBusState = 'connected';
  // steady: the notice outbox compares it with its notices' times (api/notice-outbox.ts)
  private since = steadyWallMs();
  private reconnects = 0;
  private closing: Promise<void> | null = null;
  /** requests sent and not yet answered: a close waits for them (bounded) before it drains */
  private readonly inFlight = new Set<Promise<unknown>>();
  private dropped = 0;
  private droppedThisOutage = 0;
  private readonly reconnectListeners = new Set<(downSince: number) => void>();
  private readonly subscribeTo: Subscribe;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly log: Logger,
    private readonly drainTimeoutMs: number,
    private readonly observe?: BusObserver,
  ) {
    this.subscribeTo = subscriptions(nc, { log, isClosed: () => this.isClosed(), message: (msg) => new NatsMessage(msg, this) });
    void this.watchStatus();
    void nc.closed().then((err) => {
      this.setState('closed');
      if (err) this.log.error({ err }, 'nats connection closed with an error');
      else this.log.info('nats connection closed');
    });
  }

  /**
   * Connects to `url` (several servers separated by commas) and resolves once connected. Credentials
   * in the URL (`user:pass@`, `token@`) are passed as options: the client ignores them in a server URL.
   */
  static async connect(url: string, options: NatsBusOptions): Promise<NatsBus> {
    const { servers, ...credentials } = natsConnectTarget(url);
    const { credsFile, tls } = options;
    let nc: NatsConnection;
    try {
      nc = await connect({
        servers,
        ...credentials,
        ...(tls ? { tls: { ...credentials.tls, ...tls } } : {}),
        ...(credsFile ? { authenticator: credsAuthenticator(() => readFileSync(credsFile)) } : {}),
        name: options.name,
        maxReconnectAttempts: -1,
        reconnectTimeWait: options.reconnectTimeWaitMs ?? 2_000,
        timeout: options.connectTimeoutMs ?? 5_000,
        pingInterval: options.pingIntervalMs ?? 5_000,
        maxPingOut: 2,
        // fail start-up instead of waiting forever for a server that is not there
        waitOnFirstConnect: false,
        // the client gives up for good after two refusals of its credentials in a row: a rotation
        // on the server (every node at once) left the fleet without NATS until restarted by hand
        ignoreAuthErrorAbort: true,
      });
    } catch (err) {
      throw new TierError('unavailable', `nats at ${servers.join(',')} is unreachable: ${connectFailure(err as Error)}`, { cause: err });
    }
    options.log.info({ server: nc.getServer() }, 'nats connected');
    return new NatsBus(nc, options.log, options.drainTimeoutMs ?? 5_000, options.observe);
  }

  /** True while connected to a server (false while reconnecting and after close). */
  get connected(): boolean {
    return this.state === 'connected';
  }

  onReconnect(listener: (downSince: number) => void): BusSubscription {
    this.reconnectListeners.add(listener);
    return { unsubscribe: () => this.reconnectListeners.delete(listener) };
  }

  status(): NatsBusStatus {
    return { state: this.state, server: this.nc.getServer(), reconnects: this.reconnects, since: this.since, dropped: this.dropped };
  }

  /** One round trip to the server (ms), for self-diagnosis; rejects while disconnected or closed. */
  async rtt(): Promise<number> {
    if (this.state !== 'connected') throw new TierError('unavailable', `bus ${this.state}: no round trip`);
    return this.nc.rtt();
  }

  publish(subject: string, data: Uint8Array): void {
    validateSubject(subject, false);
    this.send(subject, data);
  }

  subscribe(subject: string, subscriber: BusSubscriber, options: SubscribeOptions = {}): BusSubscription {
    validateSubject(subject, true);
    if (this.isClosed()) throw new TierError('draining', `bus closed: cannot subscribe to ${subject}`);
    // a queue name is a field of the SUB line, as the subject is
    if (options.queue !== undefined) validateSubject(options.queue, false);
    return this.subscribeTo(subject, options.queue, subscriber);
  }

  async request(subject: string, data: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    if (!this.observe) return this.roundTrip(subject, data, timeoutMs);
    const started = performance.now();
    let outcome: BusRequestOutcome = 'error';
    try {
      const reply = await this.roundTrip(subject, data, timeoutMs);
      outcome = 'ok';
      return reply;
    } catch (err) {
      if (err instanceof NoRespondersError) outcome = 'no_responders';
      else if (err instanceof RequestTimeoutError) outcome = 'timeout';
      throw err;
    } finally {
      this.observe.request(outcome, (performance.now() - started) / 1000);
    }
  }

  private async roundTrip(subject: string, data: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    validateSubject(subject, false);
    if (this.isClosed()) throw new TierError('draining', `bus closed: cannot request ${subject}`);
    if (this.state === 'reconnecting') {
      // the client would discard the request at its next reconnect attempt: say so now, not at the timeout
      this.dropped++;
      throw new BusUnavailableError(subject);
    }
    const sent = this.nc.request(subject, data, { timeout: Math.max(1, Math.round(timeoutMs)) });
    this.inFlight.add(sent);
    try {
      const reply = await sent;
      return reply.data;
    } catch (err) {
      if (err instanceof errors.TimeoutError) throw new RequestTimeoutError(subject, timeoutMs);
      if (err instanceof errors.NoRespondersError) throw new NoRespondersError(subject);
      if (err instanceof errors.RequestError && err.isNoResponders()) throw new NoRespondersError(subject);
      if (err instanceof errors.RequestError && err.cause instanceof errors.TimeoutError) throw new RequestTimeoutError(subject, timeoutMs);
      // it went out: the responder may have acted on it (a command the hub ran), so never `draining`
      if (this.isClosed()) throw new RequestCutError(subject, { cause: err });
      throw new TierError('internal', `nats request on ${subject} failed: ${(err as Error).message}`, { cause: err });
    } finally {
      this.inFlight.delete(sent);
    }
  }

  /** A round trip to the server: what was published (and subscribed) before has reached it. */
  async flush(): Promise<void> {
    if (this.isClosed()) return;
    if (this.state === 'reconnecting') throw new TierError('unavailable', 'bus disconnected: cannot flush');
    // a hung server keeps the connection up until two pings go unanswered: a handshake waited ~10 s, then failed `internal`
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      // judged after the loop's I/O: timers run first after a stall, when the answer may be read and waiting
      const refuse = () => reject(new TierError('unavailable', `bus server did not answer a flush within ${FLUSH_TIMEOUT_MS} ms`));
      timer = setTimeout(() => setImmediate(refuse), FLUSH_TIMEOUT_MS);
    });
    try {
      await Promise.race([this.nc.flush(), late]);
    } catch (err) {
      if (err instanceof TierError) throw err;
      throw new TierError('unavailable', `bus flush failed: ${(err as Error).message}`, { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }

  /** Drains (delivers what is in flight, sends what is buffered), closing hard after `drainTimeoutMs`. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  /** Publishes; false (nothing sent) while disconnected, or once closed or past the drain. */
  send(subject: string, data: Uint8Array): boolean {
    if (this.state === 'reconnecting') {
      if (this.droppedThisOutage++ === 0) this.log.warn({ subject }, 'nats disconnected: dropping messages until it is back');
      this.dropped++;
      return false;
    }
    try {
      this.nc.publish(subject, data);
      return true;
    } catch (err) {
      if (err instanceof errors.ClosedConnectionError || err instanceof errors.DrainingConnectionError) {
        this.log.debug({ subject }, 'bus closed: message dropped');
        return false;
      }
      throw err;
    }
  }

  private isClosed(): boolean {
    return this.closing !== null || this.nc.isClosed() || this.nc.isDraining();
  }

  private async shutdown(): Promise<void> {
    if (this.nc.isClosed()) return;
    // the close keeps within drainTimeoutMs, its wait for answers included (the drain's time budget, README)
    const deadline = performance.now() + this.drainTimeoutMs;
    // requests already sent get their answers first (a command's caller hears the hub's result, not
    // that this node stopped; review "commands"): new ones are refused meanwhile, nothing sent
    if (this.inFlight.size > 0) {
      const waitMs = Math.max(0, this.drainTimeoutMs - DRAIN_FLOOR_MS);
      let wait: NodeJS.Timeout | undefined;
      const waited = await Promise.race([Promise.allSettled([...this.inFlight]).then(() => 'answered' as const), new Promise<'timeout'>((r) => (wait = setTimeout(() => r('timeout'), waitMs)))]);
      clearTimeout(wait);
      if (waited === 'timeout') this.log.warn({ ms: waitMs, requests: this.inFlight.size }, 'nats close: requests still unanswered are cut (their callers are told the outcome is unknown)');
    }
    const drainMs = Math.max(Math.min(DRAIN_FLOOR_MS, this.drainTimeoutMs), deadline - performance.now());
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), drainMs);
    });
    try {
      const outcome = await Promise.race([this.nc.drain().then(() => 'drained' as const), timedOut]);
      if (outcome === 'timeout') this.log.warn({ ms: Math.round(drainMs) }, 'nats drain timed out; closing');
    } catch (err) {
      this.log.warn({ err }, 'nats drain failed; closing');
    } finally {
      clearTimeout(timer);
    }
    if (!this.nc.isClosed()) await this.nc.close();
    this.setState('closed');
  }

  private async watchStatus(): Promise<void> {
    try {
      for await (const s of this.nc.status()) this.onStatus(s);
    } catch (err) {
      this.log.error({ err }, 'nats status watch ended');
    }
  }

  private onStatus(s: Status): void {
    switch (s.type) {
      case 'disconnect':
        this.setState('reconnecting');
        this.log.warn({ server: s.server }, 'nats disconnected; reconnecting');
        return;
      case 'reconnecting':
        if (this.state !== 'closed') this.setState('reconnecting');
        this.log.debug('nats reconnecting');
        return;
      case 'reconnect': {
        const downSince = this.since;
        this.reconnects++;
        this.setState('connected');
        this.log.info({ server: s.server, dropped: this.droppedThisOutage, downMs: steadyWallMs() - downSince }, 'nats reconnected');
        this.droppedThisOutage = 0;
        for (const listener of this.reconnectListeners) {
          try {
            listener(downSince);
          } catch (err) {
            this.log.error({ err }, 'reconnect listener failed');
          }
        }
        return;
      }
      case 'close':
        this.setState('closed');
        return;
      case 'error':
        this.log.error({ err: s.error }, 'nats error');
        return;
      case 'staleConnection':
        this.log.warn('nats connection stale; reconnecting');
        return;
      case 'ldm':
        this.log.warn({ server: s.server }, 'nats server entering lame duck mode');
        return;
      case 'slowConsumer':
        this.log.warn({ subject: s.sub.getSubject() }, 'nats slow consumer');
        return;
      case 'forceReconnect':
        this.log.info('nats forced reconnect');
        return;
      case 'update':
      case 'ping':
        return;
    }
  }

  private setState(state: NatsBusState): void {
    if (this.state === state || this.state === 'closed') return;
    this.state = state;
    this.since = steadyWallMs();
  }
}

class NatsMessage implements BusMessage {
  constructor(
    private readonly msg: Msg,
    private readonly bus: NatsBus,
  ) {}

  get subject(): string {
    return this.msg.subject;
  }

  get data(): Uint8Array {
    return this.msg.data;
  }

  get replyTo(): string | undefined {
    return this.msg.reply || undefined;
  }

  respond(data: Uint8Array): boolean {
    const to = this.msg.reply;
    if (!to) return false;
    return this.bus.send(to, data);
  }
}

/** Why a first connection failed; a refused login says where the credentials come from. */
function connectFailure(err: Error): string {
  if (/authori[sz]ation violation|authentication/i.test(err.message)) return `${err.message} (check the credentials in NATS_URL, or NATS_CREDS_FILE)`;
  if (untrustedCertificate(err)) return `${err.message} (the server's certificate is not trusted: give its CA in NATS_TLS_CA_FILE, and name in NATS_URL a host the certificate names)`;
  // the client's own words for a tls:// URL to a server without TLS
  if (/does not support 'tls'/.test(err.message)) return `${err.message} (NATS_URL names tls://: this server has no TLS; use nats:// if that is meant)`;
  return err.message;
}
