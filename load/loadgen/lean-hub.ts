import { randomBytes } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { FrameType, type Attrs, type DeviceInfo, type TimerHandle, type TimerTarget, type TimerWheel } from '../../src/index.js';
import { encodeFrame, frames, peekServer } from '../wire/frames.js';
import { HubClientError, signedHeaders } from '../wire/handshake.js';
import type { HubSpec } from './ipc.js';
import { CloseCode, FrameReader, Opcode, clientFrame, closeFrame, type FrameSink } from '../wire/ws-framing.js';
import { readUpgrade, upgradeKey, upgradeRequest } from '../wire/ws-upgrade.js';
import { RawTcp, type RawConn } from '../wire/raw-tcp.js';
import { UnackedReports } from './unacked-reports.js';

/**
 * The lean hubs of one worker: the signed upgrade, hello → welcome, sequenced reports without a
 * resend queue, commands answered at once with their parameters (`r = p`), heartbeats in one
 * sweep. Built for memory: a hub is a bare TCP handle (wire/raw-tcp.ts) reading into one buffer
 * shared by the worker and a slot in typed arrays (no per-hub objects or closures once online),
 * the WebSocket framing is wire/ws-framing.ts, and timers live in the worker's wheel. The same code drives the real
 * server and the relay floor (unsigned), and, with `hello: false`, the bare sockets of the
 * memory floor.
 */

/** What every hub of one target shares. */
export interface LeanTarget {
  /** the full endpoint: `ws://host:port/hub/v1` (or `/idle` for the bare-socket floor) */
  endpoint: string;
  /** false: no signature (the relay floor): hub and home go as plain headers */
  signed: boolean;
  /** @default true; false: a bare socket that is done once upgraded (the idle-socket floor) */
  hello: boolean;
  /** upgrade plus welcome, ms */
  connectTimeoutMs: number;
  /**
   * Source address and port of each connection attempt (127.0.0.0/8 spreading). An explicit port
   * matters at scale: bind() to an address with port 0 makes the kernel search that address's
   * bound ports, which grows with every socket (tens of µs each at 15,000 sockets).
   */
  source(): { address: string; port?: number } | undefined;
}

/** What the hubs tell their owner, by hub number. */
export interface LeanHubEvents {
  /** the session closed after a welcome (not called for failed connects) */
  onClose(hub: number, code: number): void;
  /** an error frame from the server (busy, rate_limited, sequence_gap, ...) */
  onErrorFrame(hub: number, code: string): void;
  /** a command arrived and was answered */
  onCommand(hub: number): void;
  /** an ack arrived */
  onAck(hub: number, s: number): void;
  /** an ack covered a report: `ms` since that report was due (once per report) */
  onReportAck(hub: number, ms: number): void;
}

/** A hub's connection state, its byte in `state`. */
const IDLE = 0;
/** TCP connecting or the upgrade sent, its answer not read */
const UPGRADING = 1;
/** upgraded, hello sent */
const HELLO = 2;
const ONLINE = 3;
/** our close frame sent after being online */
const CLOSING = 4;

/** A connect under way: transient, dropped at the welcome or the failure. */
interface Attempt {
  resolve(ms: number): void;
  reject(err: HubClientError): void;
  started: number;
  key: string;
  /** the answer to the upgrade so far */
  head: Buffer | null;
  deadline: TimerHandle;
}

/** Messages from a server larger than this close the socket (1009): hub frames are small. */
const MAX_MESSAGE = 1024 * 1024;

export class LeanHubs implements FrameSink, TimerTarget {
  readonly count: number;
  readonly ids: string[];
  readonly homes: string[];
  /** secrets, settable until a hub connects (provisioned later) */
  readonly secrets: string[];
  /** index into the targets */
  readonly target: Uint8Array;
  private readonly state: Uint8Array;
  /** heartbeat interval from the welcome, ms (0 before it) */
  private readonly hb: Uint32Array;
  /** when the hub last sent a frame (Date.now()), for the heartbeat sweep */
  private readonly lastSent: Float64Array;
  private readonly seq: Uint32Array;
  /** each session's reports not acknowledged yet, with when they were due */
  private readonly unacked: UnackedReports;
  /** the close code the server sent (0: none yet, reported as 1006) */
  private readonly closeCode: Uint16Array;
  private readonly sockets: Array<RawConn | null>;
  private readonly attempts = new Map<number, Attempt>();
  /** who waits for a hub's socket to close (`terminate`) */
  private readonly closing = new Map<number, Array<() => void>>();
  private readonly reader = new FrameReader(this, MAX_MESSAGE);
  /** `ip`: the host's address, looked up at the first connect when the endpoint names a host */
  private readonly ends: Array<{ host: string; ip: string | null; port: number; hostHeader: string; path: string }>;
  /** every socket of the worker reads into one buffer: nothing is allocated per read */
  private readonly tcp: RawTcp;

