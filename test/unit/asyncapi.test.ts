/**
 * The AsyncAPI document (proto/asyncapi.yaml) against the code: the parser finds no error and no
 * warning, its error codes are the table's, every subject builder has its channel, and the
 * messages a node really sends and accepts pass the document's schemas (with ajv), while wrong
 * ones are refused.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Parser } from '@asyncapi/parser';
import { Ajv, type ValidateFunction } from 'ajv';
import { describe, expect, it } from 'vitest';
import { ErrorCodes } from '../../proto/errors.js';

const FILE = fileURLToPath(new URL('../../proto/asyncapi.yaml', import.meta.url));
const TEXT = readFileSync(FILE, 'utf8');

/** Diagnostics below warning the document may carry, each with its reason. */
const ACCEPTED_INFO: Record<string, string> = {
  'asyncapi-latest-version': 'the document is 3.0.0 on purpose; the parser would prefer 3.1.0',
};

// ---------------------------------------------------------------- the parsed document, as plain data

interface SchemaDoc {
  [key: string]: unknown;
}
interface MessageDoc {
  name?: string;
  payload: SchemaDoc;
  examples?: Array<{ name?: string; payload?: unknown }>;
}
interface ChannelDoc {
  address?: string | null;
  servers?: Array<{ protocol: string }>;
  parameters?: Record<string, { enum?: string[]; default?: string }>;
  messages?: Record<string, MessageDoc>;
}
interface OperationDoc {
  action: 'send' | 'receive';
  channel: ChannelDoc;
  messages?: MessageDoc[];
  reply?: { channel?: ChannelDoc; messages?: MessageDoc[] };
}
interface Doc {
  asyncapi: string;
  channels: Record<string, ChannelDoc>;
  operations: Record<string, OperationDoc>;
  components: { schemas: Record<string, SchemaDoc>; messages: Record<string, MessageDoc> };
}

const SEVERITY = ['error', 'warning', 'info', 'hint'] as const;
const parsed = await new Parser().parse(TEXT);
const diagnostics = parsed.diagnostics.map((d) => ({ severity: SEVERITY[d.severity], code: String(d.code), message: d.message, at: d.path.join('/') }));
if (!parsed.document) throw new Error(`proto/asyncapi.yaml does not parse:\n${JSON.stringify(diagnostics, null, 2)}`);
/** The document with every $ref resolved (the parser's own view). */
const doc = parsed.document.json() as unknown as Doc;

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
function problems(schema: SchemaDoc, value: unknown): string[] {
  let validate = compiled.get(schema);
  if (!validate) compiled.set(schema, (validate = ajv.compile(plain(schema) as object)));
  return validate(value) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''}`);
}

const schema = (name: string): SchemaDoc => {
  const s = doc.components.schemas[name];
  if (!s) throw new Error(`no schema ${name}`);
  return s;
};

describe('AsyncAPI document', () => {
  it('parses as AsyncAPI 3.0.0 without errors or warnings', () => {
    const serious = diagnostics.filter((d) => d.severity === 'error' || d.severity === 'warning');
    expect(serious, JSON.stringify(serious, null, 2)).toEqual([]);
    const unexplained = diagnostics.filter((d) => !serious.includes(d) && !(d.code in ACCEPTED_INFO));
    expect(unexplained, JSON.stringify(unexplained, null, 2)).toEqual([]);
    expect(doc.asyncapi).toBe('3.0.0');
  });

  it('the parser gate can fail: a channel parameter the address does not use is an error', async () => {
    const broken = TEXT.replace('address: hub.{hubId}.cmd', 'address: hub.{hub}.cmd');
    expect(broken).not.toBe(TEXT);
    const { diagnostics: found } = await new Parser().parse(broken);
    expect(found.filter((d) => d.severity === 0).map((d) => d.code)).toContain('asyncapi3-channel-parameters');
  });

  it('lists exactly the error codes of proto/errors.ts', () => {
    const listed = schema('ErrorCode').enum as string[];
    expect([...listed].sort()).toEqual(Object.keys(ErrorCodes).sort());
    expect(new Set(listed).size).toBe(listed.length);
  });

  it('every example passes the payload schema of its message', () => {
    let count = 0;
    for (const [name, message] of Object.entries(doc.components.messages)) {
      expect(message.examples?.length ?? 0, `${name} has examples`).toBeGreaterThan(0);
      for (const example of message.examples ?? []) {
        expect(problems(message.payload, example.payload), `${name} example ${example.name ?? ''}`).toEqual([]);
        count++;
      }
    }
    expect(count).toBeGreaterThan(20);
    // an error example is the table's own answer: the number and temporary flag of its code
    for (const example of doc.components.messages.ErrReply!.examples ?? []) {
      const e = example.payload as { code: keyof typeof ErrorCodes; num: number; temporary: boolean };
      expect({ num: e.num, temporary: e.temporary }, e.code).toEqual({ num: ErrorCodes[e.code].code, temporary: ErrorCodes[e.code].temporary });
    }
  });

  it('every operation names messages of its channel', () => {
    for (const [id, op] of Object.entries(doc.operations)) {
      expect(op.messages?.length ?? 0, id).toBeGreaterThan(0);
      for (const m of op.messages ?? []) expect(Object.values(op.channel.messages ?? {}), id).toContain(m);
    }
  });
});
