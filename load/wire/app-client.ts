import WebSocket from 'ws';
import { refusalOf } from './handshake.js';
import { FrameType, decodeValue, encodeApp, type Attrs } from '../../src/index.js';

/**
 * An app subscriber over `/app/v1` with msgpack: opens the socket (a user token, or plain `homes`
 * for the relay floor, which has no auth), subscribes to its homes and hands every message on
 * decoded. Lean on purpose: a load worker holds thousands, so an app is its socket and closures.
 */

export interface AppOptions {
  /** `ws://host:port` of a node (or the relay floor) */
  url: string;
  /** a user token: sent as `?token=`, then one `sub` per home; null: `?homes=a,b` and no `sub` */
  token: string | null;
  homes: readonly string[];
  /** open plus every subscription acknowledged within this (ms) */
  timeoutMs: number;
  source?: { address: string; port?: number } | undefined;
}

/**
 * A failed open: `timeout`, the socket's errno (`ECONNREFUSED`), `error`, the code of a refused
 * upgrade (the body's `code`, else `http_<status>`), or the `err` code answering a `sub`.
 */
export class AppClientError extends Error {
  override name = 'AppClientError';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface AppHandlers {
  /** every message after the subscriptions were acknowledged (and those before: `ok`s, events) */
  message(m: Record<string, unknown> | null): void;
  /** the socket closed after `openApp` resolved */
  close(): void;
}

/** Opens the subscriber; resolves with its socket once subscribed, rejects with an AppClientError. */
export function openApp(opts: AppOptions, on: AppHandlers): Promise<WebSocket> {
  const base = opts.url.replace(/\/+$/, '');
  const query = opts.token !== null ? `token=${encodeURIComponent(opts.token)}` : `homes=${opts.homes.map(encodeURIComponent).join(',')}`;
  const src = opts.source;
  const ws = new WebSocket(`${base}/app/v1?enc=msgpack&${query}`, {
    perMessageDeflate: false,
    ...(src !== undefined ? { localAddress: src.address, ...(src.port !== undefined ? { localPort: src.port } : {}) } : {}),
  });
  return new Promise<WebSocket>((resolve, reject) => {
    let pending = opts.token !== null ? opts.homes.length : 0;
    let open = false;
    const timer = setTimeout(() => fail(new AppClientError('timeout', `app socket: not subscribed within ${opts.timeoutMs} ms`)), opts.timeoutMs);
    const fail = (err: AppClientError) => {
      clearTimeout(timer);
      reject(err);
      ws.terminate();
    };
    const subscribed = () => {
      clearTimeout(timer);
      open = true;
      resolve(ws);
    };
    ws.on('open', () => {
      if (pending === 0) return subscribed();
      opts.homes.forEach((home, i) => ws.send(encodeApp({ op: 'sub', id: i + 1, home }), { binary: true }));
    });
    ws.on('message', (data: Buffer) => {
      const m = decodeApp(data);
      if (pending > 0 && m?.op === 'err') return fail(new AppClientError(String(m.code), `app socket: sub refused: ${String(m.msg)}`));
      if (pending > 0 && m?.op === 'ok' && --pending === 0) subscribed();
      on.message(m);
    });
    // a refused upgrade: its code (`busy` with Retry-After, `unauthorized`), not ws's bare error
    ws.on('unexpected-response', (_req, res) => {
      void refusalOf(res).then(({ code, message }) => fail(new AppClientError(code, `app socket refused (${res.statusCode}): ${message}`)));
    });
    ws.on('error', (err: NodeJS.ErrnoException) => fail(new AppClientError(err.code ?? 'error', `app socket: ${err.message}`)));
    ws.on('close', () => {
      if (open) on.close();
    });
  });
}

/** One app message decoded with the server's codec; null when it is not a msgpack map. */
function decodeApp(data: Uint8Array): Record<string, unknown> | null {
  try {
    const v = decodeValue(data);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/**
 * Calls `each` with the attributes of every device a state message carries: an app `evt` of kind
 * `state`, or a report frame as the relay floor forwards it. False for any other message.
 */
export function forEachState(m: Record<string, unknown>, each: (attrs: Attrs) => void): boolean {
  if (m.op === 'evt') {
    if (m.kind !== 'state' || typeof m.attrs !== 'object' || m.attrs === null) return false;
    each(m.attrs as Attrs);
    return true;
  }
  if (m.t !== FrameType.report || typeof m.r !== 'object' || m.r === null) return false;
  for (const attrs of Object.values(m.r as Record<string, Attrs>)) each(attrs);
  return true;
}
