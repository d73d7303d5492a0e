import { isValidId } from '../../proto/subjects.js';
import { ProtocolError } from '../errors.js';
import { isErrorCode, type ErrorCode } from '../../proto/errors.js';
import { decodeValue, encode } from '../protocol/codec.js';

/** A command as carried on `hub.<hubId>.cmd` (msgpack map). */
export interface CommandRequest {
  /** device id */
  d: string;
  /** method; `set` applies `p` as attributes */
  m: string;
  p: Record<string, unknown>;
  /** ms the hub has to answer */
  to: number;
}

/** The answer on the reply subject; `hub`: the hub's own error code, when the hub refused the command. */
export type CommandReply = { ok: true; r: unknown } | { ok: false; e: ErrorCode; msg?: string; hub?: string };

export function encodeCommandRequest(req: CommandRequest): Uint8Array {
  return encode(req);
}

export function decodeCommandRequest(data: Uint8Array): CommandRequest {
  const v = decodeValue(data) as Partial<CommandRequest> | null;
  if (typeof v !== 'object' || v === null) throw new ProtocolError('malformed_frame', 'command must be a map');
  if (typeof v.d !== 'string' || !isValidId(v.d)) throw new ProtocolError('invalid_field', 'd: device id', { field: 'd' });
  if (typeof v.m !== 'string' || v.m.length === 0 || v.m.length > 64) throw new ProtocolError('invalid_field', 'm: method', { field: 'm' });
  if (typeof v.p !== 'object' || v.p === null || Array.isArray(v.p)) throw new ProtocolError('invalid_field', 'p: params map', { field: 'p' });
  if (typeof v.to !== 'number' || !Number.isInteger(v.to) || v.to <= 0) throw new ProtocolError('invalid_field', 'to: timeout ms', { field: 'to' });
  return { d: v.d, m: v.m, p: v.p, to: v.to };
}

export function encodeCommandReply(reply: CommandReply): Uint8Array {
  return encode(reply);
}

export function decodeCommandReply(data: Uint8Array): CommandReply {
  const v = decodeValue(data) as { ok?: unknown; r?: unknown; e?: unknown; msg?: unknown; hub?: unknown } | null;
  if (typeof v !== 'object' || v === null || typeof v.ok !== 'boolean') throw new ProtocolError('malformed_frame', 'command reply must be a map with ok');
  if (v.ok) return { ok: true, r: v.r };
  // a code outside the table (another service's, a newer version's) is not trusted as one of ours
  return {
    ok: false,
    e: isErrorCode(v.e) ? v.e : 'internal',
    msg: typeof v.msg === 'string' ? v.msg : undefined,
    hub: typeof v.hub === 'string' ? v.hub.slice(0, 64) : undefined,
  };
}
