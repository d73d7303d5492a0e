/**
 * Over 400 lines: the hub session actor is one state machine (handshake, frames, commands, takeover,
 * close); its parts that stand alone already live beside it (hub-commands, hub-reports, hub-rate).
 */
import { CloseCode, type ErrorCode } from '../../proto/errors.js';
import { FrameType, PROTOCOL_VERSION, type Attrs, type HelloFrame, type HubToServerFrame, type ServerToHubFrame } from '../../proto/frames.js';
import { hubVerbOf, subjects } from '../../proto/subjects.js';
import type { BusListener, BusMessage, BusSubscription } from '../ports/bus/bus.js';
import type { HubClaim } from '../ports/directory/directory.js';
import { hubDelta, type HubShadow } from '../ports/shadow-store/shadow-store.js';
import { asTierError, TierError } from '../errors.js';
import { placementVerdict } from '../ports/hub-registry/hub-registry.js';
import type { Logger } from '../log/logger.js';
import { decodeValue, encode, encodeBus, errorFrameFor, isPlainObject } from '../protocol/codec.js';
import { tracing } from '../trace/tracing.js';
import { Actor, type ActorSystem } from './actor.js';
import { monotonicMs } from './clock.js';
import { outageRetryMs } from './outage-retry.js';
import { welcomeFrames } from './desired-frames.js';
import { HubCommands, reply } from './hub-commands.js';
import type { HubLink, HubMessage, HubSessionDeps, SessionState } from './hub-deps.js';
import { admit, fillBudget, type RateBudget } from './hub-rate.js';
import { HubReports } from './hub-reports.js';
import { keepPastBound } from './hub-overflow.js';
import type { TimerHandle, TimerTarget } from './timer-wheel.js';

export type { HubLink, HubMessage, HubSessionDeps, HubSessionMetrics, SessionState } from './hub-deps.js';

/** `waiters` of a closed session: one shared marker instead of a flag in every session. */
const CLOSED = Object.freeze([]) as unknown as Array<() => void>;
/** Timer tags of the session's own timers; command timers use the command's id (1 and up). */
const HELLO_TIMER = -1;
const IDLE_TIMER = -2;
/** the end of a drain's wait for the results of commands the hub runs */
const DRAIN_TIMER = -3;
/** How long a draining node keeps a hub's socket for the results of commands the hub runs (within a pod's grace period) */
export const DRAIN_RESULTS_MS = 5_000;
/** A draining node's `reconnect {after}`: its hubs come back spread over 5 s (to another node in a cluster) */
export const drainSpreadMs = (): number => Math.floor(Math.random() * 5_000);
/** `closeReason` while a draining (or shed) session waits for those results, its socket still open: by why it closes */
const AWAITING_RESULTS = { draining: 'draining: awaiting results', rebalancing: 'rebalancing: awaiting results' } as const;
const awaiting = (reason: string | null): 'draining' | 'rebalancing' | null =>
  reason === AWAITING_RESULTS.draining ? 'draining' : reason === AWAITING_RESULTS.rebalancing ? 'rebalancing' : null;

/** How late a hello or idle check may fire: a tenth of its period, at most 1 s, so a node's thousands share a few wake-ups. */
function slackOf(periodMs: number): number {
  return Math.min(1_000, periodMs / 10);
}

/**
 * One connected hub: the handshake (hello → directory claim → welcome), the frames in order
 * through its mailbox, heartbeat and idle enforcement, takeover and close. What the hub reports is
 * kept and acknowledged by `HubReports`, commands to it wait in `HubCommands`, the per-hub rate
 * limit is `RateBudget` (its fields are the session's). Addressed on the bus as `hub.<hubId>.*`
 * while it holds the hub.
 */
