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

/** A position in a home's history (proto/app.ts `Position`). */
export const Position = Type.Object(
  {
    epoch: Type.String({ minLength: 1, maxLength: 64, description: 'the history the offset belongs to' }),
    offset: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'events of the home before and at this one' }),
  },
  { additionalProperties: false, description: 'a place in a home’s event history' },
);

/** @param max the node's largest command timeout (ms); undefined: any positive integer */
export function appRequest(max: number | undefined) {
  const variants = [
    Type.Object(
      {
        ...op('sub'),
        home,
        since: Type.Optional({ ...Position, description: 'the last event the app has: deliver the ones after it first' }),
        carry: Type.Optional(Type.Boolean({ description: 'with `since`: the app takes its position carried into a newer epoch that continues its own (the answer’s `pos` is then of that epoch)' })),
      },
      { description: 'start receiving a home’s events' },
    ),
    Type.Object({ ...op('unsub'), home }, { description: 'stop receiving a home’s events' }),
    command(
      { ...op('cmd'), hub: Id('the hub'), device: Id('the device'), traceparent: Type.Optional(Type.String({ maxLength: 256, description: 'W3C traceparent of the app’s span: the command’s spans join its trace (an invalid one is ignored)' })) },
      max,
      { strict: false, description: 'a device command' },
    ),
    Type.Object(op('ping'), { description: 'answered with the server time' }),
  ];
  return Type.Union(variants, { select: { by: 'op' }, errorMessage: 'must be one of sub, unsub, cmd, ping' }) satisfies TSchema;
}
