/** The hub socket: its upgrade, admission and frames. Over 400 lines: one gateway, its handlers sharing the admission and inbox state. */
import { CloseCode, ErrorCodes } from '../../proto/errors.js';
import { FrameType } from '../../proto/frames.js';
import { drainSpreadMs, HubSession, type HubLink, type HubSessionDeps } from '../actors/hub-session.js';
import { monotonicMs } from '../actors/clock.js';
import { admitPing, spend } from '../actors/hub-rate.js';
import { outageRetryMs } from '../actors/outage-retry.js';
import { readHubCredentials, UnprovisionedHubError, type HubAdmission } from '../auth/hub-admission.js';
import { provisionMark, type HubRecord } from '../ports/hub-registry/hub-registry.js';
import { AuthError, ProtocolError, TierError, asTierError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { failureLog, refusalLog, SampledLog, Sampler } from '../log/sampler.js';
import { decodeHubFrame, encode, errorFrameFor } from '../protocol/codec.js';
import { isResultFrame, resultIdOf } from '../protocol/result-peek.js';
import { errorReply, send, type HttpReply } from './http.js';
import type { HttpRequest, HttpResponse, TemplatedApp, WebSocket } from './uws.js';
import { peerAddress } from './client-address.js';
import type { BusyReason, UpgradeLimits } from './upgrade-limits.js';
import { FrameInbox } from './frame-inbox.js';
import { badFrameCount, countBadFrame, HELLO_NONE, HELLO_REFUSED, HELLO_SENT, MAX_BAD_FRAMES } from './hub-conduct.js';
import { AdmittingHubs } from './admitting-hubs.js';
import type { WriteBatch } from './write-batch.js';

/** Bytes of frames the inbox holds at most: past it, what it holds is handled at once (as every frame was before the inbox). */
// one turn may read up to 512 KB from each of 1,024 ready sockets
const MAX_INBOX_BYTES = 4 * 1024 * 1024;

/** What uWS keeps on the socket: few properties, since each hub socket has its own. */
interface HubSocketData {
  hubId: string;
  homeId: string;
  link: UwsHubLink | null;
}

export interface HubGatewayMetrics {
  hubConnected(): void;
  upgradeRefused(code: string): void;
  badFrame(code: string): void;
  /** a result for no command the session waits for (a late answer, after its command timed out): `ignored` within the rate budget, else `refused` */
  strayResult(outcome: 'ignored' | 'refused'): void;
}

/**
 * The actor's view of a uWS socket. Frames are queued and written at the end of the turn, all of
 * this turn's frames in one corked write (see WriteBatch); sends become no-ops once uWS reports
 * the close. A frame the socket cannot take (backpressure past its limit) closes the socket, and
 * the session answers its pending commands with `session_closed`.
 */
/** `UwsHubLink.reading`'s bits: frames waited at the last ask; the socket drained since */
const WAITED = 1;
const DRAINED = 2;

export class UwsHubLink implements HubLink {
  open = true;
  session: HubSession | null = null;
  /** malformed frames counted, less those forgiven, and when (hub-conduct.ts): one small integer */
  badFrames = 0;
  /** HELLO_SENT once a hello was handed to the session (a bad frame is then not the first); HELLO_REFUSED after one of another version only */
  hello = HELLO_NONE;
  /** frames of this socket in the gateway's inbox, not handled yet */
  inbox = 0;
  /** closed by this side: what the socket sent after that is not handled (uWS would not hand it over) */
  ended = false;
  private queued: Uint8Array[] | null = null;
  /** what `readingStalled` saw, and drains since (one small integer: a session's bytes count, BENCHMARKS.md) */
  private reading = 0;
  constructor(
    private readonly ws: WebSocket<HubSocketData>,
    private readonly writes: WriteBatch,
  ) {}

  /** Only hellos of versions this node does not speak came: the hello timeout says so (HubLink). */
  get versionRefused(): boolean { return this.hello === HELLO_REFUSED; }

  /** Read from the socket when asked (the log of a session's opening), not kept: undefined once closed. */
  get remote(): string | undefined {
    return this.open ? peerAddress(this.ws) : undefined;
  }

  readingStalled(): boolean {
    const waiting = this.open && this.ws.getBufferedAmount() > 0;
    const stalled = waiting && this.reading === WAITED;
    this.reading = waiting ? WAITED : 0;
    return stalled;
  }

  /** uWS drained the socket: the hub read some of what waited for it. */
  drained(): void {
    this.reading |= DRAINED;
  }

  send(bytes: Uint8Array): boolean {
    if (!this.open) return false;
    if (this.queued) this.queued.push(bytes);
    else {
      this.queued = [bytes];
      this.writes.defer(() => this.flush());
    }
    return true;
  }

  flush(): void {
    const frames = this.queued;
    this.queued = null;
    if (!frames || !this.open) return;
    // frames waited at the last idle check: uWS writes some of its backlog within a send, without a
    // `drain`, when the hub has read some: that is reading too (review "diff13")
    const before = this.reading & WAITED ? this.ws.getBufferedAmount() : -1;
    let bytes = 0;
    this.ws.cork(() => {
      for (const f of frames) {
        this.ws.send(f, true);
        bytes += f.byteLength;
      }
    });
    if (before >= 0 && this.ws.getBufferedAmount() < before + bytes) this.drained();
  }

  close(code: number, reason: string): void {
    if (!this.open) return;
    this.flush(); // a bye or reconnect frame queued this turn goes out before the close
    this.open = false;
    this.ended = true;
    this.ws.end(code, reason);
  }
}

export interface HubGatewayDeps {
  admission: HubAdmission;
  limits: UpgradeLimits;
  sessions: HubSessionDeps;
  log: Logger;
  idleMs: number;
  writes: WriteBatch;
  metrics?: HubGatewayMetrics;
  /** true once the node drains: a hub admitted after its upgrade is then told to reconnect elsewhere */
  draining?: () => boolean;
}

/**
 * `/hub/v1`: the signed upgrade, then one HubSession actor per socket. Bad frames are answered with
 * an error frame, and too many of them close the socket with `malformed`; nothing thrown here
 * reaches uWS.
 *
 * Where the admission settles in the upgrade's turn (the embedded stores), a refused hub gets an
 * HTTP refusal and no socket. Where it answers a turn later (Redis), the upgrade is answered first
 * and the session starts once the hub is admitted; a refusal then comes as error, bye and close
 * (PROTOCOL.md 2.1). uWS v20.30 cannot answer an upgrade from a later turn safely: through
 * `res.cork` it may read the new socket's memory as the HTTP response's and close it
 * (uNetworking/uWebSockets#1928: now and then a 1006 right after the `101`, a SIGSEGV under
 * jemalloc), and without `cork` a `Connection: close` upgrade stays open with no `close` event.
 * Redis answers within its command timeout (2 s), so a socket waits at most that long.
 */
export function mountHubGateway(app: TemplatedApp, deps: HubGatewayDeps): void {
  const { admission, limits, sessions, log, metrics, writes } = deps;
  const maxFrame = sessions.maxFrameBytes;
  const refusals = refusalLog(log, 'hub handshakes refused, not logged');
  // `busy` says what the node is, not what the hub did: logged per reason, not per source (a
  // storm of hubs behind their own addresses would log every refusal, at more than its cost)
  const busyRefusals = new SampledLog(log, new Sampler(10, 10_000), 'hub handshakes refused busy, not logged', 'reason');
  // built once a reason: every refusal of it answers the same bytes
  const busyReplies = new Map<BusyReason, HttpReply>();
  // a backend away fails every handshake alike: a few lines and a count, not one per hub
  const failures = failureLog(log, 'hub admission failures, not logged', 'error');
  // sockets upgraded before their admission is decided (cluster mode)
  const admitting = new AdmittingHubs<UwsHubLink>(maxFrame);

  /**
   * Frames received this turn, handled together at its end, before its writes (a text frame is
   * held as null: refused whatever its bytes). Each uWS callback sits between system calls
   * (the read of its socket, the next one's): handled inside it, a report's JavaScript cost about
   * three times what it costs in a run of reports (BENCHMARKS, 2026-12-01 ninth; a TLB flushed at
   * every system call, PTI without PCID, the likely cause). Past MAX_INBOX_BYTES, handled at once.
   */
  const inbox = new FrameInbox<HubSocketData>(MAX_INBOX_BYTES);
  /** `provisionMark` of the record whose socket uWS opens in the `res.upgrade` under way; 0: none (unknown to the session) */
  let opening = 0;
  function drain(): void {
    // a frame handled below may close a socket, whose close handler drains again: nothing twice
    const frames = inbox.take();
    for (let i = 0; i < frames.length; i += 2) {
      const data = frames[i] as HubSocketData;
      // only frames of a socket with a session are queued, and a socket's link is never unset
      data.link!.inbox--;
      try {
        handle(data, frames[i + 1] as Uint8Array | null);
      } catch (err) {
        // one hub's failure leaves the others' frames of the turn to be handled
        log.error({ err, hubId: data.hubId }, 'hub frame handling failed');
      }
    }
  }
  function handle(data: HubSocketData, bytes: Uint8Array | null): void {
    const link = data.link;
    const session = link?.session;
    // a socket this side closed meanwhile (for a frame before this one) reads nothing more, as uWS
    // would not; one the hub closed still has what it sent before handled
    if (!link || !session || link.ended) return;
    try {
      if (!bytes) throw new ProtocolError('malformed_frame', 'hub frames are binary msgpack, not text');
      // a result for no command the session waits for spends the rate budget before it is decoded:
      // one over budget is refused unread, so a flood of them costs no decoding; one within it is
      // still validated (its errors answered), then dropped. Before hello, rated as any first frame.
      const id = resultIdOf(bytes);
      const stray = id !== null && session.state !== 'connecting' && !session.awaits(id);
      if (stray && !admitStray(session, id, metrics)) return;
      const frame = decodeHubFrame(bytes, maxFrame);
      if (frame.t === FrameType.hello) link.hello = HELLO_SENT;
      if (!stray) session.receiveFrame(frame);
    } catch (err) {
      const e = asTierError(err);
      metrics?.badFrame(e.code);
      if (e.code === 'internal') log.error({ err, hubId: data.hubId }, 'hub frame handling failed');
      // through the link: after the frames already queued this turn, before a bye and the close
      link.send(encode(errorFrameFor(e.code, e.message, e.ref, e.field)));
      if (e instanceof ProtocolError && e.ref !== undefined && !e.temporary) {
        // a permanent refusal of a sequenced frame consumes its number; of a result or an error
        // frame answering a command, fails that command (an error frame's `ref` names a command)
        const t = e.frameType;
        if (t === FrameType.report || t === FrameType.event || t === FrameType.devices) session.refuse(e, e.ref, undefined);
        else if (t === FrameType.result || t === FrameType.error) session.refuse(e, undefined, e.ref);
      }
      if (e.code === 'unsupported_version' && link.hello === HELLO_NONE) link.hello = HELLO_REFUSED;
      if (e.code === 'frame_too_large') session.closeWith(CloseCode.tooLarge, 'frame_too_large');
      // a first frame that is not a hello, or cannot be read as one, closes the socket (PROTOCOL.md
      // §2.2); a hello of another version is only refused, so the hub may try version 1
      else if (link.hello !== HELLO_SENT && session.state === 'connecting' && e.code !== 'unsupported_version') session.closeWith(CloseCode.protocolError, 'hello_required');
      else if (badFrameCount((link.badFrames = countBadFrame(link.badFrames))) >= MAX_BAD_FRAMES) session.closeWith(CloseCode.malformed, 'malformed_frame');
    }
  }

  app.ws<HubSocketData>('/hub/v1', {
    // past the protocol limit we still read the frame to answer frame_too_large and close 1009 with a
    // reason; only beyond this hard cap does uWS drop the connection without a close frame
    maxPayloadLength: maxFrame * 4,
    maxBackpressure: 256 * 1024,
    closeOnBackpressureLimit: 1,
    // a backstop behind the session's own idle check, which closes first with a reason
    idleTimeout: Math.min(960, Math.ceil(deps.idleMs / 1000) + 16),
    sendPingsAutomatically: false,

    upgrade: (res: HttpResponse, req: HttpRequest, context) => {
      const state = { aborted: false };
      res.onAborted(() => {
        state.aborted = true;
      });
      const key = req.getHeader('sec-websocket-key');
      const protocol = req.getHeader('sec-websocket-protocol');
      const extensions = req.getHeader('sec-websocket-extensions');
      let credentials;
      try {
        credentials = readHubCredentials((h) => req.getHeader(h), req.getQuery() ?? '');
      } catch (err) {
        refuse(res, state, err, undefined);
        return;
      }
      const hubId = credentials.hubId;
      // the id is not verified yet: a forged one only passes `full` to be refused for its signature
      const busy = limits.tryStart(sessions.sessions.has(hubId));
      if (busy) {
        refuseBusy(res, state, busy, hubId);
        return;
      }
      // asked at each upgrade: an embedded nonce store whose writes fail answers a turn later
      if (!admission.inTurn) {
        // counted as a handshake until decided; `open` takes the decision (no home yet: '')
        let taken = false;
        try {
          taken = admitting.upgrade(admission.admit(credentials), () => res.upgrade<HubSocketData>({ hubId, homeId: '', link: null }, key, protocol, extensions, context));
        } catch (err) {
          log.error({ err, hubId }, 'hub upgrade failed');
        } finally {
          // no socket came of the upgrade: the handshake ends here
          if (!taken) limits.finish(false);
        }
        return;
      }
      admission.admit(credentials).then(
        (record) => {
          if (state.aborted) return limits.finish(false);
          limits.finish(true); // counted now: `close` decrements it whatever happens next
          metrics?.hubConnected();
          res.cork(() => {
            // uWS calls `open` inside `upgrade`: the mark goes to the session there, not on the socket
            // (a fourth property grew every socket's property array by 24 bytes)
            opening = provisionMark(record.createdAt);
            try {
              res.upgrade<HubSocketData>({ hubId: record.hubId, homeId: record.homeId, link: null }, key, protocol, extensions, context);
            } finally {
              opening = 0;
            }
          });
        },
        (err: unknown) => {
          limits.finish(false);
          if (err instanceof AuthError) limits.refund();
          refuse(res, state, err, hubId);
        },
      );
    },

    open: (ws) => {
      const data = ws.getUserData();
      const link = new UwsHubLink(ws, writes);
      data.link = link;
      if (data.homeId === '') {
        const pending = admitting.take(link);
        // an upgrade whose decision did not come along: not a session (never seen; uWS calls `open` in `upgrade`)
        if (!pending) {
          limits.finish(true);
          return link.close(CloseCode.internal, 'internal');
        }
        pending.then(
          (record) => admitted(data, link, record),
          (err: unknown) => refusedAfterUpgrade(data, link, err),
        );
        return;
      }
      start(data, link, opening);
    },

    message: (ws, message, isBinary) => receive(ws.getUserData(), new Uint8Array(message), isBinary),

    // the hub read some of what waited for it (readingStalled)
    drain: (ws) => ws.getUserData().link?.drained(),

    // a WebSocket ping is activity too: a hub may keep its session alive with pings alone; past
    // one a second they spend its budget (uWS answers each one by itself: nothing else bounds them)
    ping: (ws) => pinged(ws.getUserData().link?.session),
    pong: (ws) => pinged(ws.getUserData().link?.session),

    close: (ws, code) => {
      const data = ws.getUserData();
      const link = data.link;
      // a socket still being admitted is not counted yet: its decision ends the handshake
      if (link && admitting.has(link)) {
        link.open = false;
        return;
      }
      limits.socketClosed();
      if (!link) return;
      // uWS has closed the socket: nothing may touch it now, the frames' answers included
      link.open = false;
      // what the hub sent before closing is handled before the session hears of the close
      drain();
      link.session?.tell({ type: 'closed', code });
    },
  });

  /** `provisioned`: `provisionMark` of the admitted record's `createdAt` (a re-check tells the same id provisioned again from it) */
  function start(data: HubSocketData, link: UwsHubLink, provisioned: number): void {
    try {
      link.session = new HubSession(data.hubId, data.homeId, link, sessions, provisioned);
    } catch (err) {
      log.error({ err, hubId: data.hubId }, 'hub session could not start');
      link.send(encode({ t: FrameType.bye, e: 'internal' }));
      link.close(CloseCode.internal, 'internal');
    }
  }

  /** A frame from uWS (`bytes` is uWS's memory, valid during this call), or one held meanwhile. */
  function receive(data: HubSocketData, bytes: Uint8Array, isBinary: boolean): void {
    const link = data.link;
    if (!link?.session) {
      if (link?.open && admitting.has(link) && !admitting.hold(link, bytes, isBinary)) {
        link.send(encode(errorFrameFor('malformed_frame', admitting.limit)));
        link.send(encode({ t: FrameType.bye, e: 'malformed_frame' }));
        link.close(CloseCode.malformed, 'malformed_frame');
      }
      return;
    }
    // a command's result waits for nothing (its answer, written in this turn's batch): handled
    // now unless frames of its socket wait in the inbox, which it must not overtake
    if (isBinary && link.inbox === 0 && isResultFrame(bytes)) return handle(data, bytes);
    // copied (uWS reuses the memory once this returns), from Node's pool of small buffers
    const held = inbox.push(data, isBinary ? Buffer.from(bytes) : null, bytes.length);
    link.inbox++;
    if (held === 'first') writes.defer(drain);
    else if (held === 'full') drain();
  }

  /** The decision for a socket admitted after its upgrade: the session starts, with what it sent meanwhile. */
  function admitted(data: HubSocketData, link: UwsHubLink, record: HubRecord): void {
    const held = admitting.release(link);
    if (!link.open) return limits.finish(false);
    limits.finish(true); // counted now: `close` decrements it whatever happens next
    if (deps.draining?.()) {
      // the drain told the sessions it found; this one came after: the same, with no session
      link.send(encode({ t: FrameType.reconnect, after: drainSpreadMs(), e: 'draining' }));
      return link.close(CloseCode.goingAway, 'draining');
    }
    metrics?.hubConnected();
    data.hubId = record.hubId;
    data.homeId = record.homeId;
    start(data, link, provisionMark(record.createdAt));
    for (const frame of held) receive(data, frame.bytes, frame.binary);
  }

  /** Refused after its upgrade: the same code as the HTTP refusal, as error, bye and close. */
  function refusedAfterUpgrade(data: HubSocketData, link: UwsHubLink, err: unknown): void {
    admitting.release(link);
    if (err instanceof AuthError) limits.refund();
    const e = noteRefusal(err, link.open ? link.remote : undefined, data.hubId);
    if (!link.open) return limits.finish(false);
    limits.finish(true);
    const temporary = ErrorCodes[e.code].temporary;
    link.send(encode(errorFrameFor(e.code, e.message)));
    if (temporary) link.send(encode({ t: FrameType.reconnect, after: e.retryAfterMs ?? outageRetryMs(), e: e.code }));
    link.send(encode({ t: FrameType.bye, e: e.code }));
    link.close(temporary ? CloseCode.internal : e.code === 'hub_disabled' ? CloseCode.hubDisabled : CloseCode.unauthorized, e.code);
  }

  function noteRefusal(err: unknown, remote: string | undefined, hubId: string | undefined): TierError {
    const e = asTierError(err);
    if (e.code === 'internal' || e.code === 'unavailable') failures.write('admission', { err }, 'hub admission failed');
    // the hub is told bad_signature; the operator is told why
    const code = err instanceof UnprovisionedHubError ? 'unknown_hub' : e.code;
    metrics?.upgradeRefused(code);
    // sampled per source: a flood of bad handshakes cannot fill the disk
    refusals.info(remote ?? 'aborted', { code, remote, hubId }, 'hub handshake refused');
    // the detail (a sealing key the node lacks, a backend's error) is the operator's, logged above, not the device's
    return e.code === 'internal' ? new TierError('internal', 'the node could not admit this hub; its log says why') : e;
  }

  /** Admission control's refusal: before any work for the handshake, and cheap (it comes in storms). */
  function refuseBusy(res: HttpResponse, state: { aborted: boolean }, reason: BusyReason, hubId: string): void {
    metrics?.upgradeRefused('busy');
    busyRefusals.info(reason, { code: 'busy', reason, hubId }, 'hub handshake refused');
    let reply = busyReplies.get(reason);
    if (!reply) {
      reply = { status: 503, text: JSON.stringify(errorReply(new TierError('busy', limits.message(reason))).body), contentType: 'application/json', headers: { 'retry-after': '1' } };
      busyReplies.set(reason, reply);
    }
    send(res, state, reply, writes);
  }

  function refuse(res: HttpResponse, state: { aborted: boolean }, err: unknown, hubId: string | undefined): void {
    // read here, not at every upgrade: an admitted hub never needs it (the response is still ours
    // until it is aborted, whatever the turn)
    const e = noteRefusal(err, state.aborted ? undefined : peerAddress(res), hubId);
    // a backend away (registry, nonces): the hub comes back later, spread as the in-session outage hint is
    const reply = errorReply(e);
    // a rate says when its next hello frees; a backend away is waited out spread over 1–5 s
    if (ErrorCodes[e.code].temporary && e.retryAfterMs === undefined) reply.headers = { 'retry-after': String(Math.ceil(outageRetryMs() / 1000)) };
    // at the end of the turn: an upgrade pipelined behind a refused one then closes the connection
    // (answered at once, 200 forged upgrades a write held the loop for seconds)
    send(res, state, reply, writes);
  }
}

/** A ping or pong of the hub: its session touched, and closed 4004 past the burst of refusals (`admitPing`). */
function pinged(session: HubSession | null | undefined): void {
  if (!session) return;
  session.touch();
  if (admitPing(session, monotonicMs(), session.deps) === 'close') session.closeWith(CloseCode.rateLimited, 'rate_limited');
}

/**
 * A result for no command the session waits for, rated as any frame that is not free: true when
 * within budget; else refused (`rate_limited`, `ref` = its id) or, past the burst of refusals, closed.
 */
function admitStray(session: HubSession, id: number, metrics: HubGatewayMetrics | undefined): boolean {
  session.touch();
  const verdict = spend(session, monotonicMs(), session.deps);
  metrics?.strayResult(verdict === 'pass' ? 'ignored' : 'refused');
  if (verdict === 'close') session.closeWith(CloseCode.rateLimited, 'rate_limited');
  else if (verdict === 'refuse') session.sendError('rate_limited', 'slow down: a result for no waiting command, refused unread', id);
  return verdict === 'pass';
}