export class HubSession extends Actor<HubMessage> implements TimerTarget, BusListener, RateBudget {
  state: SessionState = 'connecting';
  epoch = 0;
  private readonly reports: HubReports;
  /** made on the first command: most sessions of a node never get one */
  private commands: HubCommands | null = null;
  /** when the hub's last frame or ping came (`monotonicMs`) */
  private lastSeen = monotonicMs();
  private timer: TimerHandle | null;
  private subscription: BusSubscription | null = null;
  /** who waits for the session to be closed and released; CLOSED once it is */
  private waiters: Array<() => void> | null = null;
  /** when the socket was accepted (`monotonicMs`); why this side closed it (null: the hub or the network did) */
  private readonly since = monotonicMs();
  private closeReason: string | null = null;
  /**
   * A newer session of the hub exists (its notice came, whatever this one was doing): commands it
   * holds are left to that one. Declared, not initialized: set on the few sessions taken over, it
   * costs the others no slot (an initialized field was 13–18 B a session, BENCHMARKS 2026-12-07 eighth).
   */
  declare private takenOver?: true;
  /** the frame budget (hub-rate.ts), filled in the constructor: fields here, not an object per hub */
  rateTokens = 0;
  rateRefilled = 0;
  rateHeartbeat = 0;
  rateViolations: RateBudget['rateViolations'] = null;

  constructor(
    readonly hubId: string,
    readonly homeId: string,
    private readonly link: HubLink,
    readonly deps: HubSessionDeps,
    /** `provisionMark` of the admitted record's `createdAt` (0: unknown): a hub id deleted and provisioned again has another */
    readonly provisioned = 0,
  ) {
    super();
    this.reports = new HubReports(this);
    fillBudget(this, deps, this.lastSeen);
    this.timer = deps.system.timers.schedule(deps.helloTimeoutMs, this, HELLO_TIMER, slackOf(deps.helloTimeoutMs));
  }

  get address(): string {
    return `hub:${this.hubId}`;
  }

  protected get system(): ActorSystem {
    return this.deps.system;
  }

  /** A child logger made on use: its lines are rare (a cached one would cost every session memory). */
  private get log(): Logger {
    return this.deps.system.log.child({ hubId: this.hubId });
  }

  /** Activity that is not a frame (a WebSocket ping): keeps the session from the idle timeout. */
  touch(): void {
    this.lastSeen = monotonicMs();
  }

  /** Entry point of the gateway for every decoded frame: rate limit, then the mailbox. */
  receiveFrame(frame: HubToServerFrame): void {
    const now = (this.lastSeen = monotonicMs());
    const verdict = admit(this, frame, now, this.deps);
    if (verdict === 'pass') this.tell(tracing === null ? { type: 'frame', frame } : { type: 'frame', frame, queued: performance.now() });
    else if (verdict === 'close') this.closeWith(CloseCode.rateLimited, 'rate_limited');
    else this.heldBack('rate_limited', 'slow down: frame refused, resend it later', frame);
  }

  /** Refuses a frame for now: the hub resends it, and the session must not skip past its number. */
  private heldBack(code: 'rate_limited' | 'busy', msg: string, frame: HubToServerFrame): void {
    const seq = seqOf(frame);
    if (seq !== undefined) this.reports.heldBack(seq);
    this.sendError(code, msg, seq);
  }

  /** A sequenced frame or a result the gateway refused (validation); handled in order in the mailbox. */
  refuse(error: TierError, seq: number | undefined, commandId: number | undefined): void {
    this.tell({ type: 'refused', error, seq, commandId });
  }

  /** Called by the wheel; handled in the mailbox so it never interleaves with a message. */
  onTimer(tag: number): void {
    this.tell({ type: 'timer', tag });
  }

  protected receive(msg: HubMessage): void | Promise<void> {
    switch (msg.type) {
      case 'frame': {
        // one count per frame the hub sent: a full mailbox folds heartbeats, and reports, into one message
        this.deps.metrics?.frameIn(msg.frame.t, framesIn(msg));
        try {
          const done = this.onFrame(msg.frame, msg.from, msg.queued, msg.beats, msg.seqs);
          return done === undefined ? undefined : done.catch((err: unknown) => this.frameFailed(err));
        } catch (err) {
          return this.frameFailed(err);
        }
      }
      case 'refused':
        return this.onRefused(msg.error, msg.seq, msg.commandId);
      case 'command':
        return this.onCommand(msg.request, msg.queued);
      case 'desired':
        return this.onDesired(msg.data);
      case 'desiredPending':
        return this.sendStoredDesired(true);
      case 'desiredRecheck':
        return this.sendStoredDesired(false);
      case 'takeover':
        return this.onTakeover(msg.data);
      case 'closeOrder':
        return this.onCloseOrder(msg.data);
      case 'superseded':
        this.takenOver = true;
        return this.closeWith(CloseCode.takeover, 'session_taken_over');
      case 'timer':
        return this.onTimerTag(msg.tag);
      case 'closed':
        return this.onClosed(msg.code);
    }
  }

