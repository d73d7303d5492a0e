import type { AppRequest, AppWireMessage } from '../../proto/app.js';
import { isValidId } from '../../proto/subjects.js';
import { ProtocolError } from '../errors.js';
import { attrs, decodeValue, encodeApp, params, peekRefused } from './codec.js';

export type AppEncoding = 'json' | 'msgpack';

/** Decodes one app message (JSON text or msgpack binary) into a validated request. */
export function decodeAppRequest(message: ArrayBuffer, isBinary: boolean, maxBytes: number): AppRequest {
  if (message.byteLength > maxBytes) throw new ProtocolError('frame_too_large', `message of ${message.byteLength} bytes exceeds ${maxBytes}`);
  let value: unknown;
  if (isBinary) {
    const bytes = new Uint8Array(message);
    try {
      value = decodeValue(bytes);
    } catch (err) {
      // well-formed but refused (a __proto__ key): the answer still names the request's id
      const id = peekRefused(err, bytes)?.id;
      if (err instanceof ProtocolError && typeof id === 'number' && Number.isSafeInteger(id) && id >= 0) err.ref = id;
      throw err;
    }
  } else {
    try {
      value = JSON.parse(Buffer.from(message).toString('utf8'));
    } catch {
      throw new ProtocolError('malformed_frame', 'not valid JSON');
    }
  }
  return validateAppRequest(value);
}

function fail(field: string, what: string): never {
  throw new ProtocolError('invalid_field', `${field}: ${what}`, { field });
}

function idOf(v: unknown, field: string): string {
  if (!isValidId(v)) fail(field, 'must be an id of 1..64 characters [A-Za-z0-9_-]');
  return v;
}

export function validateAppRequest(v: unknown): AppRequest {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ProtocolError('malformed_frame', 'a message must be an object');
  const m = v as Record<string, unknown>;
  if (typeof m.id !== 'number' || !Number.isSafeInteger(m.id) || m.id < 0) fail('id', 'must be a non-negative integer');
  const id = m.id;
  try {
    return validateOp(m, id);
  } catch (err) {
    // the error answer repeats the request's id, so the app can tell which request failed
    if (err instanceof ProtocolError) err.ref = id;
    throw err;
  }
}

function validateOp(m: Record<string, unknown>, id: number): AppRequest {
  switch (m.op) {
    case 'sub':
    case 'unsub':
      return { op: m.op, id, home: idOf(m.home, 'home') };
    case 'ping':
      return { op: 'ping', id };
    case 'cmd': {
      const req: AppRequest = { op: 'cmd', id, hub: idOf(m.hub, 'hub'), device: idOf(m.device, 'device') };
      if (m.set !== undefined) req.set = attrs(m.set, 'set');
      else if (typeof m.method === 'string' && m.method.length > 0 && m.method.length <= 64) {
        req.method = m.method;
        req.params = m.params === undefined ? {} : params(m.params, 'params');
      } else fail('set', 'give "set" (attributes) or "method" (with optional "params")');
      if (m.timeoutMs !== undefined) {
        if (typeof m.timeoutMs !== 'number' || !Number.isInteger(m.timeoutMs) || m.timeoutMs <= 0) fail('timeoutMs', 'must be a positive integer');
        req.timeoutMs = m.timeoutMs;
      }
      return req;
    }
    default:
      fail('op', 'must be one of sub, unsub, cmd, ping');
  }
}

export function encodeAppMessage(msg: AppWireMessage, enc: AppEncoding): string | Uint8Array {
  return enc === 'json' ? JSON.stringify(msg) : encodeApp(msg);
}
