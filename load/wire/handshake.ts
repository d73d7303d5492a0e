import type { IncomingMessage } from 'node:http';
import WebSocket from 'ws';
import { hubAuthHeaderMap, hubCredentials } from '../../src/index.js';

/**
 * The hub's signed upgrade, shared by every client that plays a hub: the endpoint, the signed
 * headers, and the one vocabulary of connect failures (`HubClientError.code`):
 *   - the server's string code (`bad_signature`, `unknown_hub`, `rate_limited`, ...) from the
 *     refused upgrade's JSON body, or from an error or bye frame before the welcome;
 *   - `http_<status>` for a refused upgrade whose body names no code;
 *   - the socket's errno (`ECONNREFUSED`, `EADDRINUSE`, ...), else `connect_failed`;
 *   - `timeout` (no welcome in time), `closed` (closed before the welcome without a code).
 */

/** `base` with `path` appended unless it already ends with it (`ws://h:p` → `ws://h:p/hub/v1`). */
export function hubEndpoint(base: string, path = '/hub/v1'): string {
  const trimmed = base.replace(/\/+$/, '');
  return trimmed.endsWith(path) ? trimmed : `${trimmed}${path}`;
}

/** Upgrade headers with a fresh timestamp, nonce and signature: one set per connection attempt. */
export function signedHeaders(hubId: string, secret: string): Record<string, string> {
  return hubAuthHeaderMap(hubCredentials(hubId, secret));
}

/** A failure a hub client sees; `code` is from the vocabulary above or a frame's error code. */
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

export interface DialOptions {
  /** the full endpoint (see `hubEndpoint`) */
  url: string;
  /** names the hub in error messages */
  hubId: string;
  headers: Record<string, string>;
  /** upgrade plus welcome must finish within this (ms) */
  timeoutMs: number;
  /** source address (and port) of the TCP connection */
  source?: { address: string; port?: number } | undefined;
}

/** One connection attempt under way: `settle()` ends its deadline (at the welcome). */
export interface Dial {
  ws: WebSocket;
  settle(): void;
}

/**
 * Starts the upgrade and maps every way it can fail to one `HubClientError`, passed to `fail`
 * (which must ignore calls once the attempt is settled). Frames, open and close are the caller's.
 */
export function dial(opts: DialOptions, fail: (err: HubClientError) => void): Dial | HubClientError {
  let ws: WebSocket;
  try {
    ws = new WebSocket(opts.url, {
      headers: opts.headers,
      perMessageDeflate: false,
      skipUTF8Validation: true,
      handshakeTimeout: opts.timeoutMs,
      ...(opts.source !== undefined ? { localAddress: opts.source.address, ...(opts.source.port !== undefined ? { localPort: opts.source.port } : {}) } : {}),
    });
  } catch (err) {
    // a URL ws cannot use
    return new HubClientError('connect_failed', `hub ${opts.hubId}: ${(err as Error).message}`, { cause: err });
  }
  const timer = setTimeout(() => {
    fail(new HubClientError('timeout', `hub ${opts.hubId}: no welcome within ${opts.timeoutMs} ms`));
    ws.terminate();
  }, opts.timeoutMs);
  timer.unref();
  ws.on('unexpected-response', (_req, res) => {
    void refusalOf(res).then(({ code, message }) => {
      fail(new HubClientError(code, `hub ${opts.hubId}: upgrade refused with ${res.statusCode}: ${message}`, { status: res.statusCode }));
      ws.terminate();
    });
  });
  // a close always follows an error; before the welcome the error is the reason
  ws.on('error', (err: NodeJS.ErrnoException) => fail(new HubClientError(err.code ?? 'connect_failed', `hub ${opts.hubId}: ${err.message}`, { cause: err })));
  return { ws, settle: () => clearTimeout(timer) };
}

/** A refused upgrade's code (the JSON body's `code`, else `http_<status>`), message and body as sent. Never rejects. */
export function refusalOf(res: IncomingMessage): Promise<{ code: string; message: string; body: string }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const done = () => {
      const text = Buffer.concat(chunks).toString('utf8');
      resolve({ ...refusalFrom(res.statusCode ?? 0, text), body: text });
    };
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', done);
    res.on('error', done);
  });
}

/** The code and message of a refusal with `status` and body `text` (see the vocabulary above). */
export function refusalFrom(status: number, text: string): { code: string; message: string } {
  let code = `http_${status}`;
  let message = text.slice(0, 200);
  try {
    const body = JSON.parse(text) as { code?: unknown; message?: unknown };
    if (typeof body.code === 'string') code = body.code;
    if (typeof body.message === 'string') message = body.message;
  } catch {
    // not JSON: the status is the code, the text the message
  }
  return { code, message };
}
