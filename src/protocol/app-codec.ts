import type { Static } from '@sinclair/typebox';
import type { AppRequest, AppWireMessage } from '../../proto/app.js';
import { ProtocolError } from '../errors.js';
import { appRequest, RequestId } from '../schemas/app.js';
import { compile, type Refuse, type Validator } from '../schemas/check.js';
import { decodeValue, encodeApp, peekRefused } from './codec.js';
import { pathOfRounded, roundedInteger, roundedMessage } from './json-integers.js';
import { firstLoneSurrogate } from './well-formed.js';

export type AppEncoding = 'json' | 'msgpack';

/**
 * Decodes one app message (JSON text or msgpack binary) into a validated request;
 * `commandTimeoutMaxMs` as for validateAppRequest.
 */
export function decodeAppRequest(message: ArrayBuffer, isBinary: boolean, maxBytes: number, commandTimeoutMaxMs?: number): AppRequest {
  if (message.byteLength > maxBytes) throw new ProtocolError('frame_too_large', `message of ${message.byteLength} bytes exceeds ${maxBytes}`);
  let value: unknown;
  let text: string | undefined;
  if (isBinary) {
    const bytes = new Uint8Array(message);
    try {
      value = decodeValue(bytes);
    } catch (err) {
      // well-formed but refused (a __proto__ or non-string key): the answer still names the request's id
      const id = peekRefused(err)?.id;
      if (err instanceof ProtocolError && typeof id === 'number' && Number.isSafeInteger(id) && id >= 0) err.ref = id;
      throw err;
    }
  } else {
    // uWS closes a text message that is not UTF-8; a lone surrogate comes only from a \u escape
    text = Buffer.from(message).toString('utf8');
    try {
      value = JSON.parse(text);
    } catch {
      throw new ProtocolError('malformed_frame', 'not valid JSON');
    }
  }
  const request = validateAppRequest(value, commandTimeoutMaxMs);
  // as the msgpack socket refuses it (there the scanner sees the uint64): JSON.parse would round it
  const rounded = text === undefined ? null : roundedInteger(text);
  if (rounded !== null) {
    const field = pathOfRounded(value, rounded, 'message');
    throw new ProtocolError('invalid_field', roundedMessage(field, rounded), { field, ref: request.id });
  }
  // as HTTP and the msgpack socket refuse it: taken, the hub got U+FFFD and the audit a mangled name (review "unicode")
  const lone = text?.includes('\\u') ? firstLoneSurrogate(value, 'message') : null;
  if (lone) throw new ProtocolError('invalid_field', `${lone.field}: ${lone.key ? 'a key that is ' : ''}not well-formed Unicode (a lone surrogate)`, { field: lone.field, ref: request.id });
  return request;
}

/** Socket refusals are ProtocolErrors; `ref` repeats the request's id once it is known valid. */
const refuse =
  (ref: number | undefined): Refuse =>
  (field, what) =>
    new ProtocolError('invalid_field', `${field}: ${what}`, { field, ref });

const requestId = compile(RequestId, 'id');

/** Compiled once per timeout maximum (one per node in practice). */
const requests = new Map<number | undefined, Validator<ReturnType<typeof appRequest>>>();

function requestValidator(max: number | undefined): Validator<ReturnType<typeof appRequest>> {
  let validator = requests.get(max);
  if (!validator) requests.set(max, (validator = compile(appRequest(max), 'message')));
  return validator;
}

/**
 * A decoded message → a request, by the schema of src/schemas/app.ts. `commandTimeoutMaxMs`:
 * the node's largest command timeout; without it any positive integer passes here.
 */
export function validateAppRequest(v: unknown, commandTimeoutMaxMs?: number): AppRequest {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ProtocolError('malformed_frame', 'a message must be an object');
  const validator = requestValidator(commandTimeoutMaxMs);
  if (!validator.is(v)) {
    // a bad id first; then the error answer repeats the id, so the app can tell which request failed
    const id = requestId.parse((v as Record<string, unknown>).id, refuse(undefined));
    validator.parse(v, refuse(id));
  }
  const m = v as Static<typeof validator.schema>;
  const id = m.id;
  switch (m.op) {
    case 'sub':
      if (m.since === undefined) return { op: 'sub', id, home: m.home };
      return { op: 'sub', id, home: m.home, since: { epoch: m.since.epoch, offset: m.since.offset }, ...(m.carry === true ? { carry: true as const } : {}) };
    case 'unsub':
      return { op: m.op, id, home: m.home };
    case 'ping':
      return { op: 'ping', id };
    case 'cmd': {
      // a fresh object: unknown keys the client sent stay behind
      const req: AppRequest = { op: 'cmd', id, hub: m.hub, device: m.device };
      if (m.set !== undefined) req.set = m.set;
      else {
        req.method = m.method;
        req.params = m.params ?? {};
      }
      if (m.timeoutMs !== undefined) req.timeoutMs = m.timeoutMs;
      if (m.traceparent !== undefined) req.traceparent = m.traceparent;
      return req;
    }
  }
}

export function encodeAppMessage(msg: AppWireMessage, enc: AppEncoding): string | Uint8Array {
  return enc === 'json' ? JSON.stringify(msg) : encodeApp(msg);
}
