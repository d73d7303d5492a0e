import { APP_SUBPROTOCOL, bearerProtocol } from '../../proto/app.js';

export { bearerProtocol };

/**
 * The part of the WHATWG WebSocket the client uses, met by browsers' own, Node 22's global one and
 * the `ws` package's class. Handlers are typed as methods so that each implementation's richer
 * event types fit (method parameters compare both ways in TypeScript).
 */
type Handler<E> = { bivariant(event: E): void }['bivariant'];

export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: Handler<unknown> | null;
  onmessage: Handler<{ data: unknown }> | null;
  onclose: Handler<{ code: number; reason: string }> | null;
  onerror: Handler<unknown> | null;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** `ws://host:port` (or a page's own origin) to the app socket's URL; a URL already ending in /app/v1 is kept. */
export function appSocketUrl(url: string): string {
  const trimmed = url.replace(/\/+$/, '');
  return trimmed.endsWith('/app/v1') ? trimmed : `${trimmed}/app/v1`;
}

/**
 * The subprotocols a client offers: the fixed one first, which the node answers with (so the token
 * does not come back in a response header, refused by Node past 16 KiB), and the bearer one.
 */
export function appProtocols(token: string): string[] {
  return [APP_SUBPROTOCOL, bearerProtocol(token)];
}

/** Text of a message event's data: a string from browsers and `ws`; bytes decoded when a binary frame slips in. */
export function messageText(data: unknown): string | null {
  if (typeof data === 'string') return data;
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return new TextDecoder().decode(data as ArrayBuffer | ArrayBufferView);
  return null;
}

/**
 * A close without a close frame after a refused upgrade: browsers say nothing more, the `ws`
 * package's error event says "Unexpected server response: 401".
 */
export function refusedAs401(error: unknown): boolean {
  return /\b401\b/.test(errorText(error));
}

/** The message of an error or error event; empty when it has none (a browser's error event). */
export function errorText(error: unknown): string {
  if (typeof error === 'object' && error !== null && 'message' in error) return String((error as { message: unknown }).message);
  return '';
}

/** readyState of an open socket (the WebSocket.OPEN constant, not read from a class that may be absent). */
export const OPEN = 1;