  constructor(
    private readonly targets: readonly LeanTarget[],
    specs: readonly HubSpec[],
    private readonly events: LeanHubEvents,
    private readonly wheel: TimerWheel,
  ) {
    const n = (this.count = specs.length);
    this.ids = specs.map((s) => s.id);
    this.homes = specs.map((s) => s.home);
    this.secrets = specs.map((s) => s.secret ?? '');
    this.target = Uint8Array.from(specs, (s) => s.target);
    this.state = new Uint8Array(n);
    this.hb = new Uint32Array(n);
    this.lastSent = new Float64Array(n);
    this.seq = new Uint32Array(n);
    this.unacked = new UnackedReports(n);
    this.closeCode = new Uint16Array(n);
    this.sockets = new Array<RawConn | null>(n).fill(null);
    this.ends = targets.map((t) => {
      const u = new URL(t.endpoint);
      const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
      return { host, ip: isIP(host) ? host : null, port: Number(u.port || 80), hostHeader: u.host, path: `${u.pathname}${u.search}` };
    });
    this.tcp = new RawTcp(Buffer.allocUnsafe(64 * 1024), {
      data: (i, bytes) => this.read(i, bytes),
      error: (i, err) => this.abandon(i, new HubClientError(err.code ?? 'connect_failed', `hub ${this.ids[i]}: ${err.message}`, { cause: err })),
      closed: (i, conn) => this.closed(i, conn),
    });
  }

  connected(i: number): boolean {
    return this.state[i] === ONLINE;
  }

  /** Opens a new session (a fresh boot id each time): the ms from dial to welcome, or a HubClientError (codes in wire/handshake.ts). */
  connect(i: number): Promise<number> {
    if (this.sockets[i]) return Promise.reject(new HubClientError('already_connected', `${this.ids[i]}: already connected`));
    const t = this.targets[this.target[i]!]!;
    const end = this.ends[this.target[i]!]!;
    if (end.ip === null) {
      return lookup(end.host).then(
        (found) => {
          end.ip = found.address;
          return this.connect(i);
        },
        (err: NodeJS.ErrnoException) => Promise.reject(new HubClientError(err.code ?? 'connect_failed', `hub ${this.ids[i]}: ${err.message}`, { cause: err })),
      );
    }
    const src = t.source();
    let socket: RawConn;
    try {
      socket = this.tcp.connect({ host: end.ip, port: end.port, ...(src !== undefined ? { localAddress: src.address, ...(src.port !== undefined ? { localPort: src.port } : {}) } : {}) }, i);
    } catch (err) {
      return Promise.reject(new HubClientError('connect_failed', `hub ${this.ids[i]}: ${(err as Error).message}`, { cause: err }));
    }
    this.sockets[i] = socket;
    this.state[i] = UPGRADING;
    this.seq[i] = 0;
    this.unacked.reset(i);
    this.closeCode[i] = 0;
    this.reader.drop(i);
    const key = upgradeKey();
    const headers = t.signed ? signedHeaders(this.ids[i]!, this.secrets[i]!) : { 'x-hub-id': this.ids[i]!, 'x-hub-home': this.homes[i]! };
    // written while connecting: the socket sends it once connected
    this.tcp.write(socket, upgradeRequest(end.hostHeader, end.path, key, headers));
    return new Promise<number>((resolve, reject) => {
      this.attempts.set(i, { resolve, reject, started: performance.now(), key, head: null, deadline: this.wheel.schedule(t.connectTimeoutMs, this, i) });
    });
  }

  /**
   * Sends a report of changed attributes; false when not connected. `at`: when it was due
   * (performance.now(); default now), what report → ack is measured from.
   */
  report(i: number, r: Record<string, Attrs>, ts?: number, at = performance.now()): boolean {
    if (this.state[i] !== ONLINE) return false;
    const s = ++this.seq[i]!;
    this.send(i, encodeFrame(frames.report(s, r, ts)));
    this.unacked.sent(i, s, at);
    return true;
  }

  /** Reports of connected hubs not acknowledged yet. */
  unacknowledged(): number {
    let n = 0;
    for (let i = 0; i < this.count; i++) if (this.state[i] === ONLINE) n += this.unacked.count(i);
    return n;
  }

