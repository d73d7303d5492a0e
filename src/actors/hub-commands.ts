import type { ErrorCode } from '../../proto/errors.js';
import { clusterNow } from './cluster-clock.js';
import { FrameType, type Attrs, type CommandFrame, type ErrorFrame, type ResultFrame, type ServerToHubFrame } from '../../proto/frames.js';
import type { CommandReply, CommandRequest } from '../../proto/subjects.js';
import type { BusMessage } from '../ports/bus/bus.js';
import type { Logger } from '../log/logger.js';
import { sharedSampledLog, type SampledLog } from '../log/sampler.js';
import { asTierError, TierError } from '../errors.js';
import { attrs, encode, encodeWithin, errorFrameFor, params, paramsFit } from '../protocol/codec.js';
import { inSpan } from '../trace/active-span.js';
import { startActorStep } from '../trace/actor-step.js';
import { endSpan, SpanKind, tracing, type Span } from '../trace/tracing.js';
import { decodeCommandRequest, encodeCommandReply } from './command-wire.js';
import type { HubSessionDeps, SessionState } from './hub-deps.js';
import { setChunks } from './desired-frames.js';
import { DEFAULT_HUB_LIMITS } from './hub-limits.js';
import type { TimerHandle, TimerTarget } from './timer-wheel.js';

/**
 * Failed outcomes, sampled per error code node-wide (one per node's log): 10 lines per code and 10 s,
 * then one summary with the count. A flood of `busy` answers (one home's rules had sent 200,000
 * commands from one event) had been logged line by line on the main thread.
 */
const failedOutcomeLog = (log: Logger): SampledLog => sharedSampledLog(log, 'command outcomes not logged', 'code');

/** What the command table needs of its session; the session routes command-id timer tags to `expire`. */
export interface CommandHost extends TimerTarget {
  readonly hubId: string;
  /** desired deltas held back (see `own`) go out only while it is `online`: none to a closing socket */
  readonly state: SessionState;
  readonly deps: Pick<HubSessionDeps, 'system' | 'metrics' | 'limits' | 'maxFrameBytes'>;
  /** sends an encoded frame of type `t`: false when the socket dropped it (closed, backpressure) */
  sendEncoded(t: ServerToHubFrame['t'], bytes: Uint8Array): boolean;
}

/** What the outcome line says of a command. */
interface CommandInfo {
  device: string;
  method: string;
  /** the caller's request id, when it sent one */
  rid: string | undefined;
  /** performance.now() when it was sent to the hub; 0 when answered before */
  started: number;
  /** the `hub command` span while tracing is on, ended with the answer */
  span?: Span | undefined;
}

interface PendingCommand extends CommandInfo {
  /** null for commands the session sent on its own (desired deltas) */
  request: BusMessage | null;
  timer: TimerHandle;
  /** a `set`'s attributes, the frame's own object (see `unsettled`) */
  set?: Record<string, unknown>;
}

/** A device's desired delta waiting for room to be sent: the `set` parameters, each within a frame. */
interface HeldDelta {
  chunks: Attrs[];
  /** the commands' `to` (ms) */
  timeoutMs: number;
}

/**
 * The commands a session sent to its hub and not yet answered, as RPCs: each has a correlation id
 * unique among them and a timeout on the timer wheel, and is answered exactly once: with the hub's
 * result, `command_timeout`, or `session_closed` when the session closes first.
 */
export class HubCommands {
  private readonly pending = new Map<number, PendingCommand>();
  /** of `pending`, the session's own commands (desired deltas) */
  private ownWaiting = 0;
  /**
   * Desired deltas not sent yet, by device, in the order they came (see `own`). A later delta of a
   * device merges into its held one, so this holds at most the hub's desired state, however many
   * changes come while the hub is slow to answer.
   */
  private readonly held = new Map<string, HeldDelta>();
  /**
   * devices a command was answered for (or timed out) whose hub has not reported since what it set:
   * the attributes still to report, or true for a method (any report settles it); made at the first
   */
  private unsettled: Map<string, Set<string> | true> | undefined;
  /**
   * Started at random, not at 0: a late result the hub carried over from an earlier session (its
   * ids counted from 1 too) then almost never names a command of this one (PROTOCOL.md §7). Below
   * 2^30, a small integer to V8 (a boxed number costs a hub session 16 B more).
   */
  private nextId = Math.floor(Math.random() * 0x3fffffff);

