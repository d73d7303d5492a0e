import type { AppEndMessage, AppReply, AppRequest, Position, RecoveryFailure, SubResult } from '../../proto/app.js';
import { CloseCode, ErrorCodes } from '../../proto/errors.js';
import { canSeeHome, type Principal } from '../auth/authenticator.js';
import { AuthError, CommandError, TierError, asTierError } from '../errors.js';
import { Actor, type ActorSystem } from './actor.js';
import type { CommandSender, CommandSpec } from './commands.js';
import type { TimerHandle, TimerTarget } from './timer-wheel.js';
import { inSpan } from '../trace/active-span.js';
import { endSpan, SpanKind, tracing } from '../trace/tracing.js';
import { byCaller, type AuditTrail, type AuditWhat } from './audit-trail.js';
import { sharedSampledLog } from '../log/sampler.js';

/** A socket joining a home's events (HomeFeeds.catchUp): each call writes at once, in call order. */
export interface FeedSubscriber {
  readonly open: boolean;
  /** the `ok` answer to the `sub` */
  answer(result: SubResult): void;
  /**
   * Sends `events[from..]` (msgpack bytes with positions) until the socket holds half its
   * backpressure limit; returns how many it sent (then wait for `drained`).
   */
  send(events: readonly Uint8Array[], from: number): number;
  /** resolves when the socket has written most of what it holds (or closed) */
  drained(): Promise<void>;
  /**
   * Whether a recovery may hold `bytes` of events it could not send yet while it waits for the
   * drain (a negative count gives them back): at most the socket's budget, all its recoveries
   * together. Absent: always. Refused, it reads them again after the drain.
   */
  keep?(bytes: number): boolean;
  /** the recovery failed after its answer: reload, then go on from `pos` */
  reload(reason: RecoveryFailure, pos: Position): void;
  /** joins the home's fan-out: the live events follow */
  join(): void;
}

/** The app socket as the actor sees it. */
export interface AppLink {
  /** an answer, or an `end` of a subscription, after the replies given so far */
  reply(msg: AppReply | AppEndMessage): void;
  /** the socket's side of joining a home's events, answering request `id`; open while `wanted()` */
  subscriber(homeId: string, id: number, wanted: () => boolean): FeedSubscriber;
  leave(homeId: string): void;
  /** closes the socket once the replies given so far are written (a refusal before its close frame) */
  closeAfterReplies(code: number, reason: string): void;
  readonly open: boolean;
  /** the peer's address, for the audit trail */
  readonly remote?: string;
}

export interface AppSessionDeps {
  readonly system: ActorSystem;
  /** node-wide, reference-counted interest in a home's events on the bus, in order with positions */
  readonly feeds: {
    acquire(homeId: string): void;
    release(homeId: string): void;
    /** where the home's feed stands (null: no position known) */
    position(homeId: string): Position | null;
    /**
     * answers the subscriber, sends what it missed, and joins it with nothing missed and nothing
     * twice (HomeFeeds); false: it did not answer, the subscription having ended first
     */
    catchUp(homeId: string, since: Position | undefined, subscriber: FeedSubscriber, carry?: boolean): Promise<boolean>;
  };
  /** `requestId`: carried to the holding node, which logs it with the outcome */
  readonly sendCommand: CommandSender;
  /** home of a hub, null when unknown */
  readonly homeOf: (hubId: string) => Promise<string | null>;
  readonly commandTimeoutMs: number;
  /** @default 64: homes one connection may subscribe to */
  readonly maxSubscriptions: number;
  /** @default 64: commands of one connection waiting for an answer; more are answered busy */
  readonly maxCommandsInFlight?: number;
  /** commands are recorded here */
  readonly audit?: AuditTrail;
}

/**
 * `homesLost`: a revocation took these homes from the token (it keeps others): they are no longer
 * the connection's, and their subscriptions end (`end`, `forbidden`).
 */
export type AppMessage = { type: 'request'; request: AppRequest } | { type: 'homesLost'; homes: readonly string[] } | { type: 'closed' };

/** An error as the app protocol carries it (`err` answers and `end` messages): its code's row of proto/errors.ts. */
function errorFields(err: TierError): { code: string; num: number; temporary: boolean; msg: string } {
  const row = ErrorCodes[err.code];
  return { code: err.code, num: row.code, temporary: row.temporary, msg: err.message };
}

/** How late after its token's `exp` a socket may be closed: expiries share the wheel's ticks. */
const EXPIRY_SLACK_MS = 1_000;

/**
 * One app connection: the user's identity and homes, its subscriptions (each also held as
 * node-wide interest in the home's bus subject), and its commands. Subscribe and unsubscribe run
 * in order; commands run concurrently and answer with the request id when the hub answers.
 *
 * The token is checked once, at the upgrade; its `exp` is kept here: from then on every request
 * is refused `unauthorized` (token expired), and within a second the socket is closed with 4007
 * `token_expired`, so the app reconnects with a fresh token. One handle on the node's timer wheel
 * per session whose token expires, cancelled when the session stops.
 */