  /**
   * A frame that failed half-applied leaves this session's copy of the shadow ahead of the store:
   * the session closes (1011) and the hub's next session starts from the store and resends what
   * was not acknowledged. The error still reaches the supervisor, which counts it. A write the
   * store's epoch fence refused closes it 4000 (takeover) instead, not counted: no fault of this node.
   */
  private frameFailed(err: unknown): void {
    // the store refused a write of this session: a newer one holds the hub, as on its notice
    if (err instanceof TierError && err.code === 'session_taken_over') return this.closeWith(CloseCode.takeover, 'session_taken_over');
    this.closeWith(CloseCode.internal, 'internal');
    throw err;
  }

  private onFrame(frame: HubToServerFrame, from?: number, queued?: number, beats = 1, seqs?: Record<string, number>): void | Promise<void> {
    if (this.state === 'connecting') {
      if (frame.t === FrameType.hello) return this.onHello(frame);
      this.sendError('hello_required', 'send hello first');
      this.closeWith(CloseCode.protocolError, 'hello_required');
      return;
    }
    if (this.state !== 'online') return this.whileDraining(frame);
    switch (frame.t) {
      case FrameType.heartbeat:
        return this.reports.answerHeartbeat(beats);
      case FrameType.report:
        return this.reports.report(frame, from, queued, seqs);
      case FrameType.event:
        return this.reports.event(frame, queued);
      case FrameType.devices:
        return this.reports.devices(frame);
      case FrameType.result:
        return this.commands?.result(frame);
      case FrameType.error:
        // a refusal of a waiting command ends it (its outcome line says so); any other is sampled at warn
        if (this.commands?.hubRefused(frame) === true) return;
        return this.deps.hubErrors.write(this.hubId, frame);
      case FrameType.bye:
        this.closeWith(CloseCode.normal, 'bye');
        return;
      case FrameType.hello:
        this.sendError('invalid_field', 'hello was already received');
        return;
    }
  }

  private async onHello(hello: HelloFrame): Promise<void> {
    this.deps.system.timers.cancel(this.timer);
    this.timer = null;
    if (this.deps.draining?.()) return this.shutdown(drainSpreadMs(), 0);
    let claim: HubClaim | undefined;
    try {
      claim = await this.deps.directory.claim(this.hubId, this.deps.nodeId);
      this.epoch = claim.epoch;
      await this.open(hello, claim);
    } catch (err) {
      // the directory, the bus or the shadow store is unreachable: the hub retries with backoff
      if (this.deps.openFailures) this.deps.openFailures.write('open', { err, hubId: this.hubId }, 'hub session could not open');
      else this.log.warn({ err }, 'hub session could not open');
      if (claim !== undefined) this.giveBack(claim);
      this.epoch = 0;
      this.closeForOutage(err, 'the server cannot open the session now, retry later');
    }
  }

  /** A backend is unreachable (or failed): the hub is told to reconnect after a spread delay, and the socket closes (1011). */
  private closeForOutage(err: unknown, msg: string): void {
    const code = asTierError(err).code === 'unavailable' ? 'unavailable' : 'internal';
    this.sendError(code, msg);
    this.send({ t: FrameType.reconnect, after: outageRetryMs(), e: code });
    this.closeWith(CloseCode.internal, code);
  }

  /**
   * Releases the entry of a claim whose session failed to open. The session it displaced may have
   * closed meanwhile and, finding this claim, said nothing: while the entry was still this claim's,
   * the hub's `offline` is this session's to say.
   */
  private giveBack({ epoch, displaced }: HubClaim): void {
    this.deps.directory.release(this.hubId, this.deps.nodeId, epoch).then((current) => {
      if (current && displaced) this.deps.publishEvent({ op: 'evt', kind: 'offline', home: this.homeId, hub: this.hubId, reason: String(CloseCode.internal), ts: Date.now() }, epoch);
    }).catch(() => {});
  }

