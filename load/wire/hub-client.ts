import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { FrameType, type Attrs, type ByeFrame, type CommandFrame, type DeviceInfo, type ErrorFrame, type ReconnectFrame, type ServerToHubFrame, type WelcomeFrame } from '../../src/index.js';
import { mergeAttrs } from './devices.js';
import { decodeServer, encodeFrame, frames, type CommandOutcome } from './frames.js';
import { HubClientError, dial, hubEndpoint, signedHeaders } from './handshake.js';
import { Outbox } from './outbox.js';
import { ResendPacer } from './resend-pacer.js';
import { FrameWaiters } from './waiters.js';

export { HubClientError, type CommandOutcome };

/**
 * The full hub over `ws`, for the simulator, the chaos tool, the fuzzer's final check and the
 * tests: the signed upgrade, hello → welcome, sequence numbers with cumulative acks and resend of
 * unacknowledged frames, command execution, heartbeats. It never writes to the console: everything
 * is an event or a promise. One instance is one hub with one boot id; `connect()` again after a
 * close resumes that boot (the welcome's `s` says what the server already has).
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
  /** @default 10_000 (ms): upgrade plus welcome must finish within this */
  connectTimeoutMs?: number;
  /** @default true: send heartbeats at the welcome's `hb` interval (one timer per client) */
  heartbeat?: boolean;
  /** @default true: on welcome, resend unacknowledged frames newer than the welcome's `s` */
  autoResend?: boolean;
}

export type CommandHandler = (cmd: CommandFrame) => CommandOutcome | Promise<CommandOutcome>;

export interface CloseInfo {
  code: number;
  reason: string;
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

interface Connecting {
  resolve: (w: WelcomeFrame) => void;
  reject: (err: Error) => void;
  settle: () => void;
}

const noop = () => {};

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
  private readonly outbox = new Outbox();
  private heartbeatTimer: NodeJS.Timeout | null = null;
  /** sends the backlog after a reconnect, a gap or a refusal, paced (frames behind it wait their turn) */
  private readonly resend = new ResendPacer(this.outbox, (bytes) => this.ws?.send(bytes));
  private readonly waiters = new FrameWaiters();
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

  /** The last sequence number assigned; the next frame gets `seq + 1`. */
  get seq(): number {
    return this.outbox.seq;
  }

  /** The highest sequence number the server acknowledged in this boot. */
  get acked(): number {
    return this.outbox.acked;
  }

  /** Sequenced frames sent (or refused) but not acknowledged yet. */
  get unackedCount(): number {
    return this.outbox.size;
  }

  /**
   * Opens the socket with fresh signed headers, sends hello and resolves with the welcome.
   * `url`: connect to this node from now on (a hub failing over keeps its boot id and its
   * unacknowledged frames). Rejects with a HubClientError (codes in handshake.ts).
   */
  connect(url?: string): Promise<WelcomeFrame> {
    if (this.ws) return quiet(Promise.reject(new HubClientError('already_connected', `hub ${this.hubId}: a socket is already open or opening`)));
    if (url !== undefined) this.endpoint = hubEndpoint(url);
    const headers = { ...signedHeaders(this.hubId, this.secret), ...this.opts.headers };
    const timeoutMs = this.opts.connectTimeoutMs ?? 10_000;
    const attempt = dial({ url: this.endpoint, hubId: this.hubId, headers, timeoutMs }, (err) => this.failConnect(err));
    if (attempt instanceof HubClientError) return quiet(Promise.reject(attempt));
    const { ws } = attempt;
    this.ws = ws;
    const generation = ++this.generation;
    this.lastServerCode = null;
    this.closedPromise = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    const welcome = new Promise<WelcomeFrame>((resolve, reject) => {
      this.connecting = { resolve, reject, settle: attempt.settle };
    });
    ws.on('open', () => ws.send(encodeFrame(frames.hello(this.boot, this.opts.fw))));
    ws.on('message', (data, isBinary) => {
      if (generation !== this.generation) return;
      const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      if (!isBinary) {
        this.emit('invalidFrame', new Error('server sent a text frame'), bytes);
        return;
      }
      // as PROTOCOL.md §1 lets a hub: a frame over the welcome's max is refused unread
      if (this.welcome !== null && bytes.length > this.welcome.max) {
        this.emit('invalidFrame', new Error(`frame of ${bytes.length} bytes over the welcome's max of ${this.welcome.max}`), bytes);
        return;
      }
      let frame: ServerToHubFrame;
      try {
        frame = decodeServer(bytes);
      } catch (err) {
        this.emit('invalidFrame', err as Error, bytes);
        return;
      }
      this.onFrame(frame);
    });
    ws.on('close', (code, reason) => this.onClose(ws, code, reason.toString('utf8')));
    return quiet(welcome);
  }

  /** Sends a report; resolves with its sequence number once acknowledged. Merges `r` into `state`. */
  report(r: Record<string, Attrs>, ts?: number): Promise<number> {
    if (!this.connected) return this.notConnected();
    for (const d in r) {
      const next = mergeAttrs(this.state.get(d), r[d]!);
      if (typeof next !== 'string') this.state.set(d, next);
    }
    return this.sendSequenced((s) => encodeFrame(frames.report(s, r, ts)));
  }

