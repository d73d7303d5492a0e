import type { AppEventMessage } from '../../proto/app.js';
import { CloseCode, type ErrorCode } from '../../proto/errors.js';
import {
  FrameType,
  PROTOCOL_VERSION,
  type Attrs,
  type CommandFrame,
  type DevicesFrame,
  type EventFrame,
  type HelloFrame,
  type HubToServerFrame,
  type ReportFrame,
  type ResultFrame,
  type ServerToHubFrame,
} from '../../proto/frames.js';
import { hubVerbOf, subjects, type CommandReply } from '../../proto/subjects.js';
import type { Bus, BusMessage, BusSubscription } from '../ports/bus/bus.js';
import type { Directory } from '../ports/directory/directory.js';
import { emptyDevice, hubDelta, mergeAttrs, newShadow, type CursorListener, type HubShadow, type ShadowStore } from '../ports/shadow-store/shadow-store.js';
import { TierError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { decodeValue, encode, encodeBus, errorFrameFor } from '../protocol/codec.js';
import { decodeCommandRequest, encodeCommandReply } from './command-wire.js';
import { Actor, type ActorSystem } from './actor.js';
import { checkReport, DEFAULT_HUB_LIMITS, shadowSize, type HubLimits } from './hub-limits.js';
import type { Interner } from './intern.js';
import type { SessionIndex } from './session-index.js';
import type { TimerHandle, TimerTarget } from './timer-wheel.js';

/** The socket of a hub as the actor sees it; the gateway implements it over uWS. */
export interface HubLink {
  /** Sends one binary frame; false when the socket dropped it (closed or backpressure limit). */
  send(bytes: Uint8Array): boolean;
  /** Closes the socket; the gateway then tells the actor `closed`. */
  close(code: number, reason: string): void;
}

/** What all hub sessions of a node share. */
export interface HubSessionDeps {
  readonly system: ActorSystem;
  readonly bus: Bus;
  readonly directory: Directory;
  readonly shadows: ShadowStore;
  readonly nodeId: string;
  readonly heartbeatMs: number;
  readonly idleMs: number;
  readonly helloTimeoutMs: number;
  readonly maxFrameBytes: number;
  readonly ratePerSec: number;
  readonly rateBurst: number;
  /** bounds on what one hub may make the node hold (devices, attributes, bytes, commands) */
  readonly limits?: HubLimits;
  /** publishes an event in the shape apps receive it (see AppEventMessage) */
  readonly publishEvent: (event: AppEventMessage) => void;
  /** the node's index of live sessions: a session claims its hub there when online, releases it when closed */
  readonly sessions: SessionIndex<HubSession>;
  readonly metrics?: HubSessionMetrics;
  /** node-wide copies of strings every hub repeats (device kinds, attribute values) */
  readonly interner?: Interner;
}

export interface HubSessionMetrics {
  frameIn(type: number): void;
  commandDone(outcome: 'ok' | 'failed' | 'timeout' | 'closed'): void;
  sessionClosed(reason: string): void;
}

export type SessionState = 'connecting' | 'online' | 'draining' | 'closed';

export type HubMessage =
  /** `from`: first sequence number of a report that absorbed later ones while the mailbox was full */
  | { type: 'frame'; frame: HubToServerFrame; from?: number }
  /** a frame the gateway could not accept (validation): consumed in sequence, or failing its command */
  | { type: 'refused'; error: TierError; seq?: number; commandId?: number }
  | { type: 'command'; request: BusMessage }
  | { type: 'desired'; data: Uint8Array }
  | { type: 'takeover'; data: Uint8Array }
  /** a newer session of this hub on this node went online */
  | { type: 'superseded' }
  | { type: 'timer'; tag: number }
  | { type: 'closed'; code: number };

/** @default 10_000 (ms): window in which rate-limit refusals are counted towards closing */
const VIOLATION_WINDOW_MS = 10_000;
const HELLO_TIMER = -1;
const IDLE_TIMER = -2;

interface PendingCommand {
  /** null for commands the session sent on its own (desired deltas) */
  request: BusMessage | null;
  timer: TimerHandle;
}

/**
 * One connected hub: handshake (hello → welcome), acknowledgement and de-duplication of reports
 * by sequence number, the shadow cache, commands as RPCs with correlation ids and timeouts,
 * heartbeat and idle enforcement, per-hub rate limit. Addressed on the bus as `hub.<hubId>.*`
 * while it holds the hub.
 */
export class HubSession extends Actor<HubMessage> implements TimerTarget, CursorListener {
  state: SessionState = 'connecting';
  epoch = 0;
  private shadow: HubShadow = newShadow();
  /** devices in `shadow`, and the estimated bytes of its reported side (see HubLimits) */
  private deviceCount = 0;
  private shadowBytes = 0;
  private boot = '';
  /** last sequence number accepted (-1: none for this boot); its writes may still be in flight */
  private lastSeq = -1;
  /** last sequence number acknowledged to the hub: stored */
  private ackedSeq = -1;
  /** when the hub's last heartbeat arrived: one per second is free of the rate budget */
  private lastHeartbeat = 0;
  /** a sequenced frame was accepted in this session: from now on gaps are refused */
  private sequenced = false;
  private lastSeen = Date.now();
  private tokens: number;
  private tokensAt = Date.now();
  /** frames refused by the rate limit in the current window, and when that window began */
  private violations = 0;
  private violationsSince = 0;
  private nextCommandId = 0;
  private pending: Map<number, PendingCommand> | null = null;
  private timer: TimerHandle | null;
  private subscription: BusSubscription | null = null;
  /** closed and released; `waiters` exists only while somebody waits for that */
  private done = false;
  private waiters: Array<() => void> | null = null;

  constructor(
    readonly hubId: string,
    readonly homeId: string,
    private readonly link: HubLink,
    private readonly deps: HubSessionDeps,
  ) {
    super(`hub:${hubId}`, deps.system);
    this.tokens = deps.rateBurst;
    this.timer = deps.system.timers.schedule(deps.helloTimeoutMs, this, HELLO_TIMER);
  }

  /** A child logger made on use: logging is rare and a cached one would cost every session memory. */
  private get log(): Logger {
    return this.deps.system.log.child({ hubId: this.hubId });
  }

  /** Activity that is not a frame (a WebSocket ping): keeps the session from the idle timeout. */
  touch(): void {
    this.lastSeen = Date.now();
  }

  private get limits(): HubLimits {
    return this.deps.limits ?? DEFAULT_HUB_LIMITS;
  }

  /** Entry point of the gateway for every decoded frame: rate limit, then the mailbox. */
  receiveFrame(frame: HubToServerFrame): void {
    this.lastSeen = Date.now();
    if (!this.free(frame) && !this.withinRate()) {
      const now = Date.now();
      if (now - this.violationsSince > VIOLATION_WINDOW_MS) {
        this.violations = 0;
        this.violationsSince = now;
      }
      // only persistent excess closes: more refusals within one window than the burst allows
      if (++this.violations > this.deps.rateBurst) {
        this.closeWith(CloseCode.rateLimited, 'rate_limited');
        return;
      }
      this.sendError('rate_limited', 'slow down: frame refused, resend it later', seqOf(frame));
      return;
    }
    this.tell({ type: 'frame', frame });
  }

  /**
   * Frames that do not spend the rate budget: answers to the server's own commands (unknown ids
   * are dropped at once) and one heartbeat per second. Otherwise a hub answering a burst of
   * commands would be refused, and its answers lost.
   */
  private free(frame: HubToServerFrame): boolean {
    if (frame.t === FrameType.result) return true;
    if (frame.t !== FrameType.heartbeat) return false;
    const now = this.lastSeen;
    if (now - this.lastHeartbeat < 1_000) return false;
    this.lastHeartbeat = now;
    return true;
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
        this.deps.metrics?.frameIn(msg.frame.t);
        try {
          const done = this.onFrame(msg.frame, msg.from);
          return done === undefined ? undefined : done.catch((err: unknown) => this.frameFailed(err));
        } catch (err) {
          return this.frameFailed(err);
        }
      }
      case 'refused':
        return this.onRefused(msg.error, msg.seq, msg.commandId);
      case 'command':
        return this.onCommand(msg.request);
      case 'desired':
        return this.onDesired(msg.data);
      case 'takeover':
        return this.onTakeover(msg.data);
      case 'superseded':
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
   * was not acknowledged. The error still reaches the supervisor, which counts it.
   */
  private frameFailed(err: unknown): never {
    this.closeWith(CloseCode.internal, 'internal');
    throw err;
  }

  private onFrame(frame: HubToServerFrame, from?: number): void | Promise<void> {
    if (this.state === 'connecting') {
      if (frame.t === FrameType.hello) return this.onHello(frame);
      this.sendError('hello_required', 'send hello first');
      this.closeWith(CloseCode.protocolError, 'hello_required');
      return;
    }
    if (this.state !== 'online') return;
    switch (frame.t) {
      case FrameType.heartbeat:
        this.send({ t: FrameType.heartbeat, ts: Date.now() });
        return;
      case FrameType.report:
        return this.onReport(frame, from);
      case FrameType.event:
        return this.onEvent(frame);
      case FrameType.devices:
        return this.onDevices(frame);
      case FrameType.result:
        return this.onResult(frame);
      case FrameType.error:
        this.log.warn({ code: frame.e, msg: frame.msg, ref: frame.ref }, 'hub reported an error');
        return;
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
    try {
      await this.open(hello);
    } catch (err) {
      // the directory or the shadow store is unreachable: the hub retries with backoff
      this.log.warn({ err }, 'hub session could not open');
      if (this.epoch !== 0) this.deps.directory.release(this.hubId, this.deps.nodeId, this.epoch).catch(() => {});
      this.epoch = 0;
      this.sendError('internal', 'the server cannot open the session now, retry later');
      // spread over 1-5 s: every hub of a node hits the same outage, they should not return at once
      this.send({ t: FrameType.reconnect, after: 1_000 + Math.floor(Math.random() * 4_000), e: 'internal' });
      this.closeWith(CloseCode.internal, 'internal');
    }
  }

  private async open(hello: HelloFrame): Promise<void> {
    const { bus, directory, shadows, nodeId } = this.deps;
    const location = await directory.claim(this.hubId, nodeId);
    this.epoch = location.epoch;
    // subscribed (and confirmed by the server) before announcing: a later claim's takeover notice
    // cannot pass us by; commands arriving meanwhile wait in the mailbox until the session is online
    this.subscription = bus.subscribe(subjects.hubAll(this.hubId), (m) => this.onBusMessage(m));
    await bus.flush();
    // the previous holder, here or on another node, closes when it sees a larger epoch
    bus.publish(subjects.hubTakeover(this.hubId), encodeBus({ epoch: this.epoch, node: nodeId }));
    const [shadow, cursor] = await Promise.all([shadows.load(this.hubId), shadows.loadCursor(this.hubId)]);
    // a connection that raced this one and claimed later has won: this one gives way
    if (this.state === 'connecting' && !(await directory.holds(this.hubId, nodeId, this.epoch))) {
      this.closeWith(CloseCode.takeover, 'session_taken_over');
    }
    if (this.stopped || this.state !== 'connecting') return; // cleanup follows on `closed`
    this.shadow = shadow;
    this.countShadow();
    this.boot = hello.b;
    // -1: nothing accepted for this boot yet, so a first frame with `s: 0` is new, not a duplicate
    this.lastSeq = cursor !== null && cursor.boot === hello.b ? cursor.seq : -1;
    this.ackedSeq = this.lastSeq;
    this.deps.sessions.claim(this)?.tell({ type: 'superseded' });
    this.state = 'online';
    this.send({
      t: FrameType.welcome,
      v: PROTOCOL_VERSION,
      ep: this.epoch,
      hb: this.deps.heartbeatMs,
      idle: this.deps.idleMs,
      max: this.deps.maxFrameBytes,
      ts: Date.now(),
      s: Math.max(0, this.lastSeq),
      dl: hubDelta(this.shadow),
    });
    this.armIdle();
    this.deps.publishEvent({ op: 'evt', kind: 'online', home: this.homeId, hub: this.hubId, node: nodeId, ts: Date.now() });
    this.log.debug({ epoch: this.epoch, fw: hello.fw }, 'hub online');
  }

  /** Applies a sequenced frame once: true when new, false when a duplicate or out of order. */
  private accept(seq: number, from = seq): boolean {
    if (seq <= this.lastSeq) {
      // a resend: acknowledged again once stored (now, or when its batch is written)
      if (seq <= this.ackedSeq) this.send({ t: FrameType.ack, s: this.ackedSeq });
      return false;
    }
    // the first sequenced frame of a session may skip ahead: a node crash can lose the newest
    // cursor writes (the batch window) of frames the hub never saw acknowledged; then no gaps
    if (this.sequenced && from > this.lastSeq + 1) {
      this.sendError('sequence_gap', `expected sequence ${this.lastSeq + 1}, resend from there`, this.lastSeq + 1);
      return false;
    }
    if (!this.sequenced) {
      // from here on no gaps: should applying this frame fail, a later frame's ack cannot cover it
      this.sequenced = true;
      this.lastSeq = from - 1;
    }
    return true;
  }

  /**
   * Consumes a sequence number: the cursor is queued with the frame's writes, and the hub gets
   * its (cumulative) ack when the store says they are durable (`cursorStored`), not before.
   */
  private acknowledge(seq: number): void {
    this.lastSeq = seq;
    this.sequenced = true;
    this.deps.shadows.writeCursor(this.hubId, { boot: this.boot, seq }, this.epoch, this);
  }

  /** The store wrote the cursor `seq` and everything queued before it: acknowledge up to it. */
  cursorStored(_hubId: string, seq: number): void {
    if (seq <= this.ackedSeq || this.state !== 'online') return;
    this.ackedSeq = seq;
    this.send({ t: FrameType.ack, s: seq });
  }

  /**
   * A frame refused by validation or a limit. A sequenced one is consumed (its number is
   * acknowledged with the next ack, nothing of it stored): a permanent refusal would be refused
   * again, and the hub must not stall on it. A refused result fails its command now.
   */
  private onRefused(error: TierError, seq: number | undefined, commandId: number | undefined): void {
    if (this.state !== 'online') return;
    if (seq !== undefined && this.accept(seq)) this.acknowledge(seq);
    if (commandId !== undefined) this.settleCommand(commandId, { ok: false, e: 'command_failed', msg: `the hub's result was refused: ${error.message}` });
  }

  /** Counts devices and reported bytes of a loaded shadow (see HubLimits). */
  private countShadow(): void {
    const size = shadowSize(this.shadow);
    this.deviceCount = size.devices;
    this.shadowBytes = size.bytes;
  }

  private onReport(frame: ReportFrame, from?: number): void {
    // a coalesced report spans from..s; re-applying its older part is harmless (same values)
    if (!this.accept(frame.s, from)) return;
    const bytes = checkReport(frame, this.shadow, this.deviceCount, this.shadowBytes, this.limits);
    if (typeof bytes !== 'number') {
      // refused whole and consumed: nothing of it is stored, the next ack covers its number
      this.sendError(bytes.code, bytes.message, frame.s, bytes.field);
      this.acknowledge(frame.s);
      return;
    }
    this.shadowBytes = bytes;
    const now = Date.now();
    for (const deviceId in frame.r) {
      let device = this.shadow[deviceId];
      if (device === undefined) {
        device = this.shadow[deviceId] = emptyDevice();
        this.deviceCount++;
      }
      const attrs = this.deps.interner?.attrs(frame.r[deviceId]!) ?? frame.r[deviceId]!;
      if (!mergeAttrs(device.reported, attrs)) continue;
      device.reportedVersion++;
      device.reportedAt = now;
      this.deps.shadows.writeReported(this.hubId, deviceId, device, this.epoch);
      this.deps.publishEvent({
        op: 'evt',
        kind: 'state',
        home: this.homeId,
        hub: this.hubId,
        device: deviceId,
        attrs,
        version: device.reportedVersion,
        ts: frame.ts ?? now,
      });
    }
    this.acknowledge(frame.s);
  }

  private onEvent(frame: EventFrame): void {
    if (!this.accept(frame.s)) return;
    this.deps.publishEvent({
      op: 'evt',
      kind: 'event',
      home: this.homeId,
      hub: this.hubId,
      device: frame.d,
      event: frame.e,
      params: frame.p,
      ts: frame.ts ?? Date.now(),
    });
    this.acknowledge(frame.s);
  }

  private async onDevices(frame: DevicesFrame): Promise<void> {
    if (!this.accept(frame.s)) return;
    const joined = frame.j ?? [];
    const left = frame.l ?? [];
    const full = frame.f === true;
    const keep = full ? new Set(joined.map((d) => d.d)) : null;
    const removed = [...left];
    if (keep) for (const id in this.shadow) if (!keep.has(id)) removed.push(id);
    const gone = new Set(removed.filter((id) => this.shadow[id] !== undefined));
    let devices = this.deviceCount - gone.size;
    for (const d of joined) if (this.shadow[d.d] === undefined || gone.has(d.d)) devices++;
    if (devices > this.limits.devices) {
      this.sendError('limit_exceeded', `more than ${this.limits.devices} devices on this hub`, frame.s, 'j');
      this.acknowledge(frame.s);
      return;
    }
    await this.deps.shadows.writeDevices(this.hubId, joined, left, full);
    for (const id of removed) delete this.shadow[id];
    for (const d of joined) {
      const device = (this.shadow[d.d] ??= emptyDevice());
      device.kind = this.deps.interner?.intern(d.k) ?? d.k;
      if (d.m !== undefined) device.model = this.deps.interner?.intern(d.m) ?? d.m;
    }
    this.countShadow();
    this.deps.publishEvent({ op: 'evt', kind: 'devices', home: this.homeId, hub: this.hubId, joined, left: removed, ts: Date.now() });
    this.acknowledge(frame.s);
  }

  private onBusMessage(msg: BusMessage): void {
    const verb = hubVerbOf(msg.subject);
    if (verb === 'cmd') {
      if (!this.tell({ type: 'command', request: msg }) && this.stopped) reply(msg, { ok: false, e: 'session_closed' });
    } else if (verb === 'desired') this.tell({ type: 'desired', data: msg.data });
    else if (verb === 'takeover') this.tell({ type: 'takeover', data: msg.data });
  }

  private onCommand(request: BusMessage): void {
    if (this.state !== 'online') {
      reply(request, { ok: false, e: 'session_closed', msg: 'the session is closing' });
      return;
    }
    let cmd;
    try {
      cmd = decodeCommandRequest(request.data);
    } catch (err) {
      const e = err instanceof TierError ? err : new TierError('invalid_field');
      reply(request, { ok: false, e: e.code, msg: e.message });
      return;
    }
    if (this.deviceCount > 0 && this.shadow[cmd.d] === undefined) {
      reply(request, { ok: false, e: 'unknown_device', msg: `hub ${this.hubId} has no device ${cmd.d}` });
      return;
    }
    if ((this.pending?.size ?? 0) >= this.limits.commandsInFlight) {
      reply(request, { ok: false, e: 'busy', msg: `${this.limits.commandsInFlight} commands to hub ${this.hubId} are waiting for answers` });
      return;
    }
    this.startCommand(cmd.d, cmd.m, cmd.p, cmd.to, request);
  }

  private startCommand(deviceId: string, method: string, params: Record<string, unknown>, timeoutMs: number, request: BusMessage | null): void {
    const id = (this.nextCommandId = (this.nextCommandId % 0x7fffffff) + 1);
    const frame: CommandFrame = { t: FrameType.command, id, d: deviceId, m: method, p: params, to: timeoutMs };
    if (!this.send(frame)) {
      if (request) reply(request, { ok: false, e: 'session_closed', msg: 'the hub socket refused the frame' });
      return;
    }
    const timer = this.deps.system.timers.schedule(timeoutMs, this, id);
    (this.pending ??= new Map()).set(id, { request, timer });
  }

  private onResult(frame: ResultFrame): void {
    if (frame.ok) this.settleCommand(frame.id, { ok: true, r: frame.r });
    else {
      // the hub's own code is passed on as `hub`: the caller's credentials or the server are not at
      // fault when a hub answers unauthorized or internal; only unknown_device keeps its meaning
      const code: ErrorCode = frame.e === 'unknown_device' ? 'unknown_device' : 'command_failed';
      this.settleCommand(frame.id, { ok: false, e: code, msg: frame.msg ?? `the hub answered ${frame.e ?? 'failure'}`, hub: frame.e });
    }
  }

  /** Answers a pending command; a late answer after its timeout is dropped (answered already). */
  private settleCommand(id: number, answer: CommandReply): void {
    const p = this.pending?.get(id);
    if (!p) return;
    this.pending!.delete(id);
    this.deps.system.timers.cancel(p.timer);
    this.deps.metrics?.commandDone(answer.ok ? 'ok' : 'failed');
    if (p.request) reply(p.request, answer);
  }

  private onDesired(data: Uint8Array): void {
    if (this.state !== 'online') return;
    const msg = decodeValue(data) as { d?: unknown; desired?: unknown; v?: unknown };
    if (typeof msg.d !== 'string' || typeof msg.desired !== 'object' || msg.desired === null || typeof msg.v !== 'number') return;
    let device = this.shadow[msg.d];
    if (device === undefined) {
      // bounded where desired state is set (the API refuses devices beyond the hub's limit)
      device = this.shadow[msg.d] = emptyDevice();
      this.deviceCount++;
    }
    if (msg.v <= device.desiredVersion) return;
    device.desired = msg.desired as Attrs;
    device.desiredVersion = msg.v;
    const delta = hubDelta({ [msg.d]: device })[msg.d];
    if (delta) this.startCommand(msg.d, 'set', delta, this.deps.idleMs, null);
  }

  private onTakeover(data: Uint8Array): void {
    const msg = decodeValue(data) as { epoch?: unknown };
    if (typeof msg.epoch === 'number' && msg.epoch > this.epoch && this.state !== 'closed') {
      this.closeWith(CloseCode.takeover, 'session_taken_over');
    }
  }

  private onTimerTag(tag: number): void | Promise<void> {
    if (tag === HELLO_TIMER) {
      this.timer = null;
      if (this.state === 'connecting') this.closeWith(CloseCode.helloTimeout, 'hello_timeout');
    } else if (tag === IDLE_TIMER) {
      this.timer = null;
      const silent = Date.now() - this.lastSeen;
      if (this.state !== 'online') return;
      if (silent >= this.deps.idleMs) this.closeWith(CloseCode.heartbeatTimeout, 'heartbeat_timeout');
      else {
        this.armIdle(this.deps.idleMs - silent);
        return this.verifyHolder();
      }
    } else {
      const p = this.pending?.get(tag);
      if (!p) return;
      this.pending!.delete(tag);
      this.deps.metrics?.commandDone('timeout');
      if (p.request) reply(p.request, { ok: false, e: 'command_timeout', msg: 'the hub did not answer in time' });
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
    this.timer = this.deps.system.timers.schedule(delay, this, IDLE_TIMER);
  }

  /** Node shutdown: tells the hub to reconnect after `afterMs` (spread by the caller), then closes. */
  shutdown(afterMs: number): void {
    if (this.state === 'closed' || this.state === 'draining') return;
    this.send({ t: FrameType.reconnect, after: afterMs, e: 'draining' });
    this.drain();
    this.link.close(CloseCode.goingAway, 'draining');
  }

  /** Sends bye (for a reason a hub should know) and closes; cleanup follows on `closed`. */
  closeWith(code: number, reason: ErrorCode | 'bye'): void {
    if (this.state === 'closed' || this.state === 'draining') return;
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
    if (wasOnline) {
      if (code !== CloseCode.takeover) {
        this.deps.publishEvent({ op: 'evt', kind: 'offline', home: this.homeId, hub: this.hubId, reason: String(code), ts: Date.now() });
      }
      try {
        await this.deps.directory.release(this.hubId, this.deps.nodeId, this.epoch);
      } finally {
        this.finished();
      }
    } else this.finished();
    this.stop('closed');
  }

  /** Resolves once the session is closed and has released its directory entry (node shutdown waits). */
  whenClosed(): Promise<void> {
    if (this.done) return Promise.resolve();
    return new Promise<void>((resolve) => (this.waiters ??= []).push(resolve));
  }

  private finished(): void {
    this.done = true;
    const waiters = this.waiters;
    this.waiters = null;
    if (waiters) for (const resolve of waiters) resolve();
  }

  /** Drops the subscription, timers and pending commands (answered with session_closed). */
  private release(): void {
    this.subscription?.unsubscribe();
    this.subscription = null;
    this.deps.system.timers.cancel(this.timer);
    this.timer = null;
    if (this.pending) {
      for (const p of this.pending.values()) {
        this.deps.system.timers.cancel(p.timer);
        this.deps.metrics?.commandDone('closed');
        if (p.request) reply(p.request, { ok: false, e: 'session_closed', msg: 'the hub disconnected before answering' });
      }
      this.pending = null;
    }
    this.deps.sessions.release(this);
  }

  protected onStop(reason: string): void {
    if (this.state !== 'closed') {
      this.log.error({ reason }, 'hub session stopped by its supervisor');
      this.release();
      this.state = 'closed';
      this.send({ t: FrameType.bye, e: 'internal' });
      this.link.close(CloseCode.internal, 'internal');
      if (this.epoch !== 0) void this.deps.directory.release(this.hubId, this.deps.nodeId, this.epoch).catch(() => {});
      this.finished();
    }
  }

  /**
   * A full mailbox coalesces a report into a queued report just before it, and queues the session's
   * own control messages beyond the bound (they are few: one close, a timer per pending command and
   * one more, one superseded notice), so none is lost; other frames and commands are refused.
   */
  protected override overflow(msg: HubMessage, queued: HubMessage[]): boolean {
    if (msg.type === 'closed' || msg.type === 'timer' || msg.type === 'superseded') {
      queued.push(msg);
      return true;
    }
    const tail = queued[queued.length - 1];
    if (msg.type === 'frame' && msg.frame.t === FrameType.report && tail?.type === 'frame' && tail.frame.t === FrameType.report && msg.frame.s === tail.frame.s + 1) {
      const into = tail.frame.r;
      for (const id in msg.frame.r) into[id] = Object.hasOwn(into, id) ? { ...into[id], ...msg.frame.r[id] } : msg.frame.r[id]!;
      tail.from ??= tail.frame.s;
      tail.frame.s = msg.frame.s;
      return true;
    }
    this.refused(msg);
    return false;
  }

  protected override refused(msg: HubMessage): void {
    if (msg.type === 'command') reply(msg.request, { ok: false, e: this.stopped ? 'session_closed' : 'busy', msg: 'the hub session is busy' });
    else if (msg.type === 'frame') this.sendError('busy', 'frame refused: the session is busy, resend it', seqOf(msg.frame));
  }

  private withinRate(): boolean {
    const now = Date.now();
    const elapsed = now - this.tokensAt;
    if (elapsed > 0) {
      this.tokens = Math.min(this.deps.rateBurst, this.tokens + (elapsed * this.deps.ratePerSec) / 1000);
      this.tokensAt = now;
    }
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  private send(frame: ServerToHubFrame): boolean {
    return this.link.send(encode(frame));
  }

  private sendError(code: ErrorCode, msg: string, ref?: number, field?: string): void {
    this.send(errorFrameFor(code, msg, ref, field));
  }
}

function seqOf(frame: HubToServerFrame): number | undefined {
  return 's' in frame ? frame.s : undefined;
}

function reply(request: BusMessage, answer: CommandReply): void {
  request.respond(encodeCommandReply(answer));
}
