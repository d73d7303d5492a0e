import { randomBytes } from 'node:crypto';
import { Unpackr } from 'msgpackr';
import WebSocket from 'ws';
import { FrameType, PROTOCOL_VERSION, type Attrs, type DeviceInfo } from '../proto/frames.js';
import { encodeValue } from '../src/protocol/codec.js';
import { hubAuthHeaderMap, hubCredentials } from '../src/auth/hub-signature.js';

/**
 * A lean hub for load and benchmarks: the signed upgrade, hello → welcome, sequenced reports
 * without a resend queue, and commands answered at once with their parameters (`r = p`). It keeps
 * no timers of its own (the fleet sends heartbeats in one sweep) and decodes server frames
 * without validation, so thousands fit in one process and the hub side costs as little as it can.
 * The same class drives the real server and the relay floor, so both see the same client.
 */

export interface LeanHubOptions {
  /** `ws://host:port` of a node (or the relay floor); `/hub/v1` is appended */
  url: string;
  hubId: string;
  homeId: string;
  /** the hub secret; null: no signature (the relay floor), the hub and home go as plain headers */
  secret: string | null;
  /**
   * Source address and port of each connection attempt (127.0.0.0/8 spreading). An explicit port
   * matters at scale: bind() to an address with port 0 makes the kernel search that address's
   * bound ports, which grows with every socket (tens of µs each at 15,000 sockets).
   */
  source?: () => { address: string; port?: number } | undefined;
  /** @default 10_000 (ms): upgrade plus welcome */
  connectTimeoutMs?: number;
  /** @default '/hub/v1' */
  path?: string;
  /** @default true; false: a bare socket that is done once open (the idle-socket floor) */
  hello?: boolean;
}

export interface LeanHubEvents {
  /** the session closed after a welcome (not called for failed connects) */
  onClose?(hub: LeanHub, code: number): void;
  /** an error frame from the server (busy, rate_limited, sequence_gap, ...) */
  onErrorFrame?(hub: LeanHub, code: string): void;
  /** a command arrived and was answered */
  onCommand?(hub: LeanHub): void;
  /** an ack arrived */
  onAck?(hub: LeanHub, s: number): void;
  /** an ack covered the newest unacknowledged report: `ms` since that report was sent */
  onReportAck?(hub: LeanHub, ms: number): void;
}

