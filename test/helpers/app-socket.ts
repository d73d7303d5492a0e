import WebSocket from 'ws';
import { decodeValue, encodeValue } from '../../src/protocol/codec.js';

/**
 * An app socket collecting every message; `next(pred)` waits for the first one matching, and
 * fails at once, with the close code and the client's error, if the socket closes first.
 */
export class AppSocket {
  readonly messages: any[] = [];
  private waiters: Array<{ pred: (m: any) => boolean; resolve: (m: any) => void; reject: (err: Error) => void }> = [];
  /** why the socket closed, once it has */
  private ended: Error | null = null;
  /** the client's last error (a frame it could not read, a refused upgrade) */
  private clientError: Error | null = null;
  private nextId = 1;
  readonly ws: WebSocket;
  /** the close code and reason, once closed */
  readonly closed: Promise<{ code: number; reason: string }>;

  constructor(url: string, readonly enc: 'json' | 'msgpack' = 'json') {
    this.ws = new WebSocket(url);
    this.ws.on('message', (data: Buffer, isBinary: boolean) => {
      const msg = isBinary ? decodeValue(new Uint8Array(data)) : JSON.parse(data.toString());
      this.messages.push(msg);
      this.waiters = this.waiters.filter((w) => (w.pred(msg) ? (w.resolve(msg), false) : true));
    });
    this.ws.on('error', (err) => {
      this.clientError = err;
    });
    this.closed = new Promise((resolve) =>
      this.ws.on('close', (code, reason) => {
        this.ended = new Error(`app socket closed ${code} ${reason.toString()}${this.clientError ? ` (client error: ${this.clientError.message})` : ''} before the message awaited`);
        for (const w of this.waiters.splice(0)) w.reject(this.ended);
        resolve({ code, reason: reason.toString() });
      }),
    );
  }

  /** Resolves once open: at once when it opened already (a socket made beside others opens while they are awaited). */
  opened(): Promise<void> {
    if (this.ws.readyState === WebSocket.OPEN) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
    });
  }

  next(pred: (m: any) => boolean): Promise<any> {
    const seen = this.messages.find(pred);
    if (seen) return Promise.resolve(seen);
    if (this.ended) return Promise.reject(this.ended);
    return new Promise((resolve, reject) => this.waiters.push({ pred, resolve, reject }));
  }

  /** Sends a request with the next id and waits for its answer. */
  request(body: Record<string, unknown>): Promise<any> {
    const id = this.nextId++;
    this.send({ id, ...body });
    return this.next((m) => m.id === id && (m.op === 'ok' || m.op === 'err'));
  }

  send(msg: unknown): void {
    this.ws.send(this.enc === 'json' ? JSON.stringify(msg) : encodeValue(msg));
  }

  close(): void {
    this.ws.close();
  }
}
