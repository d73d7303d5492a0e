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
import { hubVerbOf, SHARDS, shardOf, subjects } from '../../proto/subjects.js';
import { DEFAULT_REDIS_PREFIX } from '../../src/ports/redis.js';
import { ID_REGEX } from '../../src/schemas/common.js';
import { mountAppGateway } from '../../src/transport/app-gateway.js';

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

// ---------------------------------------------------------------- subjects

const HUB = 'hub-7';
const HOME = 'h1';
/** The values each channel parameter takes for HUB of HOME. */
const VALUES: Record<string, string> = { hubId: HUB, homeId: HOME, shard: String(shardOf(HOME)) };

/** Every subject builder, what it builds for HUB of HOME, and the channels that subject reaches. */
const BUILDERS: Record<keyof typeof subjects, { subject: string; channels: string[] }> = {
  hubCommand: { subject: subjects.hubCommand(HUB), channels: ['hubCommand'] },
  hubDesired: { subject: subjects.hubDesired(HUB), channels: ['hubDesired'] },
  hubTakeover: { subject: subjects.hubTakeover(HUB), channels: ['hubTakeover'] },
  hubAll: { subject: subjects.hubAll(HUB), channels: ['hubCommand', 'hubDesired', 'hubTakeover'] },
  hubEvents: { subject: subjects.hubEvents(HOME, HUB), channels: ['hubEvents'] },
  homeEvents: { subject: subjects.homeEvents(HOME), channels: ['hubEvents'] },
};

/** The channels NATS carries, with their addresses. */
const natsChannels = Object.entries(doc.channels).flatMap(([id, c]) =>
  typeof c.address === 'string' && c.servers?.some((s) => s.protocol === 'nats') ? [{ id, address: c.address, channel: c }] : [],
);

/** A channel address with each `{parameter}` replaced by its value. */
function instantiate(address: string, values: Record<string, string>): string {
  return address.replace(/\{(\w+)\}/g, (_, name: string) => {
    const v = values[name];
    if (v === undefined) throw new Error(`no value for parameter ${name} of ${address}`);
    return v;
  });
}

/** The parameters a concrete subject gives an address, or null when it does not fit it. */
function parametersOf(address: string, subject: string): Record<string, string> | null {
  const names: string[] = [];
  const source = address
    .split(/(\{\w+\})/)
    .map((part) => {
      const m = /^\{(\w+)\}$/.exec(part);
      if (!m) return part.replace(/[.*+?^$()|[\]\\]/g, '\\$&');
      names.push(m[1]!);
      return '([^.]+)';
    })
    .join('');
  const found = new RegExp(`^${source}$`).exec(subject);
  return found ? Object.fromEntries(names.map((n, i) => [n, found[i + 1]!])) : null;
}

/** NATS subject matching: `*` is one token, `>` the rest (at least one token). */
function natsMatches(pattern: string, subject: string): boolean {
  const p = pattern.split('.');
  const s = subject.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return s.length > i;
    if (i >= s.length || (p[i] !== '*' && p[i] !== s[i])) return false;
  }
  return p.length === s.length;
}

describe('AsyncAPI document and proto/subjects.ts', () => {
  it('has a channel for every subject builder, with the parameters in their places', () => {
    expect(Object.keys(BUILDERS).sort()).toEqual(Object.keys(subjects).sort());
    const reached = new Set<string>();
    for (const [name, { subject, channels }] of Object.entries(BUILDERS)) {
      const matched = natsChannels.filter((c) => natsMatches(subject, instantiate(c.address, VALUES))).map((c) => c.id);
      expect(matched.sort(), `${name}: ${subject}`).toEqual([...channels].sort());
      matched.forEach((id) => reached.add(id));
      if (!/[*>]/.test(subject)) {
        const only = natsChannels.find((c) => c.id === channels[0])!;
        const params = parametersOf(only.address, subject);
        expect(params, `${name}: ${subject} against ${only.address}`).not.toBeNull();
        for (const [k, v] of Object.entries(params!)) expect(v, `${name} parameter ${k}`).toBe(VALUES[k]);
      }
    }
    // and no NATS channel that no builder reaches
    expect([...reached].sort()).toEqual(natsChannels.map((c) => c.id).sort());
    // what a hub's holder subscribes to (hubAll) is exactly the verbs it knows
    for (const id of BUILDERS.hubAll.channels) expect(hubVerbOf(instantiate(doc.channels[id]!.address!, VALUES)), id).not.toBeNull();
  });

  it('names every shard and the Redis prefix the code uses', () => {
    const shard = doc.channels.hubEvents!.parameters!.shard!;
    expect(shard.enum).toEqual(Array.from({ length: SHARDS }, (_, i) => String(i)));
    expect(shardOf('h1')).toBe(18); // the document's example subject evt.18.h1.hub-7
    expect(shardOf('home-42')).toBe(63);
    expect(doc.channels.eventStream!.parameters!.prefix!.default).toBe(DEFAULT_REDIS_PREFIX);
  });

  it('describes ids by the pattern the request schemas check', () => {
    expect(schema('Id').pattern).toBe(ID_REGEX);
  });

  it('puts the app socket at the path the gateway mounts', () => {
    const paths: string[] = [];
    mountAppGateway({ ws: (path: string) => paths.push(path) } as never, {} as never);
    expect(paths).toEqual([doc.channels.appSocket!.address]);
    expect(doc.channels.appSocket!.servers!.map((s) => s.protocol).sort()).toEqual(['ws', 'wss']);
    expect(doc.channels.eventStream!.servers!.map((s) => s.protocol)).toEqual(['redis']);
    expect(doc.channels.hubCommandReply!.address).toBeNull();
  });
});
