import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import {
  FrameType,
  PROTOCOL_VERSION,
  type Attrs,
  type ByeFrame,
  type CommandFrame,
  type DeviceInfo,
  type ErrorFrame,
  type ReconnectFrame,
  type ServerToHubFrame,
  type WelcomeFrame,
} from '../proto/frames.js';
import { decodeServerFrame, encodeValue } from '../src/protocol/codec.js';
import { hubAuthHeaderMap, hubCredentials } from '../src/auth/hub-signature.js';

/**
 * A hub over `ws`, for the simulator, the integration tests and the load tool: the signed
 * upgrade, hello → welcome, sequence numbers with cumulative acks and resend of unacknowledged
 * frames, command execution, heartbeats. It never writes to the console: everything is an event
 * or a promise. One instance is one hub with one boot id; `connect()` again after a close resumes
 * that boot (the welcome's `s` says what the server already has).
 */

export interface HubClientOptions {
  /** `ws://host:port`; `/hub/v1` is appended unless the URL already ends with it */
  url: string;
  hubId: string;
  secret: string;
  /** @default random: the boot id, kept across reconnects of this instance */
  boot?: string;
  /** firmware version sent in hello */
  fw?: string;
  /** extra upgrade headers, applied after (and so able to override) the signed ones */
  headers?: Record<string, string>;
  /** source address of the TCP connection (the load tool spreads over 127.0.0.0/8) */
  localAddress?: string;
  /** @default 10_000 (ms): upgrade plus welcome must finish within this */
  connectTimeoutMs?: number;
  /** @default true: send heartbeats at the welcome's `hb` interval (one timer per client) */
  heartbeat?: boolean;
  /** @default true: on welcome, resend unacknowledged frames newer than the welcome's `s` */
  autoResend?: boolean;
}

/** What a command handler answers; thrown errors become `{ ok: false, e: 'command_failed' }`. */
export type CommandOutcome = { ok: true; r?: unknown } | { ok: false; e: string; msg?: string };
export type CommandHandler = (cmd: CommandFrame) => CommandOutcome | Promise<CommandOutcome>;

export interface CloseInfo {
  code: number;
  reason: string;
}

/**
 * A failure seen by the client. `code` is the protocol's string code when the server gave one
 * (from the refused upgrade's JSON body or an error/bye frame), otherwise one of `closed`,
 * `not_connected`, `timeout`, `connect_failed`, `upgrade_refused`.
 */
export class HubClientError extends Error {
  override name = 'HubClientError';
  readonly code: string;
  /** HTTP status of a refused upgrade */
  readonly status: number | undefined;
  /** WebSocket close code, when the socket closed */
  readonly closeCode: number | undefined;
  /** the server's `tmp` flag of an error frame */
  readonly temporary: boolean | undefined;

  constructor(code: string, message: string, extra: { status?: number; closeCode?: number; temporary?: boolean; cause?: unknown } = {}) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.code = code;
    this.status = extra.status;
    this.closeCode = extra.closeCode;
    this.temporary = extra.temporary;
  }
}

export type HubClientEvents = {
  /** every valid frame from the server, before the client acts on it */
  frame: [ServerToHubFrame];
  welcome: [WelcomeFrame];
  command: [CommandFrame];
  /** error frames (named so: an `error` event without a listener would throw) */
  errorFrame: [ErrorFrame];
  bye: [ByeFrame];
  /** the server asks the hub to reconnect after `after` ms */
  reconnect: [ReconnectFrame];
  /** a frame the client could not decode; it is otherwise ignored */
  invalidFrame: [Error, Uint8Array];
  /** the socket closed (also after a failed connect) */
  close: [CloseInfo];
};

/** A sequenced frame (report, event, devices) until the server acknowledges it. */
interface Outgoing {
  seq: number;
  bytes: Buffer;
  settled: boolean;
  resolve: (seq: number) => void;
  reject: (err: Error) => void;
}

