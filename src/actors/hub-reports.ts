// Over 400 lines: one session's reported side; its cache, sequence numbers and acknowledgements
// share one state (the device lists' handling is the next to move out).
import type { ErrorCode } from '../../proto/errors.js';
import {
  FrameType,
  type Attrs,
  type DevicesFrame,
  type EventFrame,
  type HubToServerFrame,
  type ReportFrame,
  type ServerToHubFrame,
} from '../../proto/frames.js';
import type { AppEventMessage } from '../../proto/app.js';
import type { DesiredChange } from '../../proto/subjects.js';
import { inSpan } from '../trace/active-span.js';
import { startActorStep } from '../trace/actor-step.js';
import { endSpan, SpanKind, tracing, type Span, type Tracing } from '../trace/tracing.js';
import {
  copyAttrs,
  desiredDelta,
  mergeAttrs,
  reportedSide,
  type CursorListener,
  type DeviceShadow,
  type HubShadow,
  type SeqCursor,
} from '../ports/shadow-store/shadow-store.js';
import { decodeValue, isPlainObject } from '../protocol/codec.js';
import { RESEND_WINDOW, refuseWentBack } from './resend-window.js';
import { checkReport, DEFAULT_HUB_LIMITS, deviceBytes, setsNothing, shadowBytes, type HubLimits } from './hub-limits.js';
import { tableDelete, tableGet, tableIds, tableSet, tableSize, type DeviceTable } from './device-table.js';
import { cached, coldHas, desiredVersion, nextReportedVersion, NO_COLD_DEVICES, packDevices, setDesiredVersion, unpackDevices, type CachedAttrs } from './cold-devices.js';
import type { Packable } from './shadow-packer.js';
import { bootTag, restartTag } from './event-source.js';
import type { HubSessionDeps, SessionState } from './hub-deps.js';

/** What the reported side needs of its session. */
export interface ReportHost {
  readonly hubId: string;
  readonly homeId: string;
  /** the session's directory epoch: every write carries it (see ShadowStore) */
  readonly epoch: number;
  /** `provisionMark` of the hub record's `createdAt` (0: unknown): another for a hub id deleted and provisioned again */
  readonly provisioned: number;
  readonly state: SessionState;
  readonly deps: HubSessionDeps;
  send(frame: ServerToHubFrame): boolean;
  sendError(code: ErrorCode, msg: string, ref?: number, field?: string): void;
  /** a report taken (not a duplicate, within the limits) names these attributes of a device */
  reportedKeys?(deviceId: string, patch: Attrs): void;
}

/**
 * A session's side of what its hub reports: the shadow cache with its limit accounting, and the
 * sequence numbers of reports, events and device lists. Each sequenced frame is applied once per
 * boot id (a resend is re-acknowledged, not applied; a skipped number answers `sequence_gap`),
 * and acknowledged cumulatively once the store says its writes are durable, not before.
 *
 * The cache keeps only what the session reads, in one table keyed by device id (one per hub, no
 * object per device besides its attributes; see DeviceTable): each device's reported attributes, their
 * version and the desired side's under symbols (CachedAttrs). Kinds, models, times and desired
 * attributes are the store's; the welcome's delta is taken from the stored shadow. A cache not used
 * for a while is packed into one string (`pack`, told by the ShadowPacker), unpacked at its next use.
 */
