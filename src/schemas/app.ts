/**
 * Requests of the app socket (`/app/v1`, proto/PROTOCOL.md §11). The envelope's `id` is checked
 * on its own first, so that every later refusal can repeat it.
 */
import { Type, type TLiteral, type TSchema } from '@sinclair/typebox';
import { command } from './command.js';
import { Id } from './common.js';

export const RequestId = Type.Integer({
  minimum: 0,
  maximum: Number.MAX_SAFE_INTEGER,
  description: 'chosen by the app, repeated in the answer',
  errorMessage: 'must be a non-negative integer',
});

const op = <O extends string>(name: O): { op: TLiteral<O>; id: typeof RequestId } => ({ op: Type.Literal(name, { description: 'the request' }), id: RequestId });

const home = Id('the home');

/** @param max the node's largest command timeout (ms); undefined: any positive integer */
export function appRequest(max: number | undefined) {
  const variants = [
    Type.Object({ ...op('sub'), home }, { description: 'start receiving a home’s events' }),
    Type.Object({ ...op('unsub'), home }, { description: 'stop receiving a home’s events' }),
    command({ ...op('cmd'), hub: Id('the hub'), device: Id('the device') }, max, { strict: false, description: 'a device command' }),
    Type.Object(op('ping'), { description: 'answered with the server time' }),
  ];
  return Type.Union(variants, { select: { by: 'op' }, errorMessage: 'must be one of sub, unsub, cmd, ping' }) satisfies TSchema;
}