  constructor(private readonly host: CommandHost) {}

  private get deps(): CommandHost['deps'] {
    return this.host.deps;
  }

  /**
   * A request from the bus: forwarded to the hub, or answered at once when malformed, for a device
   * the hub does not have, or `busy` when the hub's limit of commands is pending.
   */
  forward(request: BusMessage, devices: { mayCommand(deviceId: string): boolean }, queued?: number): void {
    const cmd = readCommand(request);
    if (cmd === null) return;
    if (tracing === null) return this.take(cmd, request, devices, undefined);
    // the actor step, child of the caller's `bus request` (a root when it sent none), and in it the
    // hub round trip, `hub command`, which outlives the step: it ends with the hub's answer
    const hubId = this.host.hubId;
    const step = startActorStep(tracing, SpanKind.SERVER, 'hub', 'command', cmd.tp, queued, { 'hubtier.hub_id': hubId });
    const span = tracing.start('hub command', SpanKind.CLIENT, step, { 'hubtier.hub_id': hubId, 'hubtier.device_id': cmd.d, 'hubtier.method': cmd.m });
    inSpan(step, () => this.take(cmd, request, devices, span));
    endSpan(step);
  }

  private take(cmd: CommandRequest, request: BusMessage, devices: { mayCommand(deviceId: string): boolean }, span: Span | undefined): void {
    if (!devices.mayCommand(cmd.d)) {
      this.answer({ device: cmd.d, method: cmd.m, rid: cmd.rid, started: 0, span }, request, { ok: false, e: 'unknown_device', msg: `hub ${this.host.hubId} has no device ${cmd.d}` });
      return;
    }
    const most = this.most;
    if (this.pending.size >= most) {
      this.answer({ device: cmd.d, method: cmd.m, rid: cmd.rid, started: 0, span }, request, { ok: false, e: 'busy', msg: `${most} commands to hub ${this.host.hubId} are waiting for answers` });
      return;
    }
    let to = cmd.to;
    if (cmd.dl !== undefined) {
      // its caller has been told `command_timeout` already, or is told so within `left`: a hub
      // given the whole `to` ran a garage door's `open` seconds after the app heard it timed out
      const left = cmd.dl - clusterNow();
      if (left <= 0) {
        this.answer({ device: cmd.d, method: cmd.m, rid: cmd.rid, started: 0, span }, request, { ok: false, e: 'command_timeout', msg: `the command reached hub ${this.host.hubId}'s node ${Math.round(-left)} ms after its caller's deadline: not sent`, ns: true });
        return;
      }
      if (left < to) to = Math.ceil(left);
    }
    this.start(cmd.d, cmd.m, cmd.p, to, request, cmd.rid, span);
  }

  /**
   * Whether a command of device `deviceId` is held, waits for the hub's answer, or was answered and
   * the hub has not reported the device since: its reported state cached may not be its state.
   */
  busyWith(deviceId: string): boolean {
    if (this.held.has(deviceId) || this.unsettled?.has(deviceId) === true) return true;
    for (const p of this.pending.values()) if (p.device === deviceId) return true;
    return false;
  }

  /**
   * A report taken names these attributes of a device: those a command answered (or timed out) had
   * set are its state again; any attribute settles a command that set none known (a method). Only
   * after the answer: a report before it may be the state before the command (review diff20).
   */
  reported(deviceId: string, patch: Attrs): void {
    const open = this.unsettled?.get(deviceId);
    if (open === undefined) return;
    if (open === true) this.unsettled!.delete(deviceId);
    else {
      for (const key in patch) open.delete(key);
      if (open.size === 0) this.unsettled!.delete(deviceId);
    }
    // a session holds no empty map: most hubs get a command now and then
    if (this.unsettled!.size === 0) this.unsettled = undefined;
  }

