/**
 * Schemas every body is made of: ids, attribute maps, free-form parameters, the error body. Each
 * is a function of its description, since a field's description says what it is for where it is used.
 */
import { Type } from '@sinclair/typebox';
import { ErrorCodes } from '../../proto/errors.js';
import type { Attrs as AttrMap } from '../../proto/frames.js';
import { ID_PATTERN, ID_RULE } from '../../proto/subjects.js';
import { attrs as checkAttrs, LIMITS, params as checkParams, paramsFit } from '../protocol/codec.js';
import { TierError } from '../errors.js';
import { compile, customKind, invalidField, type Problem, type Refuse } from './check.js';

/** Names that reach Object.prototype as a plain object's key (proto/subjects.ts RESERVED). */
const NOT_RESERVED = '(?!(?:__proto__|constructor|prototype)$)';

/** proto/subjects.ts `isValidId` as a pattern: ID_PATTERN and not a reserved name. */
export const ID_REGEX = `^${NOT_RESERVED}${ID_PATTERN.source.replace(/^\^/, '')}`;

/** proto/subjects.ts `isValidKey`: 1..64 UTF-16 units, not a reserved name. */
const KEY_REGEX = `^${NOT_RESERVED}[\\s\\S]{1,64}$`;

const ID_MESSAGE = `must be ${ID_RULE}`;

/** A hub, home, device, rule or scene id; also used in NATS subjects and Redis keys. */
export const Id = (description: string, examples?: string[]) =>
  Type.String({ pattern: ID_REGEX, description, errorMessage: ID_MESSAGE, ...(examples ? { examples } : {}) });

export const AttrName = (description: string) =>
  Type.String({ pattern: KEY_REGEX, description, errorMessage: 'must be an attribute name of 1..64 characters' });

export const AttrValue = (description: string) =>
  Type.Union([Type.String({ maxLength: LIMITS.stringBytes }), Type.Number(), Type.Boolean(), Type.Null()], {
    description,
    errorMessage: 'must be a string, finite number, boolean or null',
  });

const problemOf = (err: unknown): Problem => {
  if (err instanceof TierError && err.field !== undefined) return { field: err.field, what: err.message.slice(err.field.length + 2) };
  throw err;
};

/**
 * The problem of an attribute map: codec `attrs()`, the hub wire's own check (a plain object, at
 * most 64 names of 1..64 characters, none reserved, scalar values), plus emptiness where refused.
 * It allocates nothing; TypeBox's Record check builds the entries (3× the time, measured).
 */
function attrsProblem(value: unknown, field: string, atLeastOne: string | undefined, limits = true): Problem | null {
  try {
    checkAttrs(value, field, limits);
  } catch (err) {
    return problemOf(err);
  }
  if (atLeastOne === undefined) return null;
  for (const _ in value as object) return null;
  return { field, what: atLeastOne };
}

const attrsKind = customKind<AttrMap>(
  'Attrs',
  (value) => attrsProblem(value, '', undefined) === null,
  (value, field) => attrsProblem(value, field, undefined) ?? { field, what: 'must be an object' },
);
const nonEmptyAttrsKind = (message: string) =>
  customKind<AttrMap>(
    `Attrs:${message}`,
    (value) => attrsProblem(value, '', message) === null,
    (value, field) => attrsProblem(value, field, message) ?? { field, what: 'must be an object' },
  );
const nonEmpty = new Map<string, ReturnType<typeof nonEmptyAttrsKind>>();

/** What an attribute map's schema says in the API document. */
const attrsDocument = (description: string, atLeastOne?: string) =>
  Type.Record(Type.String({ pattern: KEY_REGEX }), AttrValue(`a string of at most ${LIMITS.stringBytes} characters, a finite number, a boolean or null`), {
    additionalProperties: false,
    maxProperties: LIMITS.attrsPerDevice,
    ...(atLeastOne ? { minProperties: 1 } : {}),
    description,
  });

/**
 * Attribute names to scalar values: the shadow stays flat and cheap to merge. `atLeastOne`: an
 * empty map is refused with this message. The keywords say in the document what attrs() checks.
 */
export const Attrs = (description: string, atLeastOne?: string) => {
  const described = attrsDocument(description, atLeastOne);
  if (atLeastOne === undefined) return attrsKind(described);
  let kind = nonEmpty.get(atLeastOne);
  if (!kind) nonEmpty.set(atLeastOne, (kind = nonEmptyAttrsKind(atLeastOne)));
  return kind(described);
};

/** What an empty desired change is told, as a rule's desired action is: it changed nothing and made a device of an unknown id (review "desired" F5). */
const NO_DESIRED_ATTR = 'must name at least one attribute';