  /** Sends a device event (button press, leak alarm); resolves once acknowledged. */
  event(d: string, e: string, p?: Attrs, ts?: number): Promise<number> {
    if (!this.connected) return this.notConnected();
    return this.sendSequenced((s) => encodeFrame(frames.event(s, d, e, p, ts)));
  }

  /** Sends the device list (`f: true`: `j` is complete) or joins and leaves; resolves once acknowledged. */
  devices(list: { j?: DeviceInfo[]; l?: string[]; f?: boolean }): Promise<number> {
    if (!this.connected) return this.notConnected();
    return this.sendSequenced((s) => encodeFrame(frames.devices(s, list)));
  }

  /**
   * Sends every unacknowledged frame from `fromSeq` again, in order and paced (ResendPacer: 100 at
   * once, then 25 every 500 ms; frames sent meanwhile go in their turn), after a reconnect with the
   * same boot id or when the server reported a gap. Returns how many are queued for it.
   */
  resendUnacked(fromSeq = 0): number {
    return this.connected ? this.resend.from(fromSeq) : 0;
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
    const next = mergeAttrs(this.state.get(cmd.d), cmd.p);
    if (typeof next === 'string') return { ok: false, e: 'command_failed', msg: next };
    this.state.set(cmd.d, next);
    return { ok: true, r: next };
  }

  heartbeat(): void {
    this.sendFrame(frames.heartbeat(Date.now()));
  }

  /** Encodes and sends any frame as is (no sequence bookkeeping): for protocol tests. */
  sendFrame(frame: object): boolean {
    return this.sendRaw(encodeFrame(frame));
  }

  /** Sends bytes as they are: binary for bytes, a text frame for a string. False when not open. */
  sendRaw(bytes: Uint8Array | string): boolean {
    if (this.ws?.readyState !== WebSocket.OPEN) return false;
    this.ws.send(bytes, { binary: typeof bytes !== 'string' });
    return true;
  }

  /** A WebSocket ping (keep-alive as some firmware does it, or a flood for tests). False when not open. */
  ping(): boolean {
    if (this.ws?.readyState !== WebSocket.OPEN) return false;
    this.ws.ping();
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
    this.sendFrame(frames.bye(reason));
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
    return quiet(this.waiters.wait(match, timeoutMs, this.hubId));
  }

  private onFrame(frame: ServerToHubFrame): void {
    this.emit('frame', frame);
    this.waiters.offer(frame);
    switch (frame.t) {
      case FrameType.welcome:
        this.onWelcome(frame);
        return;
      case FrameType.ack:
        this.outbox.ack(frame.s);
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
    this.outbox.resume(welcome.s);
    if (this.opts.autoResend !== false) this.resendUnacked(welcome.s + 1);
    if (this.opts.heartbeat !== false && welcome.hb > 0) {
      this.heartbeatTimer = setInterval(() => this.heartbeat(), welcome.hb);
      this.heartbeatTimer.unref();
    }
    const { resolve, settle } = this.connecting;
    settle();
    this.connecting = null;
    this.emit('welcome', welcome);
    resolve(welcome);
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
      if (this.outbox.gapAt(frame.ref)) this.resendUnacked(frame.ref);
      return;
    }
    // refused (rate_limited, busy, ...): the caller learns it; the frame stays queued for a resend
    this.outbox.refused(frame.ref, new HubClientError(frame.e, `frame ${frame.ref} refused: ${frame.msg ?? frame.e}`, { temporary: frame.tmp }));
    // refused for now, the server still expects it: sent again, paced. Left alone, every later frame met
    // sequence_gap at a number already resent once, and the hub was never acked again (review "slowdisk")
    // whatever autoResend says (it is about the welcome): the chaos hubs, which resend on their own
    // after a reconnect, never sent a refused frame again (review "diff11")
    if (frame.tmp) this.resend.refused(frame.ref);
  }

  private runCommand(cmd: CommandFrame): void {
    const generation = this.generation;
    const answer = (out: CommandOutcome) => {
      if (generation !== this.generation || !this.connected) return;
      this.sendFrame(frames.result(cmd.id, out));
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

  private sendSequenced(encode: (seq: number) => Buffer): Promise<number> {
    const { bytes, acked } = this.outbox.add(encode);
    // behind a paced resend it goes in its turn: sent now, it would reach the server out of order
    if (!this.resend.running) this.ws!.send(bytes);
    return quiet(acked);
  }

  private notConnected(): Promise<number> {
    return quiet(Promise.reject(new HubClientError('not_connected', `hub ${this.hubId}: not connected`)));
  }

  private failConnect(err: HubClientError): void {
    const c = this.connecting;
    if (!c) return;
    this.connecting = null;
    c.settle();
    c.reject(err);
  }

  private onClose(ws: WebSocket, code: number, reason: string): void {
    if (ws !== this.ws) return;
    this.ws = null;
    this.welcome = null;
    this.generation++;
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
    this.resend.stop();
    const because = this.lastServerCode ?? (reason || 'closed');
    const err = () => new HubClientError(this.lastServerCode ?? 'closed', `hub ${this.hubId}: socket closed (${code} ${because})`, { closeCode: code });
    this.failConnect(err());
    // pending frames stay queued for resendUnacked(); their callers learn the outcome is unknown
    this.outbox.closed(err);
    this.waiters.rejectAll(err);
    const info = { code, reason };
    this.resolveClosed(info);
    this.emit('close', info);
  }
}