/** A failed connect: `code` is the server's string code, an errno (`ECONNREFUSED`) or `timeout`/`closed`. */
export class ConnectError extends Error {
  override name = 'ConnectError';
  constructor(
    readonly code: string,
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

interface ServerFrame {
  t?: number;
  id?: number;
  p?: unknown;
  s?: number;
  e?: string;
  ref?: number;
  hb?: number;
}

export class LeanHub {
  readonly hubId: string;
  readonly homeId: string;
  /** may be set after construction (provisioned later), before `connect()` */
  secret: string | null;
  /** heartbeat interval from the welcome, ms (0 before it) */
  hb = 0;
  /** when this hub last sent a frame (Date.now()), for the fleet's heartbeat sweep */
  lastSent = 0;
  private ws: WebSocket | null = null;
  private welcomed = false;
  private seq = 0;
  /**
   * The newest unacknowledged report: its sequence number (0: none) and send time
   * (performance.now()). Two numbers per hub, not a queue: an ack covering several reports
   * measures the newest of them.
   */
  private reportSeq = 0;
  private reportAt = 0;
  private readonly url: string;
  private closedWaiters: Array<() => void> = [];

  constructor(
    private readonly opts: LeanHubOptions,
    private readonly events: LeanHubEvents = {},
  ) {
    this.hubId = opts.hubId;
    this.homeId = opts.homeId;
    this.secret = opts.secret;
    this.url = `${opts.url.replace(/\/+$/, '')}${opts.path ?? '/hub/v1'}`;
  }

  get connected(): boolean {
    return this.welcomed && this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  /** Opens a new session (a fresh boot id each time); resolves with the ms from dial to welcome. */
  connect(): Promise<number> {
    if (this.ws) return Promise.reject(new ConnectError('already_connected', `${this.hubId}: already connected`));
    const started = performance.now();
    const headers =
      this.secret === null
        ? { 'x-hub-id': this.hubId, 'x-hub-home': this.homeId }
        : hubAuthHeaderMap(hubCredentials(this.hubId, this.secret));
    const timeoutMs = this.opts.connectTimeoutMs ?? 10_000;
    const boot = randomBytes(6).toString('base64url');
    const src = this.opts.source?.();
    return new Promise<number>((resolve, reject) => {
      let settled = false;
      const fail = (err: ConnectError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(err);
      };
      let ws: WebSocket;
      try {
        ws = new WebSocket(this.url, {
          headers,
          perMessageDeflate: false,
          skipUTF8Validation: true,
          handshakeTimeout: timeoutMs,
          ...(src !== undefined ? { localAddress: src.address, ...(src.port !== undefined ? { localPort: src.port } : {}) } : {}),
        });
      } catch (err) {
        reject(new ConnectError('connect_failed', `${this.hubId}: ${(err as Error).message}`));
        return;
      }
      this.ws = ws;
      this.welcomed = false;
      this.seq = 0;
      this.reportSeq = 0;
      const timer = setTimeout(() => {
        fail(new ConnectError('timeout', `${this.hubId}: no welcome within ${timeoutMs} ms`));
        ws.terminate();
      }, timeoutMs);
      ws.on('unexpected-response', (_req, res) => {
        const chunks: Buffer[] = [];
        const done = () => {
          let code = `http_${res.statusCode}`;
          const text = Buffer.concat(chunks).toString('utf8');
          try {
            const body = JSON.parse(text) as { code?: unknown };
            if (typeof body.code === 'string') code = body.code;
          } catch {
            // not JSON: keep the status as the code
          }
          fail(new ConnectError(code, `${this.hubId}: upgrade refused with ${res.statusCode}: ${text.slice(0, 200)}`, res.statusCode));
          ws.terminate();
        };
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', done);
        res.on('error', done);
      });
      ws.on('open', () => {
        if (this.opts.hello !== false) {
          this.send({ t: FrameType.hello, v: PROTOCOL_VERSION, b: boot });
          return;
        }
        settled = true;
        clearTimeout(timer);
        resolve(performance.now() - started);
      });
      ws.on('error', (err: NodeJS.ErrnoException) => fail(new ConnectError(err.code ?? 'connect_failed', `${this.hubId}: ${err.message}`)));
      ws.on('close', (code) => {
        if (this.ws === ws) this.ws = null;
        for (const w of this.closedWaiters.splice(0)) w();
        const wasOnline = this.welcomed;
        this.welcomed = false;
        fail(new ConnectError('closed', `${this.hubId}: closed (${code}) before the welcome`));
        if (wasOnline) this.events.onClose?.(this, code);
      });
      ws.on('message', (data: Buffer) => {
        let f: ServerFrame;
        try {
          f = unpackr.unpack(data) as ServerFrame;
        } catch {
          return;
        }
        switch (f.t) {
          case FrameType.welcome:
            if (settled) return;
            this.welcomed = true;
            this.hb = f.hb ?? 0;
            this.seq = f.s ?? 0;
            settled = true;
            clearTimeout(timer);
            resolve(performance.now() - started);
            return;
          case FrameType.command:
            // answered at once: the result carries the parameters back as the device's new state
            this.send({ t: FrameType.result, id: f.id, ok: true, r: f.p });
            this.events.onCommand?.(this);
            return;
          case FrameType.ack:
            if (this.reportSeq > 0 && (f.s ?? 0) >= this.reportSeq) {
              this.events.onReportAck?.(this, performance.now() - this.reportAt);
              this.reportSeq = 0;
            }
            this.events.onAck?.(this, f.s ?? 0);
            return;
          case FrameType.error:
            // a refused frame leaves a hole: number the next frame where the server expects it
            if (typeof f.ref === 'number' && (f.e === 'sequence_gap' || f.ref <= this.seq)) this.seq = f.ref - 1;
            this.events.onErrorFrame?.(this, f.e ?? 'unknown');
            return;
          case FrameType.bye:
            if (!settled) fail(new ConnectError(f.e ?? 'bye', `${this.hubId}: bye ${f.e ?? ''} before the welcome`));
            return;
          default:
            return;
        }
      });
    });
  }

  /** Sends a report of changed attributes; false when not connected. */
  report(r: Record<string, Attrs>, ts?: number): boolean {
    if (!this.connected) return false;
    const s = ++this.seq;
    if (!this.send(ts === undefined ? { t: FrameType.report, s, r } : { t: FrameType.report, s, r, ts })) return false;
    this.reportSeq = s;
    this.reportAt = performance.now();
    return true;
  }

  /** Sends the complete device list. */
  devices(j: DeviceInfo[]): boolean {
    if (!this.connected) return false;
    return this.send({ t: FrameType.devices, s: ++this.seq, f: true, j });
  }

  heartbeat(): boolean {
    return this.send({ t: FrameType.heartbeat });
  }

  /** Drops the TCP connection without a closing handshake (power loss, network cut); resolves once closed. */
  terminate(): Promise<void> {
    const ws = this.ws;
    if (!ws) return Promise.resolve();
    const closed = new Promise<void>((resolve) => this.closedWaiters.push(resolve));
    ws.terminate();
    return closed;
  }

  /** A clean close with bye. */
  bye(): void {
    if (!this.ws) return;
    this.send({ t: FrameType.bye });
    this.ws.close(1000, 'bye');
  }

  private send(frame: object): boolean {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(encodeValue(frame), { binary: true });
    this.lastSent = Date.now();
    return true;
  }
}