export class AppSession extends Actor<AppMessage> implements TimerTarget {
  /** subscribed homes, each with its subscription's own token (a sub after an unsub is another one) */
  private readonly homes = new Map<string, object>();
  private commandsInFlight = 0;
  /** the ids of this connection's commands waiting for answers; made at its first command */
  private commandIds: Set<number> | undefined;
  /** the token's `exp` in ms on the system's clock; null: it never expires (the admin token, a user token without exp) */
  private readonly expiresAt: number | null;
  private expiry: TimerHandle | null = null;

  /** the token's identity and homes; narrowed when a revocation takes some of its homes */
  get principal(): Principal {
    return this.who;
  }

  constructor(
    private who: Principal,
    private readonly link: AppLink,
    private readonly deps: AppSessionDeps,
    readonly address: string,
    /** the connection's id in log lines; a command's request id is `<conn>.<request id>` */
    readonly conn: string = address,
  ) {
    super();
    this.expiresAt = who.kind === 'user' && who.exp !== undefined ? who.exp * 1000 : null;
    this.armExpiry();
  }

  protected get system(): ActorSystem {
    return this.deps.system;
  }

  protected receive(msg: AppMessage): void {
    if (msg.type === 'closed') {
      this.stop('closed');
      return;
    }
    if (msg.type === 'homesLost') return this.loseHomes(msg.homes);
    const req = msg.request;
    if (this.expired()) return this.refuseExpired(req.id);
    switch (req.op) {
      case 'ping':
        return this.link.reply({ op: 'ok', id: req.id, result: { ts: Date.now() } });
      case 'sub':
        // not awaited: a long recovery must not hold the connection's commands, pings and unsubs
        // (an unsub ends it); the subscription itself is taken in order, before the first await
        this.subscribe(req.id, req.home, req.since, req.carry === true).catch((err: unknown) => this.answerError(req.id, asTierError(err)));
        return;
      case 'unsub':
        if (this.homes.delete(req.home)) {
          this.link.leave(req.home);
          this.deps.feeds.release(req.home);
        }
        return this.link.reply({ op: 'ok', id: req.id });
      case 'cmd':
        this.command(req);
        return;
    }
  }

  /**
   * Takes the subscription now, then lets the feed bring the subscriber in: the answer, the events
   * missed since `since`, then the live ones. A second `sub` of a subscribed home answers with
   * where the feed stands and recovers nothing: the app already receives the home's events.
   */
  private async subscribe(id: number, homeId: string, since: Position | undefined, carry: boolean): Promise<void> {
    if (!canSeeHome(this.principal, homeId)) return this.answerError(id, new TierError('forbidden', `not allowed to subscribe to home ${homeId}`));
    const again = this.homes.has(homeId);
    if (!again) {
      if (this.homes.size >= this.deps.maxSubscriptions) return this.answerError(id, new TierError('limit_exceeded', `at most ${this.deps.maxSubscriptions} homes per connection`));
      this.homes.set(homeId, {});
      this.deps.feeds.acquire(homeId);
    }
    if (again) return this.link.reply({ op: 'ok', id, result: { home: homeId, pos: this.deps.feeds.position(homeId) } });
    // unsubscribed or closed meanwhile: the feed was released, nothing more is sent
    const token = this.homes.get(homeId);
    const answered = await this.deps.feeds.catchUp(homeId, since, this.link.subscriber(homeId, id, () => this.homes.get(homeId) === token), carry);
    if (answered) return;
    // ended before its answer (an unsub, or the home taken from the token): a node answers every sub
    const why = canSeeHome(this.principal, homeId)
      ? new TierError('not_found', `the subscription to home ${homeId} ended (unsub) before it was answered`)
      : new TierError('forbidden', `the token no longer grants home ${homeId} (revoked)`);
    this.answerError(id, why);
  }

  /** The homes are no longer the token's: later requests for them are refused, subscriptions to them end. */
  private loseHomes(lost: readonly string[]): void {
    const p = this.who;
    if (p.kind !== 'user') return;
    const gone = new Set(lost);
    this.who = { ...p, homes: new Set([...p.homes].filter((h) => !gone.has(h))) };
    for (const home of gone) {
      if (!this.homes.delete(home)) continue;
      this.link.leave(home);
      this.deps.feeds.release(home);
      this.link.reply({ op: 'end', home, ...errorFields(new TierError('forbidden', `the token no longer grants home ${home} (revoked)`)) });
    }
  }