  /** Calls `each` with the age at `now` (ms) of every report of a connected hub not acknowledged yet, and forgets them. */
  forgetUnacknowledged(now: number, each: (ageMs: number) => void): void {
    for (let i = 0; i < this.count; i++) if (this.state[i] === ONLINE) this.unacked.forget(i, now, each);
  }

  /** Sends the complete device list; false when not connected. */
  devices(i: number, j: DeviceInfo[]): boolean {
    if (this.state[i] !== ONLINE) return false;
    this.send(i, encodeFrame(frames.devices(++this.seq[i]!, { f: true, j })));
    return true;
  }

  heartbeat(i: number): boolean {
    if (this.state[i] !== ONLINE) return false;
    this.send(i, HEARTBEAT);
    return true;
  }

  /** A heartbeat from every online hub that sent nothing for most of its interval (the worker's one sweep). */
  sweepHeartbeats(now: number): void {
    for (let i = 0; i < this.count; i++) if (this.state[i] === ONLINE && this.hb[i]! > 0 && now - this.lastSent[i]! >= this.hb[i]! - 1_500) this.heartbeat(i);
  }

  /** Drops the TCP connection without a closing handshake (power loss, network cut); resolves once closed. */
  terminate(i: number): Promise<void> {
    const socket = this.sockets[i];
    if (!socket) return Promise.resolve();
    const closed = new Promise<void>((resolve) => {
      const waiting = this.closing.get(i);
      if (waiting) waiting.push(resolve);
      else this.closing.set(i, [resolve]);
    });
    this.tcp.destroy(socket);
    return closed;
  }

  /** A clean close: bye, then the close frame; the server closes the connection. */
  bye(i: number): void {
    if (this.state[i] !== ONLINE) return;
    this.send(i, encodeFrame(frames.bye()));
    this.closeWith(i, CloseCode.normal, 'bye');
  }

  // FrameSink: what the shared reader finds on a hub's socket

  message(i: number, data: Buffer): void {
    const st = this.state[i];
    if (st !== HELLO && st !== ONLINE) return;
    const f = peekServer(data);
    if (f === null) return;
    switch (f.t) {
      case FrameType.welcome:
        if (st !== HELLO) return;
        this.state[i] = ONLINE;
        this.hb[i] = typeof f.hb === 'number' ? f.hb : 0;
        this.seq[i] = typeof f.s === 'number' ? f.s : 0;
        this.settle(i);
        return;
      case FrameType.command:
        // answered at once: the result carries the parameters back as the device's new state
        if (typeof f.id === 'number') this.send(i, encodeFrame(frames.result(f.id, { ok: true, r: f.p })));
        this.events.onCommand(i);
        return;
      case FrameType.ack: {
        const s = typeof f.s === 'number' ? f.s : 0;
        this.unacked.acked(i, s, performance.now(), (ms) => this.events.onReportAck(i, ms));
        this.events.onAck(i, s);
        return;
      }
      case FrameType.error: {
        const code = typeof f.e === 'string' ? f.e : 'unknown';
        // before the welcome the hello was refused; after it, a refused frame leaves a hole:
        // number the next frame where the server expects it
        if (st === HELLO) this.abandon(i, new HubClientError(code, `${this.ids[i]}: ${code} before the welcome`));
        else if (typeof f.ref === 'number' && (code === 'sequence_gap' || f.ref <= this.seq[i]!)) {
          this.seq[i] = f.ref - 1;
          this.unacked.refused(i, f.ref);
        }
        this.events.onErrorFrame(i, code);
        return;
      }
      case FrameType.bye:
        if (st === HELLO) this.abandon(i, new HubClientError(typeof f.e === 'string' ? f.e : 'closed', `${this.ids[i]}: bye ${String(f.e ?? '')} before the welcome`));
        return;
      default:
        return;
    }
  }

  ping(i: number, data: Buffer): void {
    const socket = this.sockets[i];
    if (socket) this.tcp.write(socket, clientFrame(Opcode.pong, data));
  }

  pong(): void {}

  close(i: number, code: number, reason: string): void {
    this.closeCode[i] = code;
    const socket = this.sockets[i];
    if (!socket) return;
    // answered with the same code; the server then closes the connection
    if (this.state[i] !== CLOSING) this.tcp.write(socket, closeFrame(code === CloseCode.noStatus ? CloseCode.normal : code));
    if (this.state[i] === ONLINE) this.state[i] = CLOSING;
    this.abandon(i, new HubClientError('closed', `${this.ids[i]}: closed (${code} ${reason}) before the welcome`, { closeCode: code }));
    this.tcp.end(socket);
  }