  /** The rest of the handshake, once the directory has given the session its epoch. */
  private async open(hello: HelloFrame, claim: HubClaim): Promise<void> {
    const { bus, directory, shadows, nodeId } = this.deps;
    // the previous holder, here or on another node, closes when it sees a larger epoch. Announced
    // before subscribing, so this session is not handed its own notice to decode and drop
    bus.publish(subjects.hubTakeover(this.hubId), encodeBus({ epoch: this.epoch, node: nodeId }));
    // subscribed (and confirmed by the server) before the shadow is read: a later claim's notice
    // then reaches this session, and one sent before is caught by `holds` below (that claim came
    // first); commands arriving meanwhile wait in the mailbox until the session is online
    this.subscription = bus.subscribe(subjects.hubAll(this.hubId), this);
    await bus.flush();
    // the fence rises to this epoch: the session taken over cannot store (and acknowledge) what this read lacks.
    // The hub's record is read again beside it: an order given since the upgrade (delete, move,
    // disable) was published before this session listened, and reached no one (a hostile review,
    // 2026-12-06: a hub moved while connecting streamed its new home's state to the old one)
    const [{ shadow, cursor }, placement] = await Promise.all([shadows.loadSession(this.hubId, this.epoch), this.deps.registry?.placements([this.hubId])]);
    const verdict = placement === undefined ? null : placementVerdict(this, placement[0] ?? null);
    if (this.state === 'connecting' && verdict !== null) this.obey(verdict === 'moved' ? 'hub_moved' : 'hub_disabled');
    // a connection that raced this one and claimed later has won: this one gives way
    if (this.state === 'connecting' && !(await directory.holds(this.hubId, nodeId, this.epoch))) {
      this.closeWith(CloseCode.takeover, 'session_taken_over');
    }
    if (this.stopped || this.state !== 'connecting') return; // cleanup follows on `closed`
    const boot = this.reports.storeBoot(hello.b, cursor, this.deps.helloTimeoutMs);
    if (boot !== null && !(await boot)) throw new TierError('unavailable', "the hub's boot id was not stored in time");
    if (this.stopped || this.state !== 'connecting') return;
    // the drain told the sessions online when it began; one that was still handshaking is told now,
    // where it was welcomed and left open until the process ended (a race review, 2026-12-06). Never
    // online, it gives its claim back as a session that failed to open: `offline` only for one displaced
    if (this.deps.draining?.()) {
      this.giveBack(claim);
      this.epoch = 0;
      return this.shutdown(drainSpreadMs(), 0);
    }
    const delta = hubDelta(shadow);
    const lastSeq = this.reports.resume(hello.b, shadow, cursor);
    this.deps.sessions.claim(this)?.tell({ type: 'superseded' });
    this.state = 'online';
    const head = { t: FrameType.welcome, v: PROTOCOL_VERSION, ep: this.epoch, hb: this.deps.heartbeatMs, idle: this.deps.idleMs, max: this.deps.maxFrameBytes, ts: Date.now(), s: Math.max(0, lastSeq) } as const;
    const { welcome, rest } = welcomeFrames(head, delta, this.deps.maxFrameBytes);
    this.send(welcome);
    // the delta past what one welcome may hold follows as `set` commands (PROTOCOL.md §6)
    for (const set of rest) this.commandTable().own(set.d, set.p, this.deps.idleMs);
    this.armIdle();
    this.deps.publishEvent({ op: 'evt', kind: 'online', home: this.homeId, hub: this.hubId, node: nodeId, ts: Date.now() }, this.epoch);
    if (hello.fw !== undefined) this.deps.noteFirmware?.(this.hubId, hello.fw);
    // the node's logger with the hub's id as a field: a child logger per line and the socket's
    // address cost every handshake several µs, paid only when the line is written
    const log = this.deps.system.log;
    if (log.isLevelEnabled('info')) log.info({ hubId: this.hubId, homeId: this.homeId, epoch: this.epoch, fw: hello.fw, remote: this.link.remote }, 'hub session opened');
  }

