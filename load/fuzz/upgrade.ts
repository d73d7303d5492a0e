import WebSocket from 'ws';
import { refusalOf } from '../wire/handshake.js';

/**
 * One WebSocket upgrade as the fuzzer makes them, hostile or not: a refusal (its status and body
 * as sent) is a result to check, not an error, and so is a socket that never got an answer.
 */

export type Upgrade = { kind: 'open'; ws: WebSocket } | { kind: 'refused'; status: number; body: string } | { kind: 'failed'; message: string };

export interface UpgradeOptions {
  headers: Record<string, string>;
  /** subprotocols (`Sec-WebSocket-Protocol`) */
  protocols?: string[];
  /** @default 10_000 (ms): the server's answer to the upgrade */
  timeoutMs?: number;
  /** @default ws's 100 MiB: largest message accepted from the server */
  maxPayload?: number;
  /** called with the socket as soon as it exists, to listen before anything can arrive */
  onSocket?: (ws: WebSocket) => void;
}

export function upgrade(url: string, opts: UpgradeOptions): Promise<Upgrade> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return new Promise((resolve) => {
    let settled = false;
    const done = (r: Upgrade) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(r);
    };
    let ws: WebSocket;
    try {
      ws = new WebSocket(url, opts.protocols ?? [], { headers: opts.headers, perMessageDeflate: false, handshakeTimeout: timeoutMs, ...(opts.maxPayload !== undefined ? { maxPayload: opts.maxPayload } : {}) });
    } catch (err) {
      resolve({ kind: 'failed', message: (err as Error).message });
      return;
    }
    const timer = setTimeout(() => {
      ws.terminate();
      done({ kind: 'failed', message: `no upgrade answer within ${timeoutMs} ms` });
    }, timeoutMs);
    opts.onSocket?.(ws);
    ws.once('open', () => done({ kind: 'open', ws }));
    ws.on('unexpected-response', (_req, res) => {
      void refusalOf(res).then(({ body }) => {
        done({ kind: 'refused', status: res.statusCode ?? 0, body });
        ws.terminate();
      });
    });
    ws.on('error', (err) => done({ kind: 'failed', message: err.message }));
    ws.once('close', (code) => done({ kind: 'failed', message: `closed during the upgrade (${code})` }));
  });
}
