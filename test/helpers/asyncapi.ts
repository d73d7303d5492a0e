/**
 * proto/asyncapi.yaml as the AsyncAPI parser reads it (every $ref resolved), and its JSON Schemas
 * applied with ajv: what the tests that hold the document to the code share.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Parser } from '@asyncapi/parser';
import { Ajv, type ValidateFunction } from 'ajv';

export const FILE = fileURLToPath(new URL('../../proto/asyncapi.yaml', import.meta.url));
export const TEXT = readFileSync(FILE, 'utf8');

// ---------------------------------------------------------------- the parsed document, as plain data

export interface SchemaDoc {
  [key: string]: unknown;
}
export interface MessageDoc {
  name?: string;
  payload: SchemaDoc;
  examples?: Array<{ name?: string; payload?: unknown }>;
}
export interface ChannelDoc {
  address?: string | null;
  servers?: Array<{ protocol: string }>;
  parameters?: Record<string, { enum?: string[]; default?: string }>;
  messages?: Record<string, MessageDoc>;
}
export interface OperationDoc {
  action: 'send' | 'receive';
  channel: ChannelDoc;
  messages?: MessageDoc[];
  reply?: { channel?: ChannelDoc; messages?: MessageDoc[] };
}
export interface Doc {
  asyncapi: string;
  channels: Record<string, ChannelDoc>;
  operations: Record<string, OperationDoc>;
  components: { schemas: Record<string, SchemaDoc>; messages: Record<string, MessageDoc> };
}

const SEVERITY = ['error', 'warning', 'info', 'hint'] as const;
const parsed = await new Parser().parse(TEXT);
export const diagnostics = parsed.diagnostics.map((d) => ({ severity: SEVERITY[d.severity], code: String(d.code), message: d.message, at: d.path.join('/') }));
if (!parsed.document) throw new Error(`proto/asyncapi.yaml does not parse:\n${JSON.stringify(diagnostics, null, 2)}`);
/** The document with every $ref resolved (the parser's own view). */
export const doc = parsed.document.json() as unknown as Doc;

// ---------------------------------------------------------------- JSON Schema validation

/**
 * strict: a keyword ajv does not know (a typo in the document) or one that cannot apply to the
 * schema's type fails compilation; `required` in an `if`/`then` may name properties declared beside it.
 */
const ajv = new Ajv({ allErrors: true, strict: true, strictRequired: false, allowUnionTypes: true });
const compiled = new WeakMap<object, ValidateFunction>();

/** The schema without the parser's `x-parser-*` annotations. */
function plain(s: unknown): unknown {
  if (Array.isArray(s)) return s.map(plain);
  if (typeof s !== 'object' || s === null) return s;
  return Object.fromEntries(Object.entries(s).filter(([k]) => !k.startsWith('x-')).map(([k, v]) => [k, plain(v)]));
}

/** What the schema finds wrong with the value ([] when it passes). */
export function problems(schema: SchemaDoc, value: unknown): string[] {
  let validate = compiled.get(schema);
  if (!validate) compiled.set(schema, (validate = ajv.compile(plain(schema) as object)));
  return validate(value) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''}`);
}

export const operation = (id: string): OperationDoc => {
  const op = doc.operations[id];
  if (!op) throw new Error(`no operation ${id}`);
  return op;
};

/** What is wrong with a value as a message of an operation: [] when one of its messages (or replies) fits. */
export function misfit(id: string, value: unknown, part: 'messages' | 'reply' = 'messages'): string[] {
  const op = operation(id);
  const messages = (part === 'messages' ? op.messages : op.reply?.messages) ?? [];
  if (messages.length === 0) throw new Error(`operation ${id} has no ${part}`);
  const found = messages.map((m) => problems(m.payload, value));
  return found.some((p) => p.length === 0) ? [] : found.flat();
}

/** A message's examples by name. */
export const examples = (message: string): Record<string, unknown> =>
  Object.fromEntries((doc.components.messages[message]?.examples ?? []).map((e) => [e.name, e.payload]));

export const schema = (name: string): SchemaDoc => {
  const s = doc.components.schemas[name];
  if (!s) throw new Error(`no schema ${name}`);
  return s;
};