const desiredAttrsKind = customKind<AttrMap>(
  'DesiredAttrs',
  (value) => attrsProblem(value, '', NO_DESIRED_ATTR, false) === null,
  (value, field) => attrsProblem(value, field, NO_DESIRED_ATTR, false) ?? { field, what: 'must be an object' },
);

/**
 * Attrs of a desired change, at least one: the caller checks their count and string lengths as the
 * limits they are (`422 limit_exceeded`, PROTOCOL.md §1), not as a malformed body. The document still states them.
 */
export const DesiredAttrs = (description: string) => desiredAttrsKind(attrsDocument(description, NO_DESIRED_ATTR));

/**
 * The problem of free-form parameters: codec `params()` (a plain object, no `__proto__` key at
 * any depth, nesting at most `LIMITS.depth`: the check the hub wire uses), and no top-level name
 * a hub could take for an object's own machinery.
 */
export function paramsProblem(value: unknown, field: string): Problem | null {
  try {
    checkParams(value, field);
  } catch (err) {
    return problemOf(err);
  }
  for (const key in value as object) {
    if (key === 'constructor' || key === 'prototype') return { field: `${field}.${key}`, what: 'parameter name not __proto__, constructor or prototype' };
  }
  return null;
}

/**
 * paramsProblem(value) === null without building a field name per nested value (codec
 * `paramsFit`); test/unit/app-codec.test.ts holds the two to the same answers.
 */
export function paramsAccepted(value: unknown): boolean {
  if (!paramsFit(value)) return false;
  for (const key in value as object) if (key === 'constructor' || key === 'prototype') return false;
  return true;
}

const paramsKind = customKind<Record<string, unknown>>(
  'Params',
  paramsAccepted,
  (value, field) => paramsProblem(value, field) ?? { field, what: 'must be an object' },
);

/** Free-form command parameters, passed to the hub as they are. */
export const Params = (description: string) =>
  paramsKind(Type.Object({}, { additionalProperties: true, description: `${description}. Any JSON values (numbers finite, no integer a JSON parser would round; no binary in msgpack), nested at most ${LIMITS.depth - 1} levels (the hub's frame holding them is the first of its ${LIMITS.depth}); keys of 1 to ${LIMITS.idLength} characters, strings of at most ${LIMITS.stringBytes} (PROTOCOL.md §1); no key \`__proto__\` at any depth` }));

/** A key refused when present (the other form of a body has it); the message says why. */
export const Forbidden = (why: string) => Type.Optional(Type.Never({ description: `not allowed here: ${why}`, errorMessage: why }));

/** Ignored when a client sends it back from a GET: the server owns it. */
export const ServerOwned = (description: string) => Type.Optional(Type.Unknown({ readOnly: true, description: `${description} (set by the server; ignored when sent)` }));

const errorExample = (code: keyof typeof ErrorCodes, message: string, field?: string) => ({
  ok: false,
  code,
  num: ErrorCodes[code].code,
  temporary: ErrorCodes[code].temporary,
  message,
  ...(field ? { field } : {}),
});

/** Every failure of the HTTP API, from the one code table of proto/errors.ts. */
export const ErrorBody = Type.Object(
  {
    ok: Type.Literal(false, { description: 'always false on an error' }),
    code: Type.String({ enum: Object.keys(ErrorCodes), description: 'stable string code (proto/PROTOCOL.md §9)' }),
    num: Type.Integer({ description: 'the number of the code in the same table' }),
    temporary: Type.Boolean({ description: 'true: the same request may succeed later (retry with backoff); false: change something first' }),
    message: Type.String({ description: 'human-readable detail; for validation errors it starts with the field' }),
    field: Type.Optional(Type.String({ description: 'the field at fault for validation errors: a path such as `set.temp`, `actions[0].hub` or a path parameter' })),
    hubCode: Type.Optional(Type.String({ description: 'the hub’s own code when the hub refused a command (`command_failed`)' })),
    hubTemporary: Type.Optional(Type.Literal(true, { description: 'the hub refused the command as temporarily unable (busy): the same command may succeed later; absent otherwise' })),
    sent: Type.Optional(Type.Literal(false, { description: 'with `session_closed`: the hub’s session closed before it sent the command to the hub; with `command_timeout`: the command reached the hub’s node after its deadline and was not sent. Either way it did not run: safe to send again. Absent when it may have run' })),
  },
  {
    title: 'Error',
    description: 'An error answer: the HTTP status, `code` and `num` come from one table',
    examples: [errorExample('invalid_field', 'set.on: must be a string, finite number, boolean or null', 'set.on')],
  },
);

const idValidator = compile(Id('an id'));

/** A path parameter or body field that must be an id; `invalid_field` naming it otherwise. */
export function parseId(value: unknown, field: string, refuse: Refuse = invalidField): string {
  return idValidator.parse(value, refuse, field);
}