  private command(req: Extract<AppRequest, { op: 'cmd' }>): void {
    const timeoutMs = req.timeoutMs ?? this.deps.commandTimeoutMs;
    const most = this.deps.maxCommandsInFlight ?? 64;
    if (this.commandsInFlight >= most) return this.answerError(req.id, new TierError('busy', `${most} commands of this connection are waiting for answers`));
    // two answers with one id cannot be told apart: the second is refused, not run (review "commands")
    const ids = (this.commandIds ??= new Set());
    if (ids.has(req.id)) return this.answerError(req.id, new TierError('invalid_field', `id: ${req.id} is the id of a command of this connection still waiting for its answer`, { field: 'id' }));
    const spec: CommandSpec = req.set ? { set: req.set } : { method: req.method!, params: req.params ?? {} };
    const what: AuditWhat = { action: 'command', hubId: req.hub, deviceId: req.device, detail: req.set ? `set ${Object.keys(req.set).join(',')}` : (req.method ?? '') };
    const send = async () => {
      const home = await this.deps.homeOf(req.hub);
      // an unknown hub and a hub of another home look the same to the caller
      if (home === null || !canSeeHome(this.principal, home)) throw new TierError('forbidden', `not allowed to command hub ${req.hub}`);
      what.homeId = home;
      return this.deps.sendCommand(req.hub, req.device, spec, timeoutMs, requestId, span);
    };
    const requestId = `${this.conn}.${req.id}`;
    // a child of the app's traceparent when it sent one, else a root (sampled at the node's ratio)
    const span = tracing === null ? undefined : tracing.start('app command', SpanKind.SERVER, req.traceparent, { 'hubtier.hub_id': req.hub, 'hubtier.device_id': req.device, 'hubtier.request_id': requestId });
    const audit = this.deps.audit;
    const run = audit ? () => audit.run(byCaller(this.principal, { remote: this.link.remote, requestId }), what, send) : send;
    this.commandsInFlight++;
    ids.add(req.id);
    const answered = (result: unknown) => {
      if (span) endSpan(span);
      if (this.link.open) this.link.reply({ op: 'ok', id: req.id, result });
    };
    const failed = (err: unknown) => {
      const e = asTierError(err);
      if (span) endSpan(span, e.code);
      // the caller's side of a failure; failures the holding node saw are logged there too. Sampled
      // per code node-wide: one socket's refused commands wrote 5,000 lines a second (review "logs")
      sharedSampledLog(this.system.log, 'app command failures not logged', 'code').info(e.code, { conn: this.conn, id: req.id, hubId: req.hub, requestId, code: e.code }, 'app command failed');
      if (this.link.open) this.answerError(req.id, e);
    };
    const done = () => {
      this.commandsInFlight--;
      ids.delete(req.id);
    };
    // a sampled span is active for the command and its answer: their lines carry its trace ids
    if (span === undefined) run().finally(done).then(answered, failed);
    else inSpan(span, () => run().finally(done).then(answered, failed));
  }

  private answerError(id: number | undefined, err: TierError): void {
    const reply: AppReply = { op: 'err', id, ...errorFields(err) };
    if (err.field !== undefined) reply.field = err.field;
    if (err instanceof CommandError && err.hubCode !== undefined) reply.hubCode = err.hubCode;
    if (err instanceof CommandError && err.hubTemporary) reply.hubTemporary = true;
    if (err instanceof CommandError && err.unsent) reply.sent = false;
    this.link.reply(reply);
  }

  /** Answers a request that could not be decoded or validated (with its id when it had a valid one). */
  rejectRaw(err: TierError): void {
    this.answerError(err.ref, err);
  }

  /** The wheel's call at `exp`; the wheel's clock may run ahead of the wall clock's: then it waits for the rest. */
  onTimer(): void {
    this.expiry = null;
    if (this.stopped) return;
    if (this.expired()) this.link.closeAfterReplies(CloseCode.unauthorized, 'token_expired');
    else this.armExpiry();
  }

  private armExpiry(): void {
    if (this.expiresAt === null) return;
    this.expiry = this.system.timers.schedule(this.expiresAt - this.nowMs(), this, 0, EXPIRY_SLACK_MS);
  }

  /** As JWT's `exp` (RFC 7519 §4.1.4): the token is not accepted on or after that instant. */
  private expired(): boolean {
    return this.expiresAt !== null && this.nowMs() >= this.expiresAt;
  }

  /** A request after `exp` is refused with its id, then the socket closes (if the timer has not closed it yet). */
  private refuseExpired(id: number): void {
    this.answerError(id, new AuthError('unauthorized', 'token expired'));
    this.link.closeAfterReplies(CloseCode.unauthorized, 'token_expired');
  }

  private nowMs(): number {
    return (this.system.now ?? Date.now)();
  }

  protected onStop(): void {
    this.system.timers.cancel(this.expiry);
    this.expiry = null;
    for (const home of this.homes.keys()) this.deps.feeds.release(home);
    this.homes.clear();
  }

  protected override refused(msg: AppMessage): void {
    if (msg.type === 'request') this.answerError(msg.request.id, new TierError('busy'));
  }
}