  /** Command `p` was answered or timed out: its device is unsettled until a report names what it set. */
  private unsettle(p: PendingCommand): void {
    const unsettled = (this.unsettled ??= new Map());
    const had = unsettled.get(p.device);
    if (p.set === undefined || had === true) unsettled.set(p.device, true);
    else {
      const keys = had ?? new Set<string>();
      for (const k in p.set) keys.add(k);
      unsettled.set(p.device, keys);
    }
  }

  /** Whether command `id` waits for the hub's answer (not answered, not timed out). */
  awaits(id: number): boolean {
    return this.pending.has(id);
  }

  /** Commands waiting for the hub's answers. */
  get waiting(): number {
    return this.pending.size;
  }

  /** Of `waiting`, those a caller waits for (not the session's own desired deltas). */
  get callersWaiting(): number {
    return this.pending.size - this.ownWaiting;
  }

  private get most(): number {
    return (this.deps.limits ?? DEFAULT_HUB_LIMITS).commandsInFlight;
  }

  /**
   * A command of the session's own (a desired delta), which nobody waits for. Each is tracked
   * like a caller's, so the hub's result to it is free of the rate budget (PROTOCOL.md §4, §6: the
   * hub answers every `set`): a delta sent untracked was answered with a "stray" result, and a
   * large desired state after a welcome (hundreds of `set`s) had a hub that answered them all
   * refused `rate_limited` and closed 4004, again at each reconnect. So at most `ownMost` are in
   * flight; the rest are held and go out one by one as earlier commands are answered or time out
   * (`pump`). Sent as several `set`s when one frame of `max` bytes cannot hold the delta (a
   * caller's command is not split: it is one RPC with one answer, see `start`).
   */
  own(deviceId: string, attrs: Attrs, timeoutMs: number, replace = false): void {
    // a delta may be larger than one frame allows: as several `set`s, each within it
    const { chunks, dropped } = setChunks(deviceId, attrs, this.deps.maxFrameBytes, timeoutMs);
    if (dropped.length > 0) this.deps.system.log.warn({ hubId: this.host.hubId, deviceId, dropped, maxFrameBytes: this.deps.maxFrameBytes }, 'desired attributes larger than a frame are not sent');
    const earlier = this.held.get(deviceId);
    if (replace && earlier !== undefined) {
      // the device's whole desired state: what was held for it is replaced where it stands in the
      // queue (review diff19: put last, a device changed often behind a backlog never went out), a
      // key removed since not sent
      if (chunks.length === 0) this.held.delete(deviceId);
      else Object.assign(earlier, { chunks, timeoutMs });
      return this.pump();
    }
    if (chunks.length === 0) return;
    if (earlier === undefined) this.held.set(deviceId, { chunks, timeoutMs });
    else {
      // after the device's held delta, never before it: merged (the later value of an attribute
      // wins, as it would have on the hub) and cut into frames again
      const merged: Attrs = Object.assign(Object.create(null) as Attrs, ...earlier.chunks, ...chunks);
      earlier.chunks = setChunks(deviceId, merged, this.deps.maxFrameBytes, timeoutMs).chunks;
      earlier.timeoutMs = timeoutMs;
    }
    this.pump();
  }

  /**
   * The session's own commands in flight at most: half the hub's limit (at least one), so a
   * caller's command still finds room while a large desired state goes out to a slow hub.
   */
  private get ownMost(): number {
    return Math.max(1, Math.floor(this.most / 2));
  }

  /**
   * Sends held deltas while there is room, in the order their devices came, a device's `set`s in
   * order. Nothing goes to a session that is not online (closing: its hub's next welcome carries
   * the desired state); a frame the socket refuses (closed, backpressure) drops what is held.
   */
  private pump(): void {
    while (this.held.size > 0 && this.ownWaiting < this.ownMost && this.pending.size < this.most) {
      if (this.host.state !== 'online') return;
      const [deviceId, delta] = this.held.entries().next().value as [string, HeldDelta];
      const p = delta.chunks.shift()!;
      if (delta.chunks.length === 0) this.held.delete(deviceId);
      if (!this.start(deviceId, 'set', p, delta.timeoutMs, null)) {
        this.held.clear();
        return;
      }
    }
  }