  /**
   * A frame refused by validation or a limit: a sequenced one is consumed (see HubReports), a
   * refused result fails its command now.
   */
  private onRefused(error: TierError, seq: number | undefined, commandId: number | undefined): void {
    // a drain waiting for results takes a refused one as it takes a result (whileDraining)
    if (commandId !== undefined && awaiting(this.closeReason) !== null) {
      this.commands?.refused(commandId, error);
      return this.closeWhenAnswered();
    }
    if (this.state !== 'online') return;
    if (seq !== undefined) this.reports.refused(seq);
    if (commandId !== undefined) this.commands?.refused(commandId, error);
  }

  /** A message on `hub.<hubId>.*`, from the bus: into the mailbox. */
  onBusMessage(msg: BusMessage): void {
    const verb = hubVerbOf(msg.subject);
    if (verb === 'cmd') {
      const cmd: HubMessage = tracing === null ? { type: 'command', request: msg } : { type: 'command', request: msg, queued: performance.now() };
      if (!this.tell(cmd) && this.stopped) this.answerClosed(msg, 'the session is closed');
    } else if (verb === 'desired') this.tell({ type: 'desired', data: msg.data });
    else if (verb === 'takeover') {
      // a stopped session still hears notices in flight: a command after one is the new session's too
      if (!this.tell({ type: 'takeover', data: msg.data }) && this.stopped) this.noteTakeover(msg.data);
    }
    else if (verb === 'close') this.tell({ type: 'closeOrder', data: msg.data });
  }

  private onCommand(request: BusMessage, queued?: number): void {
    if (this.state !== 'online') this.answerClosed(request, 'the session is closing');
    else this.commandTable().forward(request, this.reports, queued);
  }

  /**
   * A command this session will not send: `session_closed`, but not once taken over. The bus also
   * handed it to the session that took over, whose answer would come second and be lost, so a
   * caller told `session_closed` for a command the hub ran could run it twice (found by a hostile
   * review, 2026-12-06). A command the new session never got times out instead: its outcome unknown.
   */
  private answerClosed(request: BusMessage, msg: string): void {
    if (this.closeReason === 'session_taken_over' || this.takenOver === true) return;
    reply(request, { ok: false, e: 'session_closed', msg, ns: true });
  }

  private commandTable(): HubCommands {
    return (this.commands ??= new HubCommands(this));
  }

  /** HubReports: a report taken names these attributes (HubCommands.reported). */
  reportedKeys(deviceId: string, patch: Attrs): void {
    this.commands?.reported(deviceId, patch);
  }

  /** Whether command `commandId` waits for the hub's answer (RateBudget: only answers to those are free). */
  awaits(commandId: number): boolean {
    return this.commands?.awaits(commandId) === true;
  }

  /** A desired change: the hub gets the delta as a `set` command nobody waits for. */
  private onDesired(data: Uint8Array): void {
    if (this.state !== 'online') return;
    const change = this.reports.desired(data);
    if (change) this.applyDesired(change.d, change.desired, change.v);
  }

  /**
   * A device's newer desired state to the hub: what it has not reported yet, or, while a command of
   * the device is held, in flight, or answered and not yet followed by a report of the device
   * (HubCommands.busyWith), the whole desired map in place of what is held. The reported state then
   * is the one before that command: a lock unlocking, told to lock again, got nothing (locked was
   * still reported) and stayed unlocked; a key removed while its `set` was held was still sent
   * (reviews "desired", diff19).
   */
  private applyDesired(deviceId: string, desired: Attrs, version: number): void {
    const table = this.commandTable();
    const busy = table.busyWith(deviceId);
    const delta = this.reports.newerDesired(deviceId, desired, version, busy);
    if (delta) table.own(deviceId, delta, this.deps.idleMs, busy);
  }

