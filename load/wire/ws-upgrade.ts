import { createHash, randomBytes } from 'node:crypto';
import { refusalFrom } from './handshake.js';

/**
 * The client's HTTP/1.1 upgrade to a WebSocket over a raw socket: the request's bytes, and the
 * reading of the answer (101 with the right accept key, or a refusal with its code from the JSON
 * body, as wire/handshake.ts names them).
 */

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
/** a response head longer than this is not a server we speak to */
const MAX_HEAD = 16 * 1024;

export function upgradeKey(): string {
  return randomBytes(16).toString('base64');
}

export function acceptFor(key: string): string {
  return createHash('sha1').update(key + GUID).digest('base64');
}

/** `host` is the Host header (`127.0.0.1:8080`); `path` includes any query. */
export function upgradeRequest(host: string, path: string, key: string, headers: Record<string, string>): Buffer {
  let head = `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n`;
  for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
  return Buffer.from(`${head}\r\n`, 'latin1');
}

export type UpgradeAnswer =
  /** more bytes needed */
  | { kind: 'partial' }
  /** upgraded; `rest`: the bytes after the head (the first frames, if any) */
  | { kind: 'open'; rest: Buffer }
  | { kind: 'refused'; status: number; code: string; message: string }
  /** not an HTTP answer to an upgrade (bad head, wrong accept key) */
  | { kind: 'bad'; message: string };

/** Reads the answer to an upgrade sent with `key` from the bytes received so far. */
export function readUpgrade(buf: Buffer, key: string): UpgradeAnswer {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return buf.length > MAX_HEAD ? { kind: 'bad', message: 'response head too long' } : { kind: 'partial' };
  const lines = buf.toString('latin1', 0, end).split('\r\n');
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
  if (!status) return { kind: 'bad', message: `not an HTTP response: ${(lines[0] ?? '').slice(0, 80)}` };
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  const code = Number(status[1]);
  const bodyAt = end + 4;
  if (code === 101) {
    if (headers.get('sec-websocket-accept') !== acceptFor(key)) return { kind: 'bad', message: 'wrong Sec-WebSocket-Accept' };
    return { kind: 'open', rest: buf.subarray(bodyAt) };
  }
  const length = Number(headers.get('content-length') ?? 0);
  if (buf.length - bodyAt < length) return { kind: 'partial' };
  return { kind: 'refused', status: code, ...refusalFrom(code, buf.toString('utf8', bodyAt, bodyAt + length)) };
}