  private newId(): number {
    return (this.nextId = (this.nextId % 0x7fffffff) + 1);
  }

  /**
   * Sends a command frame; `request` null for the session's own commands (nobody waits for them).
   * A frame over the hub's `max` is answered `frame_too_large` and not sent, whatever path the
   * command came by: a `set` is not split, since its parts would be answered, and could fail, apart.
   * False when the socket refused the frame (the command is answered `session_closed`).
   */
  private start(deviceId: string, method: string, params: Record<string, unknown>, timeoutMs: number, request: BusMessage | null, rid?: string, span?: Span): boolean {
    const id = this.newId();
    const info: CommandInfo = { device: deviceId, method, rid, started: 0, span };
    const bytes = this.encoded({ t: FrameType.command, id, d: deviceId, m: method, p: params, to: timeoutMs }, info, request);
    if (bytes === null) return true;
    if (!this.host.sendEncoded(FrameType.command, bytes)) {
      this.answer(info, request, { ok: false, e: 'session_closed', msg: 'the hub socket refused the frame', ns: true });
      return false;
    }
    const timer = this.deps.system.timers.schedule(timeoutMs, this.host, id);
    this.pending.set(id, { request, timer, device: deviceId, method, rid, started: performance.now(), span, ...(method === 'set' ? { set: params } : {}) });
    if (request === null) this.ownWaiting++;
    return true;
  }

  /**
   * The frame's bytes within the hub's `max` and PROTOCOL.md §1's limits, or null once the command is
   * answered `frame_too_large` or `invalid_field`: the API edges check the limits, this whatever path
   * (an older node, a bus client) the command came by, since a hub may size its buffers by them.
   */
  private encoded(frame: CommandFrame, cmd: CommandInfo, request: BusMessage | null): Buffer | null {
    try {
      if (!paramsFit(frame.p)) params(frame.p, frame.m === 'set' ? 'set' : 'params');
      return encodeWithin(frame, this.deps.maxFrameBytes);
    } catch (err) {
      const e = asTierError(err);
      this.answer(cmd, request, { ok: false, e: e.code, msg: e.message });
      return null;
    }
  }

  result(frame: ResultFrame): void {
    if (frame.ok && frame.r !== undefined && frame.r !== null && this.pending.get(frame.id)?.method === 'set') {
      // a set's result is the device's new attributes (PROTOCOL.md §5): held to Attrs as a report is
      try {
        attrs(frame.r, 'r');
      } catch (err) {
        const e = asTierError(err);
        this.host.sendEncoded(FrameType.error, encode(errorFrameFor(e.code, e.message, frame.id, e.field)));
        this.refused(frame.id, e);
        return;
      }
    }
    if (frame.ok) this.settle(frame.id, { ok: true, r: frame.r });
    else this.settle(frame.id, hubFailure(frame.e, frame.msg));
  }

  /**
   * An error frame of the hub whose `ref` names a waiting command (frames to a hub carry no
   * sequence numbers, so its `ref` can only name a command): the hub refused it, which ends it as a
   * result with `ok: false` would. False when it names none (unknown, answered, timed out).
   */
  hubRefused(frame: ErrorFrame): boolean {
    if (frame.ref === undefined || !this.pending.has(frame.ref)) return false;
    this.settle(frame.ref, hubFailure(frame.e, frame.msg, frame.tmp));
    return true;
  }

  /**
   * A result the gateway refused (validation) fails its command now: `command_failed` as the
   * protocol says, with `hubCode` `invalid_result`, since the hub may have said `ok` and the device
   * acted (a lock locked, shown "failed" with nothing to tell it apart: review "commands").
   */
  refused(id: number, error: TierError): void {
    this.settle(id, { ok: false, e: 'command_failed', hub: 'invalid_result', msg: `the hub's result was refused (the device may have acted): ${error.message}` });
  }

