/**
 * The one validator kit. A schema is compiled once (TypeBox's TypeCompiler: generated code, no
 * interpretation per value) and answers `is` on the hot path; only a refused value is walked a
 * second time, to name the field at fault (`actions[0].set.temp`) and say what is accepted.
 */
import { Kind, Type, TypeRegistry, type Static, type TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { ValueErrorType, type ValueError } from '@sinclair/typebox/errors';
import { TierError } from '../errors.js';

/**
 * Options a schema may carry to say how it is refused; the API document leaves them out (a
 * `select` becomes an OpenAPI `discriminator` when it names one).
 */
export interface RefusalOptions {
  /** what is accepted, for every failure of this schema, or per failure kind */
  errorMessage?: string | { type?: string; minProperties?: string; maxProperties?: string; propertyNames?: string };
  /**
   * How a union picks its variant: `by` a discriminator property (each variant requires its own
   * constant), or the first of `keys` present (variant i requires keys[i] and forbids the keys
   * before it; none present: refused naming keys[0]). A value can then match only the variant
   * picked, so the check tests that one alone, and a refusal is explained by that variant.
   */
  select?: { by: string } | { keys: readonly string[] };
}

/** Keys of RefusalOptions: kept out of the published document. */
export const REFUSAL_KEYS: ReadonlySet<string> = new Set(['errorMessage', 'select']);

/** The field at fault and what it accepts. */
export interface Problem {
  field: string;
  what: string;
}

/** Makes the error thrown for a problem (TierError for HTTP and rules, ProtocolError for sockets). */
export type Refuse = (field: string, what: string) => TierError;

export const invalidField: Refuse = (field, what) => new TierError('invalid_field', `${field}: ${what}`, { field });

type AnySchema = TSchema & RefusalOptions & Record<string, unknown>;

/** Checks of custom kinds, and their explanations (naming the field below, when they know it). */
const kindChecks = new Map<string, (value: unknown) => boolean>();
const kindProblems = new Map<string, (value: unknown, field: string) => Problem>();

/**
 * A schema checked by a function instead of its keywords: the function is the one rule other
 * code already keeps (the hub wire's attribute maps, parameters at any depth), the keywords still
 * describe it in the API document. `check` runs on every value; `explain` only on refusals.
 */
export function customKind<T>(name: string, check: (value: unknown) => boolean, explain: (value: unknown, field: string) => Problem) {
  TypeRegistry.Set(name, (_schema, value) => check(value));
  kindChecks.set(name, check);
  kindProblems.set(name, explain);
  return (described: TSchema) => Type.Unsafe<T>({ ...described, [Kind]: name });
}

/** A compiled schema. `root` names the value itself in errors (`body` for an HTTP body). */
export class Validator<S extends TSchema> {
  private readonly compiled: TypeCheck<S>;
  private readonly check: (value: unknown) => boolean;

  constructor(
    readonly schema: S,
    private readonly root = 'body',
  ) {
    this.compiled = TypeCompiler.Compile(schema);
    this.check = checker(schema as AnySchema);
  }

  is(value: unknown): value is Static<S> {
    return this.check(value);
  }

  /** The first problem of a value, null when it is valid; `root` names the value itself. */
  problem(value: unknown, root = this.root): Problem | null {
    const first = this.compiled.Errors(value).First();
    return first ? explain(first, value, root) : null;
  }

  /** The value, typed, or the error `refuse` makes for its first problem. */
  parse(value: unknown, refuse: Refuse = invalidField, root = this.root): Static<S> {
    if (this.check(value)) return value as Static<S>;
    const p = this.problem(value, root) ?? { field: root, what: 'is not valid' };
    throw refuse(p.field, p.what);
  }
}

/**
 * The check of a schema: a union with `select` tests the one variant the value picks (the others
 * cannot match it), anything else is TypeBox's compiled code. Equivalent to checking the union
 * whole, without trying variants the value cannot be.
 */
function checker(schema: AnySchema): (value: unknown) => boolean {
  const sel = schema.select;
  if (!sel || !Array.isArray(schema.anyOf)) return objectChecker(schema);
  const variants = (schema.anyOf as AnySchema[]).map(checker);
  if ('by' in sel) {
    const tags = (schema.anyOf as AnySchema[]).map((v) => constOf(v, sel.by));
    const by = sel.by;
    return (value) => {
      if (!isPlainObject(value)) return false;
      const tag = value[by];
      for (let i = 0; i < tags.length; i++) if (tags[i] === tag) return variants[i]!(value);
      return false;
    };
  }
  const keys = sel.keys;
  return (value) => {
    if (!isPlainObject(value)) return false;
    for (let i = 0; i < keys.length; i++) if (value[keys[i]!] !== undefined) return variants[i]!(value);
    return false;
  };
}

/**
 * TypeBox's compiled code; custom kinds among an object's own fields are called directly after
 * it rather than through TypeRegistry (four map look-ups a call: about 15 ns of the 35 an
 * attribute map's check took through it, measured).
 */
function objectChecker(schema: AnySchema): (value: unknown) => boolean {
  const props = schema[Kind] === 'Object' ? (schema.properties as Record<string, AnySchema>) : {};
  const required = new Set((schema.required as string[] | undefined) ?? []);
  const direct: Array<{ key: string; check: (value: unknown) => boolean; required: boolean }> = [];
  const rest: Record<string, AnySchema> = {};
  for (const [key, prop] of Object.entries(props)) {
    const check = kindChecks.get(String(prop[Kind]));
    if (check) direct.push({ key, check, required: required.has(key) });
    rest[key] = check ? (Type.Unknown() as AnySchema) : prop;
  }
  if (direct.length === 0) {
    const compiled = TypeCompiler.Compile(schema);
    return (value) => compiled.Check(value);
  }
  // the same object with the kinds' fields as Unknown: presence is still checked there
  const compiled = TypeCompiler.Compile({ ...schema, properties: rest } as AnySchema);
  return (value) => {
    if (!compiled.Check(value)) return false;
    for (let i = 0; i < direct.length; i++) {
      const d = direct[i]!;
      const v = (value as Record<string, unknown>)[d.key];
      if ((v !== undefined || d.required) && !d.check(v)) return false;
    }
    return true;
  };
}

export function compile<S extends TSchema>(schema: S, root?: string): Validator<S> {
  return new Validator(schema, root);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** An own property only: a key named like an Object.prototype member reads nothing inherited. */
function own(v: unknown, key: string): unknown {
  return isPlainObject(v) && Object.hasOwn(v, key) ? v[key] : undefined;
}

const escapeKey = (key: string) => key.replace(/~/g, '~0').replace(/\//g, '~1');
const unescapeKey = (key: string) => key.replace(/~1/g, '/').replace(/~0/g, '~');

/** A JSON pointer as the API names fields: `/actions/0/set/temp` → `actions[0].set.temp`. */
export function fieldOf(path: string, root: unknown, rootName: string): string {
  if (path === '') return rootName;
  let value: unknown = root;
  let field = '';
  for (const raw of path.slice(1).split('/')) {
    const key = unescapeKey(raw);
    if (Array.isArray(value)) {
      field += `[${key}]`;
      value = value[Number(key)];
    } else {
      field += field === '' ? key : `.${key}`;
      value = own(value, key);
    }
  }
  return field;
}

function messageFor(s: AnySchema, kind: 'type' | 'minProperties' | 'maxProperties' | 'propertyNames'): string | undefined {
  const m = s.errorMessage;
  return typeof m === 'string' ? m : m?.[kind];
}

/** Keys a client may send: not the forbidden ones (`Never`) nor the server-owned ones (`readOnly`). */
function allowedKeys(s: AnySchema): string[] {
  const props = (s.properties ?? {}) as Record<string, AnySchema>;
  return Object.keys(props).filter((k) => props[k]![Kind] !== 'Never' && props[k]!.readOnly !== true);
}

/** What a schema accepts, in the API's words: from its errorMessage, or from its keywords. */
export function describe(s: AnySchema): string {
  const custom = messageFor(s, 'type');
  if (custom) return custom;
  const bounds = (min: unknown, max: unknown, unit: string) =>
    max === undefined ? (min === undefined ? '' : ` of at least ${String(min)}${unit}`) : ` of ${String(min ?? 0)}..${String(max)}${unit}`;
  switch (s[Kind]) {
    case 'String':
      return `must be a string${bounds(s.minLength, s.maxLength, ' characters')}`;
    case 'Integer':
      if (s.maximum === undefined) return `must be an integer${bounds(s.minimum, undefined, '')}`;
      return `must be an integer in ${String(s.minimum ?? 0)}..${String(s.maximum)}`;
    case 'Number':
      return 'must be a finite number';
    case 'Boolean':
      return 'must be true or false';
    case 'Array':
      return `must be an array${bounds(s.minItems, s.maxItems, ' items')}`;
    case 'Object':
    case 'Record':
      return 'must be an object';
    case 'Literal':
      return `must be ${JSON.stringify(s.const)}`;
    case 'Null':
      return 'must be null';
    case 'Never':
      return 'is not allowed here';
    case 'Union': {
      const variants = s.anyOf as AnySchema[];
      if (variants.every((v) => v.const !== undefined)) return `must be one of ${variants.map((v) => JSON.stringify(v.const)).join(', ')}`;
      // each variant's own words are a "must …" sentence: one "must", the rest joined with "or"
      const ways = variants.map((v) => (v.const !== undefined ? `be ${JSON.stringify(v.const)}` : describe(v).replace(/^must /, '')));
      return `must ${ways.join(', or ')}`;
    }
    default:
      return 'has the wrong type';
  }
}

function explain(e: ValueError, root: unknown, rootName: string): Problem {
  const s = e.schema as AnySchema;
  const field = () => fieldOf(e.path, root, rootName);
  switch (e.type) {
    case ValueErrorType.Union:
      return explainUnion(e, root, rootName);
    case ValueErrorType.Kind: {
      const kind = kindProblems.get(String(s[Kind]));
      return kind ? kind(e.value, field()) : { field: field(), what: describe(s) };
    }
    case ValueErrorType.ObjectAdditionalProperties:
      if (s[Kind] === 'Record') return { field: field(), what: messageFor(s, 'propertyNames') ?? 'name not allowed' };
      return { field: field(), what: `unknown key (expected one of ${allowedKeys(s).join(', ')})` };
    case ValueErrorType.ObjectMinProperties:
      return { field: field(), what: messageFor(s, 'minProperties') ?? `must have at least ${String(s.minProperties)} keys` };
    case ValueErrorType.ObjectMaxProperties:
      return { field: field(), what: messageFor(s, 'maxProperties') ?? `must have at most ${String(s.maxProperties)} keys` };
    default:
      // a missing required field reports the field's own schema: "must be ..." says what to send
      return { field: field(), what: describe(s) };
  }
}

/** The discriminator value a union variant (or the first variant of a nested union) requires. */
function constOf(variant: AnySchema, key: string): unknown {
  if (Array.isArray(variant.anyOf)) return constOf(variant.anyOf[0] as AnySchema, key);
  return (variant.properties as Record<string, AnySchema> | undefined)?.[key]?.const;
}

/**
 * A union names the variant the client meant: the one its discriminator or its key selects; the
 * refusal is that variant's first problem. Unions without `select` (a scalar of several types)
 * refuse the value as a whole.
 */
function explainUnion(e: ValueError, root: unknown, rootName: string): Problem {
  const s = e.schema as AnySchema;
  const sel = s.select;
  const at = (key: string) => fieldOf(`${e.path}/${escapeKey(key)}`, root, rootName);
  if (!sel) return { field: fieldOf(e.path, root, rootName), what: describe(s) };
  if (!isPlainObject(e.value)) return { field: fieldOf(e.path, root, rootName), what: 'must be an object' };
  const variants = s.anyOf as AnySchema[];
  let index: number;
  if ('by' in sel) {
    const tag = own(e.value, sel.by);
    index = variants.findIndex((v) => constOf(v, sel.by) === tag);
    if (index < 0) return { field: at(sel.by), what: messageFor(s, 'type') ?? `must be one of ${variants.map((v) => JSON.stringify(constOf(v, sel.by))).join(', ')}` };
  } else {
    index = sel.keys.findIndex((k) => own(e.value, k) !== undefined);
    if (index < 0) return { field: at(sel.keys[0]!), what: describe(s) };
  }
  const sub = e.errors[index]?.First();
  return sub ? explain(sub, root, rootName) : { field: fieldOf(e.path, root, rootName), what: describe(s) };
}
