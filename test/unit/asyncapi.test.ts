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
import { validateAppRequest } from '../../src/protocol/app-codec.js';
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

// ---------------------------------------------------------------- requests: the document and the validator agree

const many = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`a${i}`, i]));
const nested = (depth: number): unknown => (depth === 0 ? 1 : { n: nested(depth - 1) });
const cmd = { op: 'cmd', id: 3, hub: HUB, device: 'lamp-1' };

/** Requests the node accepts. */
const ACCEPTED: Record<string, unknown> = {
  'sub': { op: 'sub', id: 0, home: HOME },
  'sub since': { op: 'sub', id: 1, home: HOME, since: { epoch: '4kq1w2', offset: 0 } },
  'sub with an unknown key': { op: 'sub', id: 1, home: HOME, extra: true },
  'sub to a home called toString': { op: 'sub', id: 1, home: 'toString' },
  'unsub': { op: 'unsub', id: 2, home: HOME },
  'ping, largest id': { op: 'ping', id: Number.MAX_SAFE_INTEGER },
  'cmd set': { ...cmd, set: { on: true, level: 80, name: 'x', err: null } },
  'cmd set 64 attributes': { ...cmd, set: many(64) },
  'cmd set a string of 1024': { ...cmd, set: { s: 'x'.repeat(1024) } },
  'cmd set with timeout': { ...cmd, set: { on: true }, timeoutMs: 1 },
  'cmd method': { ...cmd, method: 'identify' },
  'cmd method with params': { ...cmd, method: 'open', params: { to: [1, { a: null }], deep: nested(30) }, timeoutMs: 10_000 },
  'cmd with an unknown key': { ...cmd, method: 'open', extra: 1 },
};

/** Requests the node refuses. */
const REFUSED: Record<string, unknown> = {
  'unknown op': { op: 'subscribe', id: 1, home: HOME },
  'no op': { id: 1, home: HOME },
  'sub without home': { op: 'sub', id: 1 },
  'sub without id': { op: 'sub', home: HOME },
  'negative id': { op: 'ping', id: -1 },
  'fractional id': { op: 'ping', id: 1.5 },
  'id as a string': { op: 'ping', id: '1' },
  'id beyond 2^53 - 1': { op: 'ping', id: 2 ** 53 },
  'home with a dot': { op: 'sub', id: 1, home: 'h.1' },
  'empty home': { op: 'sub', id: 1, home: '' },
  'home of 65 characters': { op: 'sub', id: 1, home: 'h'.repeat(65) },
  'home __proto__': JSON.parse('{"op":"sub","id":1,"home":"__proto__"}'),
  'home constructor': { op: 'sub', id: 1, home: 'constructor' },
  'since without offset': { op: 'sub', id: 1, home: HOME, since: { epoch: 'e' } },
  'since with a negative offset': { op: 'sub', id: 1, home: HOME, since: { epoch: 'e', offset: -1 } },
  'since with a fractional offset': { op: 'sub', id: 1, home: HOME, since: { epoch: 'e', offset: 1.5 } },
  'since with an empty epoch': { op: 'sub', id: 1, home: HOME, since: { epoch: '', offset: 1 } },
  'since with an epoch of 65': { op: 'sub', id: 1, home: HOME, since: { epoch: 'e'.repeat(65), offset: 1 } },
  'since with an unknown key': { op: 'sub', id: 1, home: HOME, since: { epoch: 'e', offset: 1, at: 0 } },
  'since null': { op: 'sub', id: 1, home: HOME, since: null },
  'unsub without home': { op: 'unsub', id: 1 },
  'cmd without set or method': { ...cmd },
  'cmd with set and method': { ...cmd, set: { on: true }, method: 'open' },
  'cmd with set and params': { ...cmd, set: { on: true }, params: {} },
  'cmd with an empty set': { ...cmd, set: {} },
  'cmd set to a map': { ...cmd, set: { on: { x: 1 } } },
  'cmd set to an array': { ...cmd, set: { on: [1] } },
  'cmd set 65 attributes': { ...cmd, set: many(65) },
  'cmd set a string of 1025': { ...cmd, set: { s: 'x'.repeat(1025) } },
  'cmd set constructor': { ...cmd, set: { constructor: 1 } },
  'cmd set an empty name': { ...cmd, set: { '': 1 } },
  'cmd set a name of 65': { ...cmd, set: { ['n'.repeat(65)]: 1 } },
  'cmd with an empty method': { ...cmd, method: '' },
  'cmd with a method of 65': { ...cmd, method: 'm'.repeat(65) },
  'cmd with params as an array': { ...cmd, method: 'open', params: [] },
  'cmd with a top-level param constructor': { ...cmd, method: 'open', params: { constructor: 1 } },
  'cmd with a top-level param __proto__': JSON.parse(`{"op":"cmd","id":3,"hub":"${HUB}","device":"lamp-1","method":"open","params":{"__proto__":1}}`),
  'cmd with timeout 0': { ...cmd, method: 'open', timeoutMs: 0 },
  'cmd with a fractional timeout': { ...cmd, method: 'open', timeoutMs: 1.5 },
  'cmd without device': { op: 'cmd', id: 3, hub: HUB, set: { on: true } },
  'cmd to a bad hub id': { ...cmd, hub: 'hub 7', set: { on: true } },
  'not a map': [1, 2],
  'null': null,
};

/**
 * Refused by the node, accepted by the document, which says so in words: JSON Schema cannot count
 * nesting or look for a key at every depth without a recursive schema.
 */
const REFUSED_IN_WORDS: Record<string, unknown> = {
  'params nested 33 levels': { ...cmd, method: 'open', params: { deep: nested(32) } },
  'a nested param __proto__': JSON.parse(`{"op":"cmd","id":3,"hub":"${HUB}","device":"lamp-1","method":"open","params":{"a":{"__proto__":1}}}`),
};

function nodeAccepts(request: unknown): boolean {
  try {
    validateAppRequest(request);
    return true;
  } catch {
    return false;
  }
}

describe('AsyncAPI document and the request validator (src/schemas/app.ts)', () => {
  it('accepts what the node accepts, each as the message of its op', () => {
    for (const [name, request] of Object.entries(ACCEPTED)) {
      expect(nodeAccepts(request), `node: ${name}`).toBe(true);
      expect(problems(schema('AppRequest'), request), `document: ${name}`).toEqual([]);
      const op = (request as { op: string }).op;
      expect(problems(doc.channels.appSocket!.messages![`${op}Request`]!.payload, request), `${op} message: ${name}`).toEqual([]);
    }
  });

  it('refuses what the node refuses: missing fields, unknown ops, bad ids, both forms of a command', () => {
    for (const [name, request] of Object.entries(REFUSED)) {
      expect(nodeAccepts(request), `node: ${name}`).toBe(false);
      expect(problems(schema('AppRequest'), request), `document: ${name}`).not.toEqual([]);
    }
  });

  it('leaves only the nesting rules of params to its words', () => {
    for (const [name, request] of Object.entries(REFUSED_IN_WORDS)) {
      expect(nodeAccepts(request), `node: ${name}`).toBe(false);
      expect(problems(schema('AppRequest'), request), `document: ${name}`).toEqual([]);
    }
    expect(String(schema('Params').description)).toMatch(/nested at most 32 levels, no\s+key `__proto__` at any depth/);
  });
});