  /** Answers a pending command; a late answer after its timeout is dropped (answered already). */
  private settle(id: number, answer: CommandReply): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.forget(id, p);
    this.unsettle(p);
    this.deps.system.timers.cancel(p.timer);
    this.deps.metrics?.commandDone(answer.ok ? 'ok' : 'failed');
    this.answer(p, p.request, answer);
    this.pump();
  }

  /** The timer of command `id` fired. */
  expire(id: number): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.forget(id, p);
    this.unsettle(p);
    this.deps.metrics?.commandDone('timeout');
    this.answer(p, p.request, { ok: false, e: 'command_timeout', msg: 'the hub did not answer in time' });
    this.pump();
  }

  private forget(id: number, p: PendingCommand): void {
    this.pending.delete(id);
    if (p.request === null) this.ownWaiting--;
  }

  /**
   * The session closes: every pending command is answered `session_closed` (`mv` when `moving`: the
   * drain told the hub to reconnect elsewhere); held deltas are dropped (the next welcome carries them).
   */
  closeAll(moving = false): void {
    this.held.clear();
    this.ownWaiting = 0;
    for (const p of this.pending.values()) {
      this.deps.system.timers.cancel(p.timer);
      this.deps.metrics?.commandDone('closed');
      this.answer(p, p.request, moving ? { ok: false, e: 'session_closed', msg: 'the node moved the hub away before it answered', mv: true } : { ok: false, e: 'session_closed', msg: 'the hub disconnected before answering' });
    }
    this.pending.clear();
  }

  /**
   * Answers the caller, if any, and writes the outcome line: debug for ok (checked before anything
   * is built: commands are a benchmarked path), info for a failure, sampled per code (`failedOutcomeLog`).
   */
  private answer(cmd: CommandInfo, request: BusMessage | null, answer: CommandReply): void {
    if (request) reply(request, answer);
    if (cmd.span) {
      cmd.span.setAttribute('hubtier.outcome', answer.ok ? 'ok' : answer.e);
      endSpan(cmd.span, answer.ok ? undefined : answer.e);
    }
    const log = this.deps.system.log;
    if (answer.ok && !log.isLevelEnabled('debug')) return;
    if (!answer.ok && !(log.isLevelEnabled('info') && failedOutcomeLog(log).admit(answer.e))) return;
    const us = cmd.started === 0 ? undefined : Math.round((performance.now() - cmd.started) * 1000);
    // the trace id links the line to the command's trace (only while tracing is on)
    const fields = { hubId: this.host.hubId, deviceId: cmd.device, method: cmd.method, requestId: cmd.rid, traceId: cmd.span?.spanContext().traceId, us };
    if (answer.ok) log.debug(fields, 'command outcome');
    else log.info({ ...fields, code: answer.e, hubCode: answer.hub, hubTemporary: answer.tmp }, 'command outcome');
  }
}

/**
 * A hub's refusal of a command as its caller gets it. The hub's own code is passed on as `hub`: the
 * caller's credentials or the server are not at fault when a hub answers unauthorized or internal;
 * only unknown_device keeps its meaning.
 */
function hubFailure(hubCode: string | undefined, msg: string | undefined, temporary = false): CommandReply {
  const code: ErrorCode = hubCode === 'unknown_device' ? 'unknown_device' : 'command_failed';
  const reply: CommandReply = { ok: false, e: code, msg: msg ?? `the hub answered ${hubCode ?? 'failure'}`, hub: hubCode };
  // the caller's code stays the table's; the hub's word that it is busy, not refusing, goes with it
  if (temporary) reply.tmp = true;
  return reply;
}

/** The command of a bus request, or null after answering a malformed one. */
function readCommand(request: BusMessage): CommandRequest | null {
  try {
    return decodeCommandRequest(request.data);
  } catch (err) {
    const e = err instanceof TierError ? err : new TierError('invalid_field');
    reply(request, { ok: false, e: e.code, msg: e.message });
    return null;
  }
}

export function reply(request: BusMessage, answer: CommandReply): void {
  request.respond(encodeCommandReply(answer));
}