export class HubReports implements CursorListener, Packable {
  /** every device of the hub, with the attributes it reported and their versions; a string while idle (cold-devices.ts) */
  private cache: DeviceTable<CachedAttrs> | string = [];
  /** the estimated bytes of the reported side (see HubLimits) */
  private shadowBytes = 0;
  private boot = '';
  /** the tag of the boot id's numbering in events' `src` (event-source.ts), kept in the cursor */
  private bootTag = '';
  /** last sequence number accepted (-1: none for this boot); its writes may still be in flight */
  private lastSeq = -1;
  /** last sequence number acknowledged to the hub: stored */
  private ackedSeq = -1;
  /** a sequenced frame was accepted in this session: from now on gaps are refused */
  private sequenced = false;
  /** deferred acknowledgements (acknowledge's `after`) not yet queued, and the last of them */
  private deferred = 0;
  private waiting: Promise<void> = Promise.resolve();
  /** the lowest sequence number refused for now (rate, busy) before any was accepted: the first may not skip past it */
  private firstHeldBack: number | undefined;
  /** a hub heartbeat answered once `ackedSeq` reaches this (-1: none waiting) */
  private heartbeatAt = -1;
  /** heartbeats waiting for `heartbeatAt`: each gets its answer (PROTOCOL.md §4) */
  private heartbeatsOwed = 0;

  constructor(private readonly host: ReportHost) {}

  /** read through the host: one field less in every session */
  private get deps(): HubSessionDeps {
    return this.host.deps;
  }
  private get limits(): HubLimits {
    return this.deps.limits ?? DEFAULT_HUB_LIMITS;
  }

  /** The cache in use: unpacked if it was idle, and the packer told. */
  private get reported(): DeviceTable<CachedAttrs> {
    let table = this.cache;
    if (typeof table === 'string') this.cache = table = unpackDevices(table, this.deps.shapes);
    this.deps.packer?.use(this);
    return table;
  }

  private set reported(table: DeviceTable<CachedAttrs>) {
    this.cache = table;
  }
  /** Makes the cache its idle form (told by the packer); a cache of a device with an odd id stays a table. */
  pack(): number {
    if (typeof this.cache === 'string' || this.host.state === 'closed') return 0;
    const packed = packDevices(this.cache, this.deps.shapes);
    if (packed === null) return 0;
    this.cache = packed;
    return packed.length;
  }

  /** The session is closed: the packer forgets the cache. */
  release(): void {
    this.deps.packer?.forget(this);
  }

  /** Starts from the stored shadow and cursor (after storeBoot, with the same cursor); returns the last sequence number accepted for this boot (-1: none). */
  resume(boot: string, shadow: HubShadow, cursor: SeqCursor | null): number {
    let reported: DeviceTable<CachedAttrs> = [];
    for (const id in shadow) {
      const device = shadow[id]!;
      const attrs = cached(this.deps.interner?.attrs(device.reported) ?? device.reported, device.reportedVersion);
      if (device.desiredVersion > 0) setDesiredVersion(attrs, device.desiredVersion);
      reported = tableSet(reported, id, attrs);
    }
    this.reported = reported;
    this.shadowBytes = shadowBytes(reported);
    this.boot = boot;
    // the hub's first numbering: its boot id's own tag (with its record's, so a hub id provisioned
    // again does not take a deleted hub's: review diff16); one that goes on (a resend after a
    // failover): the stored tag; one begun again (another boot id stored): the tag storeBoot stored
    if (cursor === null) this.bootTag = bootTag(this.host.provisioned === 0 ? boot : `${boot}\n${this.host.provisioned}`);
    else if (cursor.boot === boot) this.bootTag = cursor.tag ?? bootTag(boot);
    // -1: nothing accepted for this boot yet, so a first frame with `s: 0` is new, not a duplicate
    this.lastSeq = cursor !== null && cursor.boot === boot ? cursor.seq : -1;
    this.ackedSeq = this.lastSeq;
    return this.lastSeq;
  }