  /**
   * Desired changes a full mailbox could not queue (hub-overflow.ts): the store holds them, so they
   * are read back once for all, and each device whose stored version is newer than the cache's gets
   * its delta. A store that cannot be read closes the session: the hub's next welcome carries them.
   * `closeOnFailure` false (the node back on the bus, where changes may have been missed or not):
   * a failed read is said and the session stays (closing every hub of a node at each NATS
   * reconnect while Redis was slow or away: review diff19).
   */
  private async sendStoredDesired(closeOnFailure: boolean): Promise<void> {
    if (this.state !== 'online') return; // closing: the hub's next welcome carries the changes
    let shadow: HubShadow;
    try {
      shadow = await this.deps.shadows.load(this.hubId);
    } catch (err) {
      if (!closeOnFailure) return void this.deps.openFailures?.write('desired', { err, hubId: this.hubId }, 'desired state not read back after the bus came back: the hub gets changes made meanwhile at its next welcome');
      this.log.warn({ err }, 'desired state refused by a full mailbox could not be read back');
      return this.closeForOutage(err, 'the server cannot read the desired state now, reconnect later');
    }
    if (this.state !== 'online') return;
    for (const id in shadow) {
      const device = shadow[id]!;
      if (device.desiredVersion === 0) continue;
      this.applyDesired(id, device.desired, device.desiredVersion);
    }
  }

  /** A takeover notice a stopped session can no longer act on: a command after it is the new session's too. */
  private noteTakeover(data: Uint8Array): boolean {
    const notice = decodeValue(data);
    if (isPlainObject(notice) && typeof notice.epoch === 'number' && notice.epoch > this.epoch) this.takenOver = true;
    return this.takenOver === true;
  }

  private onTakeover(data: Uint8Array): void {
    if (this.noteTakeover(data) && this.state !== 'closed') this.closeWith(CloseCode.takeover, 'session_taken_over');
  }

  /**
   * The operator's order: a disabled or deleted hub is closed for good (4006, it must not come
   * back until re-enabled); a moved one is told to reconnect at once, to a session of its new home.
   */
  private onCloseOrder(data: Uint8Array): void {
    const msg = decodeValue(data);
    const e = isPlainObject(msg) ? msg.e : undefined;
    if (e === 'hub_disabled' || e === 'hub_moved') this.obey(e);
  }

  private obey(e: 'hub_disabled' | 'hub_moved'): void {
    if (e === 'hub_disabled') return this.closeWith(CloseCode.hubDisabled, 'hub_disabled');
    if (this.state === 'online') this.send({ t: FrameType.reconnect, after: Math.floor(Math.random() * 1_000), e: 'hub_moved' });
    this.closeWith(CloseCode.moved, 'hub_moved');
  }

  private onTimerTag(tag: number): void | Promise<void> {
    if (tag === HELLO_TIMER) {
      this.timer = null;
      // a hub that offered only another version is told so by the close's reason (PROTOCOL.md §2.2:
      // it backs off long); a 4002 hello_timeout said nothing of the version (review "compat")
      if (this.state !== 'connecting') return;
      if (this.link.versionRefused) this.closeWith(CloseCode.protocolError, 'unsupported_version');
      else this.closeWith(CloseCode.helloTimeout, 'hello_timeout');
    } else if (tag === IDLE_TIMER) {
      this.timer = null;
      const silent = monotonicMs() - this.lastSeen;
      if (this.state !== 'online') return;
      if (silent >= this.deps.idleMs) this.closeWith(CloseCode.heartbeatTimeout, 'heartbeat_timeout');
      // its commands would time out until the kernel's buffers and uWS's filled (megabytes: hours at a few a minute)
      else if (this.link.readingStalled?.()) this.closeWith(CloseCode.backpressure, 'not_reading');
      else {
        this.armIdle(this.deps.idleMs - silent);
        return this.verifyHolder();
      }
    } else if (tag === DRAIN_TIMER) {
      this.timer = null;
      this.closeWhenAnswered(true);
    } else {
      this.commands?.expire(tag);
      this.closeWhenAnswered();
    }
  }

