import type { AppEventMessage } from '../../proto/app.js';
import { ProtocolError } from '../errors.js';
import { decodeValue, encodeApp, isPlainObject } from './codec.js';

/** What the node's encoder writes first for an AppEventMessage: after the map header, "op": "evt". */
const EVENT_HEAD = [0xa2, 0x6f, 0x70, 0xa3, 0x65, 0x76, 0x74];

/**
 * A bus event payload as the msgpack app message: the bytes themselves when they are already in
 * the app shape (a map of at most 15 keys starting with `op: "evt"`, as this node encodes them),
 * otherwise decoded and encoded again (a bare HubEvent from a node of an older version or another
 * service).
 */
export function appEventBytes(data: Uint8Array): Uint8Array {
  if (data.length > EVENT_HEAD.length && (data[0]! & 0xf0) === 0x80 && startsWithHead(data)) return data;
  return encodeApp(appEventValue(data));
}

/** A bus event payload as the JSON app message. */
export function appEventJson(data: Uint8Array): string {
  return JSON.stringify(appEventValue(data));
}

function startsWithHead(data: Uint8Array): boolean {
  for (let i = 0; i < EVENT_HEAD.length; i++) if (data[i + 1] !== EVENT_HEAD[i]) return false;
  return true;
}

function appEventValue(data: Uint8Array): AppEventMessage {
  const v = decodeValue(data);
  if (!isPlainObject(v)) throw new ProtocolError('malformed_frame', 'an event must be a msgpack map');
  // trusted like every bus payload: only the `op` key is added when missing
  return (v.op === 'evt' ? v : { op: 'evt', ...v }) as AppEventMessage;
}
