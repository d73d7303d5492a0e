import WebSocket from 'ws';
import { CloseCode } from '../../proto/errors.js';
import { FrameType } from '../../proto/frames.js';
import { hubEndpoint, signedHeaders } from '../wire/handshake.js';
import { unpackStrict } from './msgpack.js';
import { upgrade } from './upgrade.js';
import { Wakeup } from './wakeup.js';

/**
 * One raw hub socket for the fuzzer: the signed upgrade of load/wire (or a hostile one), then
 * bytes out as given and every server frame in, decoded by the fuzzer's own strict reader. Unlike
 * HubClient it keeps no protocol state of its own: the fuzzer decides what is sent, the connection
 * only collects what comes back, and a refused upgrade is a result with its body as sent.
 */

export type ServerFrame = Record<string, unknown> & { t: number };

export type OpenResult =
  | { kind: 'open'; conn: HubConn }
  | { kind: 'refused'; status: number; body: string }
  | { kind: 'failed'; message: string };

export interface Inbound {
  /** decoded frame, or null for a text message or bytes the strict reader refused */
  frame: ServerFrame | null;
  raw: Uint8Array | string;
  /** why `frame` is null */
  problem?: string;
}

export interface HubConnOptions {
  /** ws://host:port */
  url: string;
  hubId: string;
  secret: string;
  /** header overrides applied after the signed ones; null removes a header */
  headers?: Record<string, string | null>;
  /** query string appended to /hub/v1 (without `?`) */
  query?: string;
  /** send no signed headers at all (credentials only in `query`, or none) */
  unsigned?: boolean;
  timeoutMs?: number;
}

export class HubConn {
  /** every message received, in order */
  readonly inbox: Inbound[] = [];
  closed: { code: number; reason: string } | null = null;
  /** the fuzzer dropped this socket itself */
  terminated = false;
  /** called for each message as it arrives (the invariant checks) */
  onMessage: ((m: Inbound) => void) | null = null;
  private readonly wakeup = new Wakeup();

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      let m: Inbound;
      if (!isBinary) m = { frame: null, raw: bytes.toString('utf8'), problem: 'server sent a text message to a hub' };
      else {
        const raw = new Uint8Array(bytes);
        try {
          const v = unpackStrict(raw);
          if (typeof v !== 'object' || v === null || Array.isArray(v) || typeof (v as { t?: unknown }).t !== 'number') m = { frame: null, raw, problem: 'server frame is not a map with a numeric t' };
          else m = { frame: v as ServerFrame, raw };
        } catch (err) {
          m = { frame: null, raw, problem: `server frame does not decode: ${(err as Error).message}` };
        }
      }
      this.inbox.push(m);
      this.onMessage?.(m);
      this.wakeup.poke();
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString('utf8') };
      this.wakeup.poke();
    });
    ws.on('error', () => {
      // a close event follows
    });
  }

  /** Opens a socket; the upgrade's refusal (status and body) is a result, not an error. */
  static async open(opts: HubConnOptions): Promise<OpenResult> {
    const signed = opts.unsigned ? {} : signedHeaders(opts.hubId, opts.secret);
    const headers: Record<string, string> = { ...signed };
    for (const [k, v] of Object.entries(opts.headers ?? {})) {
      if (v === null) delete headers[k];
      else headers[k] = v;
    }
    const url = `${hubEndpoint(opts.url)}${opts.query !== undefined ? `?${opts.query}` : ''}`;
    let conn: HubConn | null = null;
    const opened = await upgrade(url, { headers, timeoutMs: opts.timeoutMs, maxPayload: 64 * 1024 * 1024, onSocket: (ws) => (conn = new HubConn(ws)) });
    return opened.kind === 'open' ? { kind: 'open', conn: conn! } : opened;
  }

  get open(): boolean {
    return this.closed === null && this.ws.readyState === WebSocket.OPEN;
  }

  /** Sends bytes as a binary message, a string as a text message; false when not open. */
  send(data: Uint8Array | string): boolean {
    if (!this.open) return false;
    this.ws.send(data, { binary: typeof data !== 'string' });
    return true;
  }

  /** Resolves true once `done()` holds (checked after every message and at the close), false after `timeoutMs`. */
  until(done: () => boolean, timeoutMs: number): Promise<boolean> {
    return this.wakeup.until(done, () => this.closed !== null, timeoutMs);
  }

  /**
   * The code of a refusal after the upgrade (cluster mode, PROTOCOL.md 2.1: an error frame with the
   * code, a bye, and a close 4007, 4006 or 1011 whose reason is it), or null when the socket was not
   * refused so within `timeoutMs`. The embedded default refuses over HTTP instead.
   */
  async refusalAfterUpgrade(timeoutMs: number): Promise<string | null> {
    await this.until(() => this.closed !== null, timeoutMs);
    const closed = this.closed;
    const refusals: number[] = [CloseCode.unauthorized, CloseCode.hubDisabled, CloseCode.internal];
    if (!closed || !refusals.includes(closed.code)) return null;
    const error = this.inbox.find((m) => m.frame?.t === FrameType.error)?.frame;
    const bye = this.inbox.find((m) => m.frame?.t === FrameType.bye)?.frame;
    return error?.e === closed.reason && bye?.e === closed.reason ? closed.reason : null;
  }

  /** Drops the TCP connection without a closing handshake (the close then reads 1006). */
  terminate(): void {
    this.terminated = true;
    this.ws.terminate();
  }

  /** Closes with a close frame and waits (at most 2 s) for the server's answer. */
  async close(code = 1000): Promise<void> {
    if (this.open) this.ws.close(code);
    await this.until(() => this.closed !== null, 2_000);
    if (!this.closed) this.terminate();
  }
}
