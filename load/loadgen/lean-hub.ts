import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { FrameType, type Attrs, type DeviceInfo } from '../../src/index.js';
import { encodeFrame, frames, peekServer } from '../wire/frames.js';
import { HubClientError, dial, signedHeaders } from '../wire/handshake.js';

/**
 * A lean hub for load and benchmarks: the signed upgrade, hello → welcome, sequenced reports
 * without a resend queue, and commands answered at once with their parameters (`r = p`). It keeps
 * no timers of its own (the worker sends heartbeats in one sweep) and reads server frames without
 * validation (wire/frames.ts `peekServer`), so thousands fit in one process and the hub side costs
 * as little as it can. What all hubs of a target share (endpoint, callbacks) is one `LeanTarget`;
 * a hub holds only its ids, its socket and a few numbers. The same class drives the real server
 * and the relay floor, so both see the same client.
 */

/** What every hub of one target shares. */
export interface LeanTarget {
  /** the full endpoint: `ws://host:port/hub/v1` (or `/idle` for the bare-socket floor) */
  endpoint: string;
  /** false: no signature (the relay floor): hub and home go as plain headers */
  signed: boolean;
  /** @default true; false: a bare socket that is done once open (the idle-socket floor) */
  hello: boolean;
  /** upgrade plus welcome, ms */
  connectTimeoutMs: number;
  /**
   * Source address and port of each connection attempt (127.0.0.0/8 spreading). An explicit port
   * matters at scale: bind() to an address with port 0 makes the kernel search that address's
   * bound ports, which grows with every socket (tens of µs each at 15,000 sockets).
   */
  source(): { address: string; port?: number } | undefined;
  events: LeanHubEvents;
}

export interface LeanHubEvents {
  /** the session closed after a welcome (not called for failed connects) */
  onClose(hub: LeanHub, code: number): void;
  /** an error frame from the server (busy, rate_limited, sequence_gap, ...) */
  onErrorFrame(hub: LeanHub, code: string): void;
  /** a command arrived and was answered */
  onCommand(hub: LeanHub): void;
  /** an ack arrived */
  onAck(hub: LeanHub, s: number): void;
  /** an ack covered the newest unacknowledged report: `ms` since that report was sent */
  onReportAck(hub: LeanHub, ms: number): void;
}

export class LeanHub {
  /** heartbeat interval from the welcome, ms (0 before it) */
  hb = 0;
  /** when this hub last sent a frame (Date.now()), for the worker's heartbeat sweep */
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
  private onClosed: (() => void) | null = null;

  constructor(
    private readonly target: LeanTarget,
    readonly hubId: string,
    readonly homeId: string,
    /** the hub's secret; may be set after construction (provisioned later), before `connect()` */
    public secret: string,
    /** the caller's index of this hub (its slot) */
    readonly index: number,
  ) {}

  get connected(): boolean {
    return this.welcomed && this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  /**
   * Opens a new session (a fresh boot id each time); resolves with the ms from dial to welcome.
   * Rejects with a HubClientError (codes in wire/handshake.ts).
   */
  connect(): Promise<number> {
    if (this.ws) return Promise.reject(new HubClientError('already_connected', `${this.hubId}: already connected`));
    const t = this.target;
    const started = performance.now();
    const headers = t.signed ? signedHeaders(this.hubId, this.secret) : { 'x-hub-id': this.hubId, 'x-hub-home': this.homeId };
    return new Promise<number>((resolve, reject) => {
      let settled = false;
      let endDeadline = () => {};
      const fail = (err: HubClientError) => {
        if (settled) return;
        settled = true;
        endDeadline();
        reject(err);
      };
      const welcomed = () => {
        settled = true;
        endDeadline();
        resolve(performance.now() - started);
      };
      const attempt = dial({ url: t.endpoint, hubId: this.hubId, headers, timeoutMs: t.connectTimeoutMs, source: t.source() }, fail);
      if (attempt instanceof HubClientError) return reject(attempt);
      endDeadline = attempt.settle;
      const ws = attempt.ws;
      this.ws = ws;
      this.welcomed = false;
      this.seq = 0;
      this.reportSeq = 0;
      ws.on('open', () => {
        if (t.hello) this.send(encodeFrame(frames.hello(randomBytes(6).toString('base64url'))));
        else welcomed();
      });
      ws.on('close', (code) => {
        if (this.ws === ws) this.ws = null;
        this.onClosed?.();
        this.onClosed = null;
        const wasOnline = this.welcomed;
        this.welcomed = false;
        fail(new HubClientError('closed', `${this.hubId}: closed (${code}) before the welcome`, { closeCode: code }));
        if (wasOnline) t.events.onClose(this, code);
      });
      ws.on('message', (data: Buffer) => {
        const f = peekServer(data);
        if (f === null) return;
        switch (f.t) {
          case FrameType.welcome:
            if (settled) return;
            this.welcomed = true;
            this.hb = typeof f.hb === 'number' ? f.hb : 0;
            this.seq = typeof f.s === 'number' ? f.s : 0;
            welcomed();
            return;
          case FrameType.command:
            // answered at once: the result carries the parameters back as the device's new state
            if (typeof f.id === 'number') this.send(encodeFrame(frames.result(f.id, { ok: true, r: f.p })));
            t.events.onCommand(this);
            return;
          case FrameType.ack: {
            const s = typeof f.s === 'number' ? f.s : 0;
            if (this.reportSeq > 0 && s >= this.reportSeq) {
              t.events.onReportAck(this, performance.now() - this.reportAt);
              this.reportSeq = 0;
            }
            t.events.onAck(this, s);
            return;
          }
          case FrameType.error: {
            const code = typeof f.e === 'string' ? f.e : 'unknown';
            // before the welcome the hello was refused; after it, a refused frame leaves a hole:
            // number the next frame where the server expects it
            if (!settled) fail(new HubClientError(code, `${this.hubId}: ${code} before the welcome`));
            else if (typeof f.ref === 'number' && (code === 'sequence_gap' || f.ref <= this.seq)) this.seq = f.ref - 1;
            t.events.onErrorFrame(this, code);
            return;
          }
          case FrameType.bye:
            if (!settled) fail(new HubClientError(typeof f.e === 'string' ? f.e : 'closed', `${this.hubId}: bye ${String(f.e ?? '')} before the welcome`));
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
    if (!this.send(encodeFrame(frames.report(s, r, ts)))) return false;
    this.reportSeq = s;
    this.reportAt = performance.now();
    return true;
  }

  /** Sends the complete device list. */
  devices(j: DeviceInfo[]): boolean {
    if (!this.connected) return false;
    return this.send(encodeFrame(frames.devices(++this.seq, { f: true, j })));
  }

  heartbeat(): boolean {
    return this.send(encodeFrame(frames.heartbeat()));
  }

  /** Drops the TCP connection without a closing handshake (power loss, network cut); resolves once closed. */
  terminate(): Promise<void> {
    const ws = this.ws;
    if (!ws) return Promise.resolve();
    const previous = this.onClosed;
    const closed = new Promise<void>((resolve) => {
      this.onClosed = () => {
        previous?.();
        resolve();
      };
    });
    ws.terminate();
    return closed;
  }

  /** A clean close with bye. */
  bye(): void {
    if (!this.ws) return;
    this.send(encodeFrame(frames.bye()));
    this.ws.close(1000, 'bye');
  }

  private send(bytes: Buffer): boolean {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(bytes, { binary: true });
    this.lastSent = Date.now();
    return true;
  }
}