  /**
   * Once per idle period: a holder that missed the takeover message (a partition, a lost publish)
   * sees another node or a newer epoch in the directory and closes. An unreachable directory or
   * an entry hidden by lapsed liveness changes nothing: the session stays up.
   */
  private async verifyHolder(): Promise<void> {
    let loc;
    try {
      loc = await this.deps.directory.lookup(this.hubId);
    } catch {
      return;
    }
    if (loc !== null && this.state === 'online' && (loc.node !== this.deps.nodeId || loc.epoch !== this.epoch)) {
      this.log.info({ holder: loc.node, epoch: loc.epoch, mine: this.epoch }, 'stale session: another holder in the directory');
      this.closeWith(CloseCode.takeover, 'session_taken_over');
    }
  }

  /** One wheel entry per session, re-armed once per idle period rather than per frame. */
  private armIdle(delay = this.deps.idleMs): void {
    this.timer = this.deps.system.timers.schedule(delay, this, IDLE_TIMER, slackOf(this.deps.idleMs));
  }

  /** Node shutdown (or a shed, `why`): tells the hub to reconnect after `afterMs` (spread by the caller), then closes. */
  shutdown(afterMs: number, resultsMs = DRAIN_RESULTS_MS, why: 'draining' | 'rebalancing' = 'draining'): void {
    if (this.state === 'closed' || this.state === 'draining') return;
    this.send({ t: FrameType.reconnect, after: afterMs, e: why });
    this.drain();
    // commands the hub runs now: their results may come for `resultsMs` more, where closing at
    // once told each caller `session_closed` though the hub ran it (a hostile review, 2026-12-06)
    if (resultsMs > 0 && (this.commands?.callersWaiting ?? 0) > 0) {
      this.closeReason = AWAITING_RESULTS[why];
      this.deps.system.timers.cancel(this.timer);
      this.timer = this.deps.system.timers.schedule(resultsMs, this, DRAIN_TIMER, 0);
      return;
    }
    this.closeReason = why;
    this.link.close(CloseCode.goingAway, why);
  }

  /** A frame after the session stopped: only the results a drain waits for are taken. */
  private whileDraining(frame: HubToServerFrame): void {
    if (awaiting(this.closeReason) === null) return;
    if (frame.t === FrameType.result) this.commands?.result(frame);
    else if (frame.t === FrameType.error) this.commands?.hubRefused(frame);
    this.closeWhenAnswered();
  }

  /** Ends a drain's wait once no caller waits for the hub (or at its deadline: `force`). */
  private closeWhenAnswered(force = false): void {
    const why = awaiting(this.closeReason);
    if (why === null || (!force && (this.commands?.callersWaiting ?? 0) > 0)) return;
    this.deps.system.timers.cancel(this.timer);
    this.timer = null;
    this.closeReason = why;
    this.link.close(CloseCode.goingAway, why);
  }

  /** Sends bye (for a reason a hub should know) and closes; cleanup follows on `closed`. */
  closeWith(code: number, reason: ErrorCode | 'bye'): void {
    if (this.state === 'closed' || this.state === 'draining') return;
    this.closeReason = reason;
    this.drain();
    if (reason !== 'bye') this.send({ t: FrameType.bye, e: reason });
    this.link.close(code, reason);
  }

  /**
   * Stops being a responder at once: until the socket's close completes, a new command goes to
   * the session that took over, or fails fast as `hub_offline`, instead of being answered
   * `session_closed` by this one. Commands already sent to the hub are answered when it closes.
   */
  private drain(): void {
    this.state = 'draining';
    this.subscription?.unsubscribe();
    this.subscription = null;
  }

  private async onClosed(code: number): Promise<void> {
    if (this.state === 'closed') return;
    const wasOnline = this.epoch !== 0;
    this.state = 'closed';
    this.release();
    this.deps.metrics?.sessionClosed(String(code));
    // `online: false`: closed before its welcome (hello timeout, refused hello, lost race)
    const reason = this.closeReason ?? (code === 1000 ? 'hub_closed' : 'connection_lost');
    this.deps.system.log.info({ hubId: this.hubId, homeId: this.homeId, code, reason, durationMs: monotonicMs() - this.since, online: wasOnline }, 'hub session closed');
    if (wasOnline) {
      // no `offline` for a hub online elsewhere: a session taken over without hearing so (its
      // socket closed after the hub's new session began) would tell apps and rules it went away
      let current = code !== CloseCode.takeover;
      try {
        current = (await this.deps.directory.release(this.hubId, this.deps.nodeId, this.epoch)) && current;
      } finally {
        if (current) this.deps.publishEvent({ op: 'evt', kind: 'offline', home: this.homeId, hub: this.hubId, reason: String(code), ts: Date.now() }, this.epoch);
        this.finished();
      }
    } else this.finished();
    this.stop('closed');
  }