  /**
   * The count follows the latest hello (a hub back on an earlier boot id after one that sent nothing
   * had its next frames acked as duplicates, never stored: 2026-12-06), so the welcome waits for
   * `{boot, -1}` to be durable; false when not within `waitMs` (backend away, session taken over).
   */
  storeBoot(boot: string, cursor: SeqCursor | null, waitMs: number): Promise<boolean> | null {
    if (cursor === null || cursor.boot === boot) return null;
    // the numbering starts again at 1: its events' `src` must not be those of an earlier numbering
    // of this boot id (their notifications were dropped as repeats: review automation2)
    const tag = (this.bootTag = restartTag());
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, waitMs, false);
      const cursorStored = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.deps.shadows.writeCursor(this.host.hubId, { boot, seq: -1, tag }, this.host.epoch, { cursorStored });
    });
  }

  /** Whether a command may name this device: any, until the hub has told its devices. */
  mayCommand(deviceId: string): boolean {
    const cache = this.cache;
    // an idle cache answers without being unpacked: commands to a hub do not make it use memory
    if (typeof cache === 'string') return cache === NO_COLD_DEVICES || coldHas(cache, deviceId);
    return tableSize(cache) === 0 || tableGet(cache, deviceId) !== undefined;
  }

  /** Applies a sequenced frame once: true when new, false when a duplicate or out of order. */
  private accept(seq: number, from = seq): boolean {
    if (seq <= this.lastSeq) {
      if (this.lastSeq - seq > RESEND_WINDOW) return refuseWentBack(this.host, seq, this.lastSeq);
      // a resend: acknowledged again once stored (now, or when its batch is written)
      if (seq <= this.ackedSeq) this.host.send({ t: FrameType.ack, s: this.ackedSeq });
      return false;
    }
    // the first sequenced frame of a session may skip ahead: a node crash can lose the newest
    // cursor writes (the batch window) of frames the hub never saw acknowledged; then no gaps
    if (this.sequenced && from > this.lastSeq + 1) {
      this.host.sendError('sequence_gap', `expected sequence ${this.lastSeq + 1}, resend from there`, this.lastSeq + 1);
      return false;
    }
    if (!this.sequenced) {
      // the hub was told to resend a frame before this one: skipping it, this frame's ack would
      // cover a frame never stored (the resend then taken for a duplicate)
      const held = this.firstHeldBack;
      if (held !== undefined && held > this.lastSeq && from > held) {
        this.sequenced = true;
        this.lastSeq = held - 1;
        this.host.sendError('sequence_gap', `expected sequence ${held}, resend from there`, held);
        return false;
      }
      // from here on no gaps: should applying this frame fail, a later frame's ack cannot cover it
      this.sequenced = true;
      this.lastSeq = from - 1;
    }
    return true;
  }

  /**
   * A sequenced frame was refused for now (the rate gate, a full mailbox): the hub resends it. Told
   * outside the mailbox, so only noted, and read by the first frame accepted (`accept`).
   */
  heldBack(seq: number): void {
    if (!this.sequenced && (this.firstHeldBack === undefined || seq < this.firstHeldBack)) this.firstHeldBack = seq;
  }

  /**
   * Consumes `seq`: its cursor is queued with the frame's writes, and the hub gets its (cumulative)
   * ack when the store says they are durable (`cursorStored`), not before. `after` (cluster mode, a
   * report): `write` (its state) and the cursor are queued once `after` settles, and every later
   * frame's cursor waits its turn behind them, so an ack never covers a state not yet queued; the
   * session goes on to its next frames meanwhile (commands and heartbeats are not held up).
   */
  private acknowledge(seq: number, write?: () => void, after?: Promise<void>): void {
    this.lastSeq = seq;
    this.sequenced = true;
    const commit = () => {
      write?.();
      this.deps.shadows.writeCursor(this.host.hubId, { boot: this.boot, seq, tag: this.bootTag }, this.host.epoch, this);
    };
    if (after === undefined && this.deferred === 0) return commit();
    // one promise a report while none waits before it (the common case), two behind another
    const run = () => {
      this.deferred--;
      commit();
    };
    const turn = this.deferred++ === 0 ? after! : this.waiting.then(() => after);
    this.waiting = turn.then(run, run);
  }

  /** The store wrote the cursor `seq` and everything queued before it: acknowledge up to it. */
  cursorStored(_hubId: string, seq: number): void {
    if (seq <= this.ackedSeq || this.host.state !== 'online') return;
    this.ackedSeq = seq;
    this.host.send({ t: FrameType.ack, s: seq });
    if (this.heartbeatAt !== -1 && seq >= this.heartbeatAt) {
      const owed = this.heartbeatsOwed;
      this.heartbeatAt = -1;
      this.heartbeatsOwed = 0;
      for (let i = 0; i < owed; i++) this.host.send({ t: FrameType.heartbeat, ts: Date.now() });
    }
  }

  /**
   * Answers a hub's heartbeat after the acks of every frame accepted before it, so the hub sees
   * answers in the order of its frames (a heartbeat is a barrier) although acks wait for the store.
   * `count` > 1: heartbeats a full mailbox folded into one (hub-overflow.ts), each answered.
   */
  answerHeartbeat(count = 1): void {
    if (this.ackedSeq >= this.lastSeq) for (let i = 0; i < count; i++) this.host.send({ t: FrameType.heartbeat, ts: Date.now() });
    else {
      // one answer per heartbeat, all after the latest ack owed (acks are cumulative)
      this.heartbeatAt = this.lastSeq;
      this.heartbeatsOwed += count;
    }
  }

  /**
   * A sequenced frame refused by validation or a limit is consumed (its number is acknowledged with
   * the next ack, nothing of it stored): a permanent refusal would be refused again, and the hub must
   * not stall on it. A number past the resend window already had its error: not a second (diff10).
   */
  refused(seq: number): void {
    if (this.lastSeq - seq <= RESEND_WINDOW && this.accept(seq)) this.acknowledge(seq);
  }

  /**
   * `from`: the first sequence number of a report that absorbed later ones (see the mailbox's
   * overflow), `seqs` the number of the last of them that carried each device; `queued`: when it
   * entered the mailbox (tracing on).
   */
  report(frame: ReportFrame, from?: number, queued?: number, seqs?: Record<string, number>): void {
    // a coalesced report spans from..s; re-applying its older part is harmless (same values)
    if (!this.accept(frame.s, from)) return;
    const table = this.reported; // read once: each read tells the packer
    const bytes = checkReport(frame, table, tableSize(table), this.shadowBytes, this.limits);
    if (typeof bytes !== 'number' && from !== undefined && from < frame.s) {
      // reports merged in a full mailbox: which of them breaks the limit is not known, and an ack
      // of the last would cover the others unstored; refused for now and not consumed, the hub
      // resends them one by one (until 2026-12-06 the merge was refused whole and acknowledged)
      this.host.sendError('busy', `reports ${from}..${frame.s} refused together: resend from ${from}`, from);
      return;
    }
    if (typeof bytes !== 'number') {
      // refused whole and consumed: nothing of it is stored, the next ack covers its number
      this.host.sendError(bytes.code, bytes.message, frame.s, bytes.field);
      this.acknowledge(frame.s);
      return;
    }
    this.shadowBytes = bytes;
    const { hubId, homeId, epoch } = this.host;
    const now = Date.now();
    let step: Span | undefined;
    // shared stores (cluster mode): written once the events are in the history, see below
    const later = this.deps.stateAfterEvents === true && this.deps.eventsDurable ? new Map<string, DeviceShadow>() : undefined;
    for (const deviceId in frame.r) {
      const patch = frame.r[deviceId]!;
      this.host.reportedKeys?.(deviceId, patch);
      // a device not known whose patch sets nothing is not stored: the cache must not hold it either
      let reported = tableGet(this.reported, deviceId);
      if (reported === undefined) {
        if (setsNothing(patch)) continue;
        reported = this.addDevice(deviceId);
      }
      const attrs = this.deps.interner?.attrs(patch) ?? patch;
      // the values the shadow held before: a rule's from/to or threshold on any node, after any restart, sees the transition
      const prev: Attrs = {};
      if (!mergeAttrs(reported, attrs, prev)) continue;
      const version = nextReportedVersion(reported);
      if (later) later.set(deviceId, reportedSide(copyAttrs(reported), version, now));
      else this.deps.shadows.writeReported(hubId, deviceId, reportedSide(reported, version, now), epoch);
      const event: AppEventMessage = { op: 'evt', kind: 'state', home: homeId, hub: hubId, device: deviceId, attrs, version, ts: frame.ts ?? now, src: `${this.bootTag}.${seqs?.[deviceId] ?? frame.s}`, prev };
      if (tracing === null) this.deps.publishEvent(event, this.host.epoch);
      else step = this.publishTraced(tracing, event, 'report', step, queued);
    }
    if (step) endSpan(step);
    if (later === undefined || later.size === 0) return this.acknowledge(frame.s);
    // the state goes to the shared store only after its events are appended (or published without
    // a position): a node killed while Redis hung had its queued shadow writes land on resume and
    // acknowledge reports whose events nobody published; now such a report is not stored, and the
    // hub resends it to the node it reconnects to
    const write = () => {
      for (const [deviceId, side] of later) this.deps.shadows.writeReported(hubId, deviceId, side, epoch);
    };
    this.acknowledge(frame.s, write, this.deps.eventsDurable!(homeId));
  }

  /** A device the hub has not told of before: nothing reported, version 0. */
  private addDevice(deviceId: string): CachedAttrs {
    const attrs = cached({}, 0);
    this.reported = tableSet(this.reported, deviceId, attrs);
    return attrs;
  }

  /** A device event: acknowledged once the history holding it is stored (the shadow does not hold it). */
  event(frame: EventFrame, queued?: number): void | Promise<void> {
    if (!this.accept(frame.s)) return;
    const event: AppEventMessage = { op: 'evt', kind: 'event', home: this.host.homeId, hub: this.host.hubId, device: frame.d, event: frame.e, params: frame.p, ts: frame.ts ?? Date.now(), src: `${this.bootTag}.${frame.s}` };
    if (tracing === null) this.deps.publishEvent(event, this.host.epoch);
    else {
      const step = this.publishTraced(tracing, event, 'event', undefined, queued);
      if (step) endSpan(step);
    }
    // the session's next frames wait: acknowledgements stay in order
    const durable = this.deps.eventsDurable?.(event.home);
    if (durable === undefined) this.acknowledge(frame.s);
    else return durable.then(() => this.acknowledge(frame.s));
  }

  /**
   * Publishes `event` while tracing is on. One the node's rules may trigger on is published inside
   * the frame's actor step, a span started at the first such event (a root, sampled at the ratio)
   * and handed on with it, so the rule evaluation it causes joins the trace. Answers the step (the
   * caller ends it once the frame is handled), undefined while no event of the frame needed one.
   */
  private publishTraced(t: Tracing, event: AppEventMessage, message: string, step: Span | undefined, queued: number | undefined): Span | undefined {
    if (!this.deps.rulesListen?.(event)) {
      this.deps.publishEvent(event, this.host.epoch);
      return step;
    }
    const s = step ?? startActorStep(t, SpanKind.CONSUMER, 'hub', message, undefined, queued, { 'hubtier.hub_id': this.host.hubId, 'hubtier.home_id': this.host.homeId });
    inSpan(s, () => this.deps.publishEvent(event, this.host.epoch, s));
    return s;
  }

  async devices(frame: DevicesFrame): Promise<void> {
    if (!this.accept(frame.s)) return;
    const joined = frame.j ?? [];
    const left = frame.l ?? [];
    const full = frame.f === true;
    const keep = full ? new Set(joined.map((d) => d.d)) : null;
    const removed = [...left];
    if (keep) for (const id of tableIds(this.reported)) if (!keep.has(id)) removed.push(id);
    const gone = new Set(removed.filter((id) => tableGet(this.reported, id) !== undefined));
    let devices = tableSize(this.reported) - gone.size;
    for (const d of joined) if (tableGet(this.reported, d.d) === undefined || gone.has(d.d)) devices++;
    if (devices > this.limits.devices) {
      this.host.sendError('limit_exceeded', `more than ${this.limits.devices} devices on this hub`, frame.s, 'j');
      this.acknowledge(frame.s);
      return;
    }
    // earlier reports' writes waiting for their events go first: after the list, they put back a device that left
    if (this.deferred > 0) await this.waiting;
    const changed = await this.deps.shadows.writeDevices(this.host.hubId, joined, left, full, this.host.epoch);
    // the count follows the devices that come and go (recounted whole, a hub of 512 spent 1 ms a list)
    for (const id of removed) {
      const attrs = tableGet(this.reported, id);
      if (attrs === undefined) continue;
      this.shadowBytes -= deviceBytes(id, attrs);
      tableDelete(this.reported, id);
    }
    for (const d of joined) {
      if (tableGet(this.reported, d.d) !== undefined) continue;
      this.addDevice(d.d);
      this.shadowBytes += d.d.length;
    }
    // a list the store already held (every reconnect sends one) is no news: no event, and the
    // home's history keeps its room for those that are
    if (changed) this.deps.publishEvent({ op: 'evt', kind: 'devices', home: this.host.homeId, hub: this.host.hubId, joined, left: removed, ts: Date.now() }, this.host.epoch);
    this.acknowledge(frame.s);
  }

  /**
   * A desired change from the bus (`hub.<hubId>.desired`): taken when newer than the cached one.
   * Returns what the hub should apply now (device and delta), or null.
   */
  desired(data: Uint8Array): DesiredChange | null {
    const value = decodeValue(data);
    if (!isPlainObject(value)) return null;
    const msg = value as Partial<DesiredChange>;
    if (typeof msg.d !== 'string' || typeof msg.desired !== 'object' || msg.desired === null || typeof msg.v !== 'number') return null;
    return { d: msg.d, desired: msg.desired, v: msg.v };
  }

  /**
   * Device `deviceId`'s desired state at `version`, from the bus or the store: taken when newer
   * than the cached one. Returns the attributes the hub has not reported yet, or null; with
   * `whole`, the whole desired map (empty when none is left): the reported state cached is not
   * to be trusted while a `set` of the device is on its way (see HubSession.applyDesired).
   */
  newerDesired(deviceId: string, desired: Attrs, version: number, whole = false): Attrs | null {
    // a device not known yet is added (bounded where desired state is set), its id counted: a list dropping it subtracts it (review diff10)
    let reported = tableGet(this.reported, deviceId);
    if (reported === undefined) (reported = this.addDevice(deviceId)), (this.shadowBytes += deviceId.length);
    if (version <= desiredVersion(reported)) return null;
    setDesiredVersion(reported, version);
    return whole ? { ...desired } : desiredDelta({ desired, reported });
  }
}

/**
 * Merges report `next` into the queued report `tail` when it directly follows it (the mailbox is
 * full): `tail` then spans `from`..`next.s`, and one cumulative ack covers both. False otherwise.
 * `seqs` keeps the number of the last frame that carried each device: its event's `src` is that
 * frame's, as when the hub resends the frames one by one to another node (review diff15).
 */
export function absorbReport(tail: { frame: HubToServerFrame; from?: number; seqs?: Record<string, number> }, next: HubToServerFrame): boolean {
  const last = tail.frame;
  if (last.t !== FrameType.report || next.t !== FrameType.report || next.s !== last.s + 1) return false;
  if (tail.seqs === undefined) {
    // device ids from the hub: no prototype, so `__proto__` is a key like another
    const seqs = Object.create(null) as Record<string, number>;
    for (const id in last.r) seqs[id] = last.s;
    tail.seqs = seqs;
  }
  for (const id in next.r) {
    last.r[id] = Object.hasOwn(last.r, id) ? { ...last.r[id], ...next.r[id] } : next.r[id]!;
    tail.seqs[id] = next.s;
  }
  tail.from ??= last.s;
  last.s = next.s;
  return true;
}