  /** The server broke the protocol: our close frame with `code`, and a connect under way fails. */
  fail(i: number, code: number, reason: string): void {
    this.closeWith(i, code, reason);
    this.abandon(i, new HubClientError('closed', `${this.ids[i]}: ${reason}`, { closeCode: code }));
  }

  /** TimerTarget: a connect's deadline passed. */
  onTimer(i: number): void {
    this.abandon(i, new HubClientError('timeout', `hub ${this.ids[i]}: no welcome within ${this.targets[this.target[i]!]!.connectTimeoutMs} ms`));
  }

  private read(i: number, bytes: Buffer): void {
    if (this.state[i] !== UPGRADING) return this.reader.feed(i, bytes);
    const a = this.attempts.get(i);
    if (!a) return;
    a.head = a.head === null ? Buffer.from(bytes) : Buffer.concat([a.head, bytes]);
    const answer = readUpgrade(a.head, a.key);
    switch (answer.kind) {
      case 'partial':
        return;
      case 'bad':
        return this.abandon(i, new HubClientError('connect_failed', `hub ${this.ids[i]}: ${answer.message}`));
      case 'refused':
        return this.abandon(i, new HubClientError(answer.code, `hub ${this.ids[i]}: upgrade refused with ${answer.status}: ${answer.message}`, { status: answer.status }));
      case 'open':
        a.head = null;
        if (!this.targets[this.target[i]!]!.hello) {
          this.state[i] = ONLINE;
          this.settle(i);
        } else {
          this.state[i] = HELLO;
          this.send(i, encodeFrame(frames.hello(randomBytes(6).toString('base64url'))));
        }
        if (answer.rest.length > 0) this.reader.feed(i, answer.rest);
    }
  }

  /** The welcome (or the upgrade of a bare socket): the connect resolves. */
  private settle(i: number): void {
    const a = this.attempts.get(i);
    if (!a) return;
    this.attempts.delete(i);
    this.wheel.cancel(a.deadline);
    a.resolve(performance.now() - a.started);
  }

  private closed(i: number, socket: RawConn): void {
    if (this.sockets[i] !== socket) return;
    const wasOnline = this.state[i] === ONLINE || this.state[i] === CLOSING;
    const code = this.closeCode[i] || CloseCode.abnormal;
    // no answer to the upgrade at all (uWS closes a request unanswered for 10 s), not a session closed after its 101
    const err = this.state[i] === UPGRADING ? new HubClientError('closed_before_upgrade', `${this.ids[i]}: closed before an answer to the upgrade`) : new HubClientError('closed', `${this.ids[i]}: closed (${code}) before the welcome`, { closeCode: code });
    this.detach(i);
    this.abandon(i, err);
    if (wasOnline) this.events.onClose(i, code);
  }

  /** A connect under way fails: rejected at once, its socket detached (the next connect may start now) and destroyed. */
  private abandon(i: number, err: HubClientError): void {
    const a = this.attempts.get(i);
    if (!a) return;
    this.attempts.delete(i);
    this.wheel.cancel(a.deadline);
    const socket = this.sockets[i];
    if (socket) {
      this.detach(i);
      this.tcp.destroy(socket);
    }
    a.reject(err);
  }

  /** The hub has no socket any more; whoever waits for its close hears of it. */
  private detach(i: number): void {
    this.sockets[i] = null;
    this.state[i] = IDLE;
    this.reader.drop(i);
    const waiting = this.closing.get(i);
    this.closing.delete(i);
    if (waiting) for (const w of waiting) w();
  }

  /** Our close frame, then our end of the connection. */
  private closeWith(i: number, code: number, reason: string): void {
    const socket = this.sockets[i];
    if (!socket) return;
    this.closeCode[i] = code;
    if (this.state[i] === ONLINE) this.state[i] = CLOSING;
    this.tcp.write(socket, closeFrame(code, reason));
    this.tcp.end(socket);
  }

  private send(i: number, payload: Uint8Array): void {
    this.tcp.write(this.sockets[i]!, clientFrame(Opcode.binary, payload));
    this.lastSent[i] = Date.now();
  }
}

/** The same bytes for every heartbeat: a frame without a timestamp. */
const HEARTBEAT = Buffer.from(encodeFrame(frames.heartbeat()));