interface Waiter {
  match: (f: ServerToHubFrame) => boolean;
  resolve: (f: ServerToHubFrame) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

interface Connecting {
  resolve: (w: WelcomeFrame) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

const noop = () => {};

/** `patch` over `base`; nil removes the attribute (as on the server). */
function merged(base: Attrs | undefined, patch: Attrs): Attrs {
  const out: Attrs = { ...base };
  for (const k in patch) {
    const v = patch[k]!;
    if (v === null) delete out[k];
    else out[k] = v;
  }
  return out;
}

/** `ws://host:port` with `/hub/v1` appended unless it is there already. */
function hubEndpoint(url: string): string {
  const base = url.replace(/\/+$/, '');
  return base.endsWith('/hub/v1') ? base : `${base}/hub/v1`;
}

/** Marks a promise as handled so a caller may ignore it, while still returning it to be awaited. */
function quiet<T>(p: Promise<T>): Promise<T> {
  p.catch(noop);
  return p;
}

export class HubClient extends EventEmitter<HubClientEvents> {
  readonly hubId: string;
  readonly boot: string;
  /** may be replaced (re-provisioning) before the next `connect()` */
  secret: string;
  /** the devices' attributes as this hub knows them: merged from reports and `set` commands */
  readonly state = new Map<string, Attrs>();
  /** the welcome of the current session; null while not connected */
  welcome: WelcomeFrame | null = null;

  private readonly opts: HubClientOptions;
  private endpoint: string;
  private ws: WebSocket | null = null;
  /** increases per socket, so a late command answer never goes to a newer session */
  private generation = 0;
  private connecting: Connecting | null = null;
  private lastSeq = 0;
  private ackedSeq = 0;
  private readonly unacked: Outgoing[] = [];
  /** the sequence a `sequence_gap` resend started from, until an ack moves past it */
  private gapResentFrom = 0;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private readonly waiters = new Set<Waiter>();
  private lastServerCode: string | null = null;
  private closedPromise: Promise<CloseInfo> = Promise.resolve({ code: 0, reason: 'not connected yet' });
  private resolveClosed: (info: CloseInfo) => void = noop;
  private handler: CommandHandler = (cmd) => this.defaultHandler(cmd);

  constructor(opts: HubClientOptions) {
    super();
    this.opts = opts;
    this.hubId = opts.hubId;
    this.secret = opts.secret;
    this.boot = opts.boot ?? randomBytes(8).toString('base64url');
    this.endpoint = hubEndpoint(opts.url);
  }

  /** True between the welcome and the close. */
  get connected(): boolean {
    return this.welcome !== null && this.ws?.readyState === WebSocket.OPEN;
  }

  /** Resolves (never rejects) when the current (or last) socket closes. */
  get closed(): Promise<CloseInfo> {
    return this.closedPromise;
  }

  /** The last sequence number assigned; the next frame gets `lastSeq + 1`. */
  get seq(): number {
    return this.lastSeq;
  }

  /** The highest sequence number the server acknowledged in this boot. */
  get acked(): number {
    return this.ackedSeq;
  }

  /** Sequenced frames sent (or refused) but not acknowledged yet. */
  get unackedCount(): number {
    return this.unacked.length;
  }

  /**
   * Opens the socket with fresh signed headers, sends hello and resolves with the welcome.
   * `url`: connect to this node from now on (a hub failing over keeps its boot id and its
   * unacknowledged frames). Rejects with a HubClientError: `status` and the body's `code` when the
   * upgrade is refused; the server's code (bye or error frame) or `closed` when the socket closes
   * before the welcome.
   */
  connect(url?: string): Promise<WelcomeFrame> {
    if (this.ws) return quiet(Promise.reject(new HubClientError('already_connected', `hub ${this.hubId}: a socket is already open or opening`)));
    if (url !== undefined) this.endpoint = hubEndpoint(url);
    const headers = { ...hubAuthHeaderMap(hubCredentials(this.hubId, this.secret)), ...this.opts.headers };
    const timeoutMs = this.opts.connectTimeoutMs ?? 10_000;
    let ws: WebSocket;
    try {
      ws = new WebSocket(this.endpoint, {
        headers,
        perMessageDeflate: false,
        handshakeTimeout: timeoutMs,
        ...(this.opts.localAddress !== undefined ? { localAddress: this.opts.localAddress } : {}),
      });
    } catch (err) {
      // a URL ws cannot use
      return quiet(Promise.reject(new HubClientError('connect_failed', `hub ${this.hubId}: ${(err as Error).message}`, { cause: err })));
    }
    this.ws = ws;
    const generation = ++this.generation;
    this.lastServerCode = null;
    this.closedPromise = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });

    const welcome = new Promise<WelcomeFrame>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.failConnect(new HubClientError('timeout', `hub ${this.hubId}: no welcome within ${timeoutMs} ms`));
        ws.terminate();
      }, timeoutMs);
      timer.unref();
      this.connecting = { resolve, reject, timer };
    });

    ws.on('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      const refused = () => {
        const body = Buffer.concat(chunks).toString('utf8');
        let code = 'upgrade_refused';
        let message = body;
        try {
          const parsed = JSON.parse(body) as { code?: unknown; message?: unknown };
          if (typeof parsed.code === 'string') code = parsed.code;
          if (typeof parsed.message === 'string') message = parsed.message;
        } catch {
          // not JSON: keep the raw body as the message
        }
        this.failConnect(new HubClientError(code, `hub ${this.hubId}: upgrade refused with ${res.statusCode}: ${message}`, { status: res.statusCode }));
        ws.terminate();
      };
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', refused);
      res.on('error', refused);
    });
    ws.on('open', () => {
      const hello: Record<string, unknown> = { t: FrameType.hello, v: PROTOCOL_VERSION, b: this.boot };
      if (this.opts.fw !== undefined) hello.fw = this.opts.fw;
      ws.send(encodeValue(hello));
    });
    ws.on('message', (data, isBinary) => {
      if (generation !== this.generation) return;
      const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      if (!isBinary) {
        this.emit('invalidFrame', new Error('server sent a text frame'), bytes);
        return;
      }
      let frame: ServerToHubFrame;
      try {
        frame = decodeServerFrame(bytes);
      } catch (err) {
        this.emit('invalidFrame', err as Error, bytes);
        return;
      }
      this.onFrame(frame);
    });
    ws.on('error', (err) => {
      // a close always follows; before the welcome this is the reason connect() gives
      this.failConnect(new HubClientError('connect_failed', `hub ${this.hubId}: ${err.message}`, { cause: err }));
    });
    ws.on('close', (code, reason) => this.onClose(ws, code, reason.toString('utf8')));
    return quiet(welcome);
  }

  /** Sends a report; resolves with its sequence number once acknowledged. Merges `r` into `state`. */
  report(r: Record<string, Attrs>, ts?: number): Promise<number> {
    if (!this.connected) return this.notConnected();
    for (const d in r) this.state.set(d, merged(this.state.get(d), r[d]!));
    const frame: Record<string, unknown> = { t: FrameType.report, s: 0, r };
    if (ts !== undefined) frame.ts = ts;
    return this.sendSequenced(frame);
  }

  /** Sends a device event (button press, leak alarm); resolves once acknowledged. */
  event(d: string, e: string, p?: Attrs, ts?: number): Promise<number> {
    if (!this.connected) return this.notConnected();
    const frame: Record<string, unknown> = { t: FrameType.event, s: 0, d, e };
    if (p !== undefined) frame.p = p;
    if (ts !== undefined) frame.ts = ts;
    return this.sendSequenced(frame);
  }

  /** Sends the device list (`f: true`: `j` is complete) or joins and leaves; resolves once acknowledged. */
  devices(list: { j?: DeviceInfo[]; l?: string[]; f?: boolean }): Promise<number> {
    if (!this.connected) return this.notConnected();
    const frame: Record<string, unknown> = { t: FrameType.devices, s: 0 };
    if (list.f !== undefined) frame.f = list.f;
    if (list.j !== undefined) frame.j = list.j;
    if (list.l !== undefined) frame.l = list.l;
    return this.sendSequenced(frame);
  }

  /**
   * Sends every unacknowledged frame again, in order (after a reconnect with the same boot id, or
   * when the server reported a gap). Returns how many were sent.
   */
  resendUnacked(fromSeq = 0): number {
    if (!this.connected) return 0;
    let n = 0;
    for (const o of this.unacked) {
      if (o.seq < fromSeq) continue;
      this.ws!.send(o.bytes);
      n++;
    }
    return n;
  }

  /** Forgets unacknowledged frames (their promises reject with `closed` if still pending). */
  dropUnacked(): void {
    for (const o of this.unacked.splice(0)) this.settle(o, new HubClientError('closed', `frame ${o.seq} dropped`));
  }

  /** Replaces the command handler; the default one is `defaultHandler`. */
  onCommand(handler: CommandHandler): void {
    this.handler = handler;
  }

  /**
   * `set` merges the params (scalar attributes) into `state` and answers the device's new state;
   * any other method answers `command_failed`.
   */
  defaultHandler(cmd: CommandFrame): CommandOutcome {
    if (cmd.m !== 'set') return { ok: false, e: 'command_failed', msg: `method ${cmd.m} is not supported` };
    const next: Attrs = { ...this.state.get(cmd.d) };
    for (const [k, v] of Object.entries(cmd.p)) {
      if (v === null) delete next[k];
      else if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') next[k] = v;
      else return { ok: false, e: 'command_failed', msg: `attribute ${k} must be a scalar` };
    }
    this.state.set(cmd.d, next);
    return { ok: true, r: next };
  }

  heartbeat(): void {
    this.sendFrame({ t: FrameType.heartbeat, ts: Date.now() });
  }

  /** Encodes and sends any frame as is (no sequence bookkeeping): for protocol tests. */
  sendFrame(frame: object): boolean {
    return this.sendRaw(encodeValue(frame));
  }

  /** Sends bytes as they are: binary for bytes, a text frame for a string. False when not open. */
  sendRaw(bytes: Uint8Array | string): boolean {
    if (this.ws?.readyState !== WebSocket.OPEN) return false;
    this.ws.send(bytes, { binary: typeof bytes !== 'string' });
    return true;
  }

  /** Starts the closing handshake; resolves when the socket has closed. */
  close(code = 1000, reason = ''): Promise<CloseInfo> {
    const ws = this.ws;
    if (ws && ws.readyState !== WebSocket.CLOSED) {
      if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
      else ws.close(code, reason);
    }
    return this.closedPromise;
  }

  /** Sends bye (the hub leaves on purpose) and closes. */
  bye(reason?: string): Promise<CloseInfo> {
    this.sendFrame(reason === undefined ? { t: FrameType.bye } : { t: FrameType.bye, msg: reason });
    return this.close(1000, 'bye');
  }

  /** Drops the TCP connection without a closing handshake (a hub losing power). */
  terminate(): Promise<CloseInfo> {
    this.ws?.terminate();
    return this.closedPromise;
  }

  /**
   * Resolves with the first frame received after this call that matches; rejects on timeout or
   * when the socket closes first.
   */
  waitFor<F extends ServerToHubFrame>(match: (f: ServerToHubFrame) => f is F, timeoutMs?: number): Promise<F>;
  waitFor(match: (f: ServerToHubFrame) => boolean, timeoutMs?: number): Promise<ServerToHubFrame>;
  waitFor(match: (f: ServerToHubFrame) => boolean, timeoutMs = 5_000): Promise<ServerToHubFrame> {
    if (!this.ws) return quiet(Promise.reject(new HubClientError('not_connected', `hub ${this.hubId}: not connected`)));
    const p = new Promise<ServerToHubFrame>((resolve, reject) => {
      const waiter: Waiter = {
        match,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.delete(waiter);
          reject(new HubClientError('timeout', `hub ${this.hubId}: no matching frame within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      waiter.timer.unref();
      this.waiters.add(waiter);
    });
    return quiet(p);
  }

  private onFrame(frame: ServerToHubFrame): void {
    this.emit('frame', frame);
    for (const w of this.waiters) {
      if (!w.match(frame)) continue;
      this.waiters.delete(w);
      clearTimeout(w.timer);
      w.resolve(frame);
    }
    switch (frame.t) {
      case FrameType.welcome:
        this.onWelcome(frame);
        return;
      case FrameType.ack:
        this.onAck(frame.s);
        return;
      case FrameType.command:
        this.emit('command', frame);
        this.runCommand(frame);
        return;
      case FrameType.error:
        this.onError(frame);
        return;
      case FrameType.bye:
        if (frame.e !== undefined) this.lastServerCode = frame.e;
        this.emit('bye', frame);
        return;
      case FrameType.reconnect:
        this.emit('reconnect', frame);
        return;
      case FrameType.heartbeat:
        return;
    }
  }

  private onWelcome(welcome: WelcomeFrame): void {
    if (this.welcome !== null || !this.connecting) return;
    this.welcome = welcome;
    // what the server already has for this boot is acknowledged; numbering continues after both
    this.onAck(welcome.s);
    this.lastSeq = Math.max(this.lastSeq, welcome.s);
    if (this.opts.autoResend !== false) this.resendUnacked(welcome.s + 1);
    if (this.opts.heartbeat !== false && welcome.hb > 0) {
      this.heartbeatTimer = setInterval(() => this.heartbeat(), welcome.hb);
      this.heartbeatTimer.unref();
    }
    const { resolve, timer } = this.connecting;
    clearTimeout(timer);
    this.connecting = null;
    this.emit('welcome', welcome);
    resolve(welcome);
  }

  private onAck(s: number): void {
    if (s > this.ackedSeq) {
      this.ackedSeq = s;
      this.gapResentFrom = 0;
    }
    while (this.unacked.length > 0 && this.unacked[0]!.seq <= s) this.settle(this.unacked.shift()!, null);
  }

  private onError(frame: ErrorFrame): void {
    this.lastServerCode = frame.e;
    this.emit('errorFrame', frame);
    if (this.connecting && this.welcome === null) {
      // the hello was refused (unsupported_version, ...): this socket will not become a session
      this.failConnect(new HubClientError(frame.e, `hub ${this.hubId}: ${frame.msg ?? frame.e}`, { temporary: frame.tmp }));
      this.ws?.terminate();
      return;
    }
    if (frame.ref === undefined) return;
    if (frame.e === 'sequence_gap') {
      // the server expects `ref`: resend from there, once until an ack moves past it
      if (this.gapResentFrom !== frame.ref) {
        this.gapResentFrom = frame.ref;
        this.resendUnacked(frame.ref);
      }
      return;
    }
    // refused (rate_limited, busy, ...): the caller learns it; the frame stays queued for a resend
    const o = this.unacked.find((x) => x.seq === frame.ref);
    if (o) this.settle(o, new HubClientError(frame.e, `frame ${o.seq} refused: ${frame.msg ?? frame.e}`, { temporary: frame.tmp }));
  }

  private runCommand(cmd: CommandFrame): void {
    const generation = this.generation;
    const answer = (out: CommandOutcome) => {
      if (generation !== this.generation || !this.connected) return;
      const frame: Record<string, unknown> = { t: FrameType.result, id: cmd.id, ok: out.ok };
      if (out.ok) {
        if (out.r !== undefined) frame.r = out.r;
      } else {
        frame.e = out.e;
        if (out.msg !== undefined) frame.msg = out.msg;
      }
      this.sendFrame(frame);
    };
    const failed = (err: unknown) => answer({ ok: false, e: 'command_failed', msg: err instanceof Error ? err.message : String(err) });
    let out: CommandOutcome | Promise<CommandOutcome>;
    try {
      out = this.handler(cmd);
    } catch (err) {
      failed(err);
      return;
    }
    // a synchronous answer goes out at once, before anything the handler queued after it
    if (out instanceof Promise) out.then(answer, failed).catch(noop);
    else answer(out);
  }

  private sendSequenced(frame: Record<string, unknown>): Promise<number> {
    const seq = ++this.lastSeq;
    frame.s = seq;
    const bytes = encodeValue(frame);
    const p = new Promise<number>((resolve, reject) => {
      this.unacked.push({ seq, bytes, settled: false, resolve, reject });
    });
    this.ws!.send(bytes);
    return quiet(p);
  }

  private settle(o: Outgoing, err: Error | null): void {
    if (o.settled) return;
    o.settled = true;
    if (err) o.reject(err);
    else o.resolve(o.seq);
  }

  private notConnected(): Promise<number> {
    return quiet(Promise.reject(new HubClientError('not_connected', `hub ${this.hubId}: not connected`)));
  }

  private failConnect(err: HubClientError): void {
    const c = this.connecting;
    if (!c) return;
    this.connecting = null;
    clearTimeout(c.timer);
    c.reject(err);
  }

  private onClose(ws: WebSocket, code: number, reason: string): void {
    if (ws !== this.ws) return;
    this.ws = null;
    this.welcome = null;
    this.generation++;
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
    const because = this.lastServerCode ?? (reason || 'closed');
    const err = () => new HubClientError(this.lastServerCode ?? 'closed', `hub ${this.hubId}: socket closed (${code} ${because})`, { closeCode: code });
    this.failConnect(err());
    // pending frames stay queued for resendUnacked(); their callers learn the outcome is unknown
    for (const o of this.unacked) this.settle(o, err());
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.reject(err());
    }
    this.waiters.clear();
    const info = { code, reason };
    this.resolveClosed(info);
    this.emit('close', info);
  }
}