  /** Resolves once the session is closed and has released its directory entry (node shutdown waits). */
  whenClosed(): Promise<void> {
    if (this.waiters === CLOSED) return Promise.resolve();
    return new Promise<void>((resolve) => (this.waiters ??= []).push(resolve));
  }

  private finished(): void {
    const waiters = this.waiters;
    this.waiters = CLOSED;
    if (waiters) for (const resolve of waiters) resolve();
  }

  /** Drops the subscription, timers and pending commands (answered with session_closed). */
  private release(): void {
    this.subscription?.unsubscribe();
    this.subscription = null;
    this.deps.system.timers.cancel(this.timer);
    this.timer = null;
    // closed by the drain or a shed: its hub was told to reconnect to another node
    const why = awaiting(this.closeReason) ?? this.closeReason;
    this.commands?.closeAll(why === 'draining' || why === 'rebalancing');
    this.commands = null;
    this.reports.release();
    this.deps.sessions.release(this);
  }

  protected onStop(reason: string): void {
    if (this.state !== 'closed') {
      this.log.error({ reason }, 'hub session stopped by its supervisor');
      this.release();
      this.state = 'closed';
      this.send({ t: FrameType.bye, e: 'internal' });
      this.link.close(CloseCode.internal, 'internal');
      if (this.epoch !== 0) {
        // as a close says it: apps and rules were told nothing, and showed the hub online while
        // the directory said offline (review "presence"); a release that failed is said all the same
        const epoch = this.epoch;
        const offline = () => this.deps.publishEvent({ op: 'evt', kind: 'offline', home: this.homeId, hub: this.hubId, reason: String(CloseCode.internal), ts: Date.now() }, epoch);
        void this.deps.directory.release(this.hubId, this.deps.nodeId, epoch).then((current) => current && offline(), offline);
      }
      this.finished();
    }
  }

  /** A full mailbox (hub-overflow.ts): a takeover notice is acted on at once, the frames queued before it then not handled. */
  protected override overflow(msg: HubMessage, queued: HubMessage[]): boolean {
    if (msg.type === 'takeover') {
      this.onTakeover(msg.data);
      return true;
    }
    if (keepPastBound(msg, queued, this)) return true;
    this.refused(msg);
    return false;
  }

  protected override refused(msg: HubMessage): void {
    if (msg.type === 'takeover' && this.stopped) this.noteTakeover(msg.data);
    if (msg.type === 'command') {
      if (this.stopped) this.answerClosed(msg.request, 'the session is closed');
      else reply(msg.request, { ok: false, e: 'busy', msg: 'the hub session is busy' });
    }
    else if (msg.type === 'frame') this.heldBack('busy', 'frame refused: the session is busy, resend it', msg.frame);
  }

  /** Sends one frame to the hub: false when the socket dropped it (closed or backpressure limit). */
  send(frame: ServerToHubFrame): boolean {
    return this.sendEncoded(frame.t, encode(frame));
  }

  sendEncoded(t: ServerToHubFrame['t'], bytes: Uint8Array): boolean {
    this.deps.metrics?.frameOut(t);
    return this.link.send(bytes);
  }

  sendError(code: ErrorCode, msg: string, ref?: number, field?: string): void {
    this.send(errorFrameFor(code, msg, ref, field));
  }
}

/** The frames a queued frame message stands for: the heartbeats folded into it, or the reports `from`…`s` absorbed. */
function framesIn(msg: { frame: HubToServerFrame; from?: number; beats?: number }): number {
  if (msg.beats !== undefined) return msg.beats;
  return msg.from !== undefined && msg.frame.t === FrameType.report ? msg.frame.s - msg.from + 1 : 1;
}

function seqOf(frame: HubToServerFrame): number | undefined {
  return 's' in frame ? frame.s : undefined;
}

