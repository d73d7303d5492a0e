/**
 * The one device command, as the HTTP API, the app socket, rules and scenes take it: `set`
 * (attributes, at least one) or `method` with optional `params`, never both, and an optional
 * `timeoutMs` up to the node's TIER_COMMAND_TIMEOUT_MAX_MS. Each caller adds its own fields
 * (`op`/`id` on the socket, `hub`/`device` in a scene) and decides on unknown keys: refused in
 * stored rules and scenes (a typo must not be kept), ignored on the wire (as proto/PROTOCOL.md §1
 * says, so that minor versions can add fields).
 */
import { Type, type ObjectOptions, type TProperties } from '@sinclair/typebox';
import type { Attrs as AttrMap } from '../../proto/frames.js';
import type { CommandSpec } from '../actors/commands.js';
import { Attrs, Forbidden, Params } from './common.js';

const NOT_BOTH = 'give "set" or "method", not both';

/** @param max the node's largest timeout (ms); undefined: any positive integer */
export const TimeoutMs = (max: number | undefined) =>
  Type.Optional(
    Type.Integer({
      minimum: 1,
      ...(max === undefined ? {} : { maximum: max }),
      description: 'how long to wait for the hub’s answer, ms (default: the node’s TIER_COMMAND_TIMEOUT_MS)',
    }),
  );

/** Both forms of a command with the caller's own fields first. */
function variants<P extends TProperties>(own: P, max: number | undefined, options: ObjectOptions) {
  return [
    Type.Object(
      {
        ...own,
        set: Attrs('attributes to set on the device (shorthand for method "set" with these params)', 'must set at least one attribute'),
        timeoutMs: TimeoutMs(max),
        method: Forbidden(NOT_BOTH),
        params: Forbidden('params go with "method", not "set"'),
      },
      { ...options, description: 'set attributes' },
    ),
    Type.Object(
      {
        ...own,
        method: Type.String({ minLength: 1, maxLength: 64, description: 'a method of the device (`identify`, `open`, ...)' }),
        params: Type.Optional(Params('parameters of the method (default {})')),
        timeoutMs: TimeoutMs(max),
        set: Forbidden(NOT_BOTH),
      },
      { ...options, description: 'call a method' },
    ),
  ];
}

/**
 * A command with the caller's fields `own`. `strict`: unknown keys are refused. The union
 * explains a refusal by the form the client chose: the first of `set`, `method` it sent.
 */
export function command<P extends TProperties>(own: P, max: number | undefined, opts: { strict: boolean; title?: string; description?: string; examples?: unknown[] }) {
  const objectOptions: ObjectOptions = opts.strict ? { additionalProperties: false } : {};
  return Type.Union(variants(own, max, objectOptions), {
    select: { keys: ['set', 'method'] },
    errorMessage: 'give "set" (attributes) or "method" (with optional "params")',
    ...(opts.title ? { title: opts.title } : {}),
    ...(opts.description ? { description: opts.description } : {}),
    ...(opts.examples ? { examples: opts.examples } : {}),
  });
}

/** The command a validated body asks for, as the bus carries it: `params` default to {}. */
export function commandSpec(c: { set: AttrMap } | { set?: undefined; method: string; params?: Record<string, unknown> | undefined }): CommandSpec {
  return c.set !== undefined ? { set: c.set } : { method: c.method, params: c.params ?? {} };
}
