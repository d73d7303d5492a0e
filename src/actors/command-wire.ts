import { isValidId, type CommandReply, type CommandRequest } from '../../proto/subjects.js';
import { ProtocolError } from '../errors.js';
import { isErrorCode } from '../../proto/errors.js';
import { decodeValue, encodeBus } from '../protocol/codec.js';
import { isValidRequestId } from '../log/request-id.js';
import { isValidTraceparent } from '../trace/tracing.js';

export function encodeCommandRequest(req: CommandRequest): Uint8Array {
  return encodeBus(req);
}

export function decodeCommandRequest(data: Uint8Array): CommandRequest {
  const v = decodeValue(data) as Partial<CommandRequest> | null;
  if (typeof v !== 'object' || v === null) throw new ProtocolError('malformed_frame', 'command must be a map');
  if (typeof v.d !== 'string' || !isValidId(v.d)) throw new ProtocolError('invalid_field', 'd: device id', { field: 'd' });
  if (typeof v.m !== 'string' || v.m.length === 0 || v.m.length > 64) throw new ProtocolError('invalid_field', 'm: method', { field: 'm' });
  if (typeof v.p !== 'object' || v.p === null || Array.isArray(v.p)) throw new ProtocolError('invalid_field', 'p: params map', { field: 'p' });
  if (typeof v.to !== 'number' || !Number.isInteger(v.to) || v.to <= 0) throw new ProtocolError('invalid_field', 'to: timeout ms', { field: 'to' });
  // only for the log and the trace: an invalid one is dropped rather than refusing the command
  const req: CommandRequest = { d: v.d, m: v.m, p: v.p, to: v.to };
  if (typeof v.rid === 'string' && isValidRequestId(v.rid)) req.rid = v.rid;
  // a deadline that is not a time is dropped: the command then has its whole `to`, as from an older node
  if (typeof v.dl === 'number' && Number.isSafeInteger(v.dl) && v.dl > 0) req.dl = v.dl;
  if (isValidTraceparent(v.tp)) req.tp = v.tp;
  return req;
}

export function encodeCommandReply(reply: CommandReply): Uint8Array {
  return encodeBus(reply);
}

export function decodeCommandReply(data: Uint8Array): CommandReply {
  const v = decodeValue(data) as { ok?: unknown; r?: unknown; e?: unknown; msg?: unknown; hub?: unknown; tmp?: unknown; ns?: unknown; mv?: unknown } | null;
  if (typeof v !== 'object' || v === null || typeof v.ok !== 'boolean') throw new ProtocolError('malformed_frame', 'command reply must be a map with ok');
  if (v.ok) return { ok: true, r: v.r };
  // a code outside the table (another service's, a newer version's) is not trusted as one of ours
  const reply: CommandReply = {
    ok: false,
    e: isErrorCode(v.e) ? v.e : 'internal',
    msg: typeof v.msg === 'string' ? v.msg : undefined,
    hub: typeof v.hub === 'string' ? v.hub.slice(0, 64) : undefined,
  };
  if (v.tmp === true) reply.tmp = true;
  // never sent: a session closing, or a command that reached the hub's node past its caller's deadline
  if ((reply.e === 'session_closed' || reply.e === 'command_timeout') && v.ns === true) reply.ns = true;
  if (reply.e === 'session_closed' && v.mv === true) reply.mv = true;
  return reply;
}
