/**
 * The AsyncAPI document (proto/asyncapi.yaml) against the code: the parser finds no error and no
 * warning, its error codes are the table's, every subject builder has its channel, and the
 * messages a node really sends and accepts pass the document's schemas (with ajv), while wrong
 * ones are refused.
 */
import { Parser } from '@asyncapi/parser';
import { beforeAll, describe, expect, it } from 'vitest';
import type { AppEventMessage, AppReply, Position, SubResult } from '../../proto/app.js';
import { ErrorCodes } from '../../proto/errors.js';
import type { ServerToHubFrame } from '../../proto/frames.js';
import { hubVerbOf, SHARDS, shardOf, subjects, type TokenRevocation } from '../../proto/subjects.js';
import { AppSession, type AppLink, type FeedSubscriber } from '../../src/actors/app-session.js';
import type { Principal } from '../../src/auth/authenticator.js';
import { fleetParts, type FleetParts } from '../../src/compose/fleet-wiring.js';
import { memoryPorts } from '../../src/compose/memory-ports.js';
import { publishDesired, sendCommand } from '../../src/actors/commands.js';
import { EventPublisher } from '../../src/actors/event-publisher.js';
import { HubSession, type HubLink } from '../../src/actors/hub-session.js';
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import { asTierError } from '../../src/errors.js';
import type { Bus } from '../../src/ports/bus/bus.js';
import { MemoryEventHistory } from '../../src/ports/history/history-memory.js';
import type { EventHistory } from '../../src/ports/history/history.js';
import { DEFAULT_REDIS_PREFIX } from '../../src/ports/redis.js';
import { decodeAppRequest, encodeAppMessage, validateAppRequest, type AppEncoding } from '../../src/protocol/app-codec.js';
import { appEventBytes, appEventJson, positionOf } from '../../src/protocol/app-events.js';
import { decodeHubFrame, decodeServerFrame, decodeValue, encodeBus, encodeValue } from '../../src/protocol/codec.js';
import { ID_REGEX } from '../../src/schemas/common.js';
import { MAX_TTL_S } from '../../src/schemas/hubs.js';
import { mountAppGateway } from '../../src/transport/app-gateway.js';
import { feedTopic, HomeFeeds, type TopicPublisher } from '../../src/transport/home-feeds.js';
import { WriteBatch } from '../../src/transport/write-batch.js';
import { diagnostics, doc, examples, misfit, problems, schema, TEXT } from '../helpers/asyncapi.js';
import { hubSessionDeps } from '../helpers/hub-session-deps.js';
import { inProcessConfig } from '../helpers/in-process-config.js';
import { fakeUwsResponse } from '../helpers/fake-uws-response.js';

/** Diagnostics below warning the document may carry, each with its reason. */
const ACCEPTED_INFO: Record<string, string> = {
  'asyncapi-latest-version': 'the document is 3.0.0 on purpose; the parser would prefer 3.1.0',
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

  it('the stream entry example holds a StoredEvent (the real entries: test/integration/asyncapi-stream.test.ts)', () => {
    const example = examples('EventStreamEntry').state as { event: string };
    expect(problems(schema('StoredEvent'), decodeValue(Buffer.from(example.event, 'hex')))).toEqual([]);
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
  hubClose: { subject: subjects.hubClose(HUB), channels: ['hubClose'] },
  hubsChanged: { subject: subjects.hubsChanged, channels: ['hubsChanged'] },
  tokensRevoked: { subject: subjects.tokensRevoked, channels: ['tokensRevoked'] },
  fleetReconcile: { subject: subjects.fleetReconcile, channels: ['fleetReconcile'] },
  auditEvents: { subject: subjects.auditEvents, channels: ['auditEvents'] },
  hubAll: { subject: subjects.hubAll(HUB), channels: ['hubCommand', 'hubDesired', 'hubTakeover', 'hubClose'] },
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
  'cmd with a param name of 65 characters': { ...cmd, method: 'open', params: { ['k'.repeat(65)]: 1 } },
  'cmd with an empty param name': { ...cmd, method: 'open', params: { '': 1 } },
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
  'a param string of 1025 characters': { ...cmd, method: 'open', params: { data: 'x'.repeat(1_025) } },
  'a nested param name of 65 characters': { ...cmd, method: 'open', params: { a: [{ ['k'.repeat(65)]: 1 }] } },
  'a nested empty param name': { ...cmd, method: 'open', params: { a: [{ '': 1 }] } },
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

  it('leaves only the nesting rules and nested limits of params to its words', () => {
    for (const [name, request] of Object.entries(REFUSED_IN_WORDS)) {
      expect(nodeAccepts(request), `node: ${name}`).toBe(false);
      expect(problems(schema('AppRequest'), request), `document: ${name}`).toEqual([]);
    }
    expect(String(schema('Params').description)).toMatch(/nested at most 32 levels, no\s+key `__proto__` at any depth, keys of 1 to 64 characters and strings of at most 1024 at any\s+depth/);
  });
});

// ---------------------------------------------------------------- real messages: a hub session and app sessions

/** Values as they come, and the first one (already there or still to come) that fits. */
class Seen<T> {
  readonly all: T[] = [];
  private waiting: Array<{ fits: (v: T) => boolean; resolve: (v: T) => void }> = [];
  push(v: T): void {
    this.all.push(v);
    this.waiting = this.waiting.filter((w) => (w.fits(v) ? (w.resolve(v), false) : true));
  }
  /** @param from the first index looked at among those already seen */
  next(fits: (v: T) => boolean, from = 0): Promise<T> {
    const found = this.all.slice(from).find(fits);
    return found !== undefined ? Promise.resolve(found) : new Promise((resolve) => this.waiting.push({ fits, resolve }));
  }
}

/** A hub on the other side of the session: it answers commands, refusing `unlock` with its own code. */
class FakeHub implements HubLink {
  readonly frames = new Seen<ServerToHubFrame>();
  session: HubSession | null = null;
  send(bytes: Uint8Array): boolean {
    const f = decodeServerFrame(bytes);
    this.frames.push(f);
    if (f.t === 7) {
      const answer = f.m === 'unlock' ? { t: 8, id: f.id, ok: false, e: 'jammed' } : { t: 8, id: f.id, ok: true, r: f.p };
      setImmediate(() => this.frame(answer));
    }
    return true;
  }
  close(code: number): void {
    this.session?.tell({ type: 'closed', code });
  }
  frame(f: object): void {
    this.session!.receiveFrame(decodeHubFrame(encodeValue(f)));
  }
}

/** The uWS topics of one node as HomeFeeds sees them: a message published on a topic reaches the apps joined to it. */
class FakeTopics implements TopicPublisher {
  private readonly members = new Map<string, Set<FakeAppLink>>();
  numSubscribers(topic: string): number {
    return this.members.get(topic)?.size ?? 0;
  }
  publish(topic: string, message: Uint8Array | string): boolean {
    for (const link of this.members.get(topic) ?? []) link.receive(message);
    return true;
  }
  join(topic: string, link: FakeAppLink): void {
    const set = this.members.get(topic) ?? new Set();
    this.members.set(topic, set.add(link));
  }
  leave(topic: string, link: FakeAppLink): void {
    this.members.get(topic)?.delete(link);
  }
}

/**
 * One app connection served as UwsAppLink serves it, in its encoding, with a socket buffer that
 * holds one event: `received` is every message the app read, in order (answers, recovered events,
 * reloads, then what its topic carries), decoded as the app decodes it; `joins` keeps, per `sub`
 * that joined, the answer and the bytes of the events the recovery sent.
 */
class FakeAppLink implements AppLink {
  open = true;
  readonly received: unknown[] = [];
  readonly replies = new Seen<AppReply>();
  readonly joins: Array<{ homeId: string; result: SubResult | null; sent: Uint8Array[] }> = [];
  /** homes whose topic the connection joined */
  readonly joined = new Seen<string>();
  /** runs once, at the next wait for the socket to drain */
  onDrain: (() => Promise<void>) | null = null;
  constructor(
    readonly enc: AppEncoding,
    private readonly topics: FakeTopics,
  ) {}
  reply(msg: AppReply): void {
    this.receive(encodeAppMessage(msg, this.enc));
    this.replies.push(msg);
  }
  subscriber(homeId: string, id: number, wanted: () => boolean): FeedSubscriber {
    const join: FakeAppLink['joins'][number] = { homeId, result: null, sent: [] };
    this.joins.push(join);
    const link = this;
    return {
      get open() {
        return link.open && wanted();
      },
      answer: (result) => {
        join.result = result;
        this.reply({ op: 'ok', id, result });
      },
      // msgpack: the bytes as they are; JSON: through appEventJson
      send: (events, from) => {
        const bytes = events[from]!;
        join.sent.push(bytes);
        this.receive(this.enc === 'msgpack' ? bytes : appEventJson(bytes));
        return 1;
      },
      drained: async () => {
        const hook = this.onDrain;
        this.onDrain = null;
        await hook?.();
      },
      reload: (reason, pos) => this.receive(encodeAppMessage({ op: 'reload', home: homeId, reason, pos }, this.enc)),
      join: () => {
        this.topics.join(feedTopic(this.enc, homeId), this);
        this.joined.push(homeId);
      },
    };
  }
  leave(homeId: string): void {
    this.topics.leave(feedTopic(this.enc, homeId), this);
  }
  closeAfterReplies(): void {
    this.open = false;
  }
  /** a message as the socket delivers it: text is JSON, binary msgpack */
  receive(message: Uint8Array | string): void {
    this.received.push(typeof message === 'string' ? JSON.parse(message) : decodeValue(message));
  }
}

/**
 * One route of the fleet's HTTP API as src/compose/fleet-wiring.ts mounts it, on an app that never
 * listens, run as uWS runs it: for the admin, with a JSON body; answers the reply's status and body.
 */
function fleetRoute(parts: FleetParts, method: string, pattern: string): (body: object) => Promise<{ status: number; body: unknown }> {
  type Handler = (res: never, req: never) => void;
  const handlers = new Map<string, Handler>();
  const app = new Proxy({}, { get: (_, m) => (p: string, handler: Handler) => handlers.set(`${String(m)} ${p}`, handler) });
  parts.mount(app as never, { auth: { fromHeader: async () => ({ kind: 'admin' }), revocationNow: async () => Date.now() } as never, writes: new WriteBatch(() => {}), table: [], eventsSettled: async () => {} });
  const handler = handlers.get(`${method} ${pattern}`);
  if (!handler) throw new Error(`no route ${method} ${pattern}`);
  return (body) =>
    new Promise((resolve) => {
      const res = fakeUwsResponse(JSON.stringify(body), (a) => resolve({ status: a.status, body: JSON.parse(a.body) }));
      const req = { getParameter: () => '', getMethod: () => method, getUrl: () => pattern, getQuery: () => '', getHeader: () => '' };
      handler(res as never, req as never);
    });
}

interface BusSeen {
  subject: string;
  data: Uint8Array;
}

/** One request of the app socket as text, and what the node answered. */
interface Exchange {
  name: string;
  text: string;
  request: unknown;
  reply: AppReply;
}

/** Events kept per home: a resume after offset 1 gets 3 events, one after offset 0 would need 4 (too_old). */
const RETENTION = { maxEvents: 3, maxAgeMs: 3_600_000 };
/** An epoch no history of this test has. */
const OTHER_EPOCH = 'c0ffee000000';

/**
 * A hub session and app sessions of one node on a memory bus, as the composition root wires them:
 * the hub's events go through the EventPublisher into a memory history and onto the bus with their
 * positions; apps subscribe through a real HomeFeeds; the operator provisions, moves and disables
 * the hub and revokes user tokens through the node's fleet part. Everything said on the bus is
 * recorded, and everything each app receives.
 */
async function runNode() {
  const wheel = new TimerWheel();
  const deps = hubSessionDeps(wheel);
  const log = deps.system.log;
  const bus = deps.bus;
  const seen = new Seen<BusSeen>();
  bus.subscribe('hub.>', (m) => seen.push({ subject: m.subject, data: m.data }));
  bus.subscribe('evt.>', (m) => seen.push({ subject: m.subject, data: m.data }));
  bus.subscribe('fleet.>', (m) => seen.push({ subject: m.subject, data: m.data }));
  const commandReplies: Uint8Array[] = [];
  const recording: Bus = {
    publish: (subject, data) => bus.publish(subject, data),
    subscribe: (subject, handler, options) => bus.subscribe(subject, handler, options),
    request: async (subject, data, timeoutMs) => {
      const reply = await bus.request(subject, data, timeoutMs);
      commandReplies.push(reply);
      return reply;
    },
    flush: () => bus.flush(),
    close: () => bus.close(),
  };
  const eventOf = (kind: string) => seen.next((m) => m.subject.startsWith('evt.') && (decodeValue(m.data) as { kind: string }).kind === kind);
  const history = new MemoryEventHistory(RETENTION);
  const publisher = new EventPublisher(bus, history, log, () => {});
  // the node's fleet part, as src/compose/fleet-wiring.ts wires it, on this bus and directory; the operator provisions the hub
  const config = inProcessConfig('asyncapi-admin-token-0123456789', 'asyncapi-jwt-secret-0123456789abcdef');
  const fleet = await fleetParts(config, { ...memoryPorts(config, wheel, log), bus, directory: deps.directory, shadows: deps.shadows }, log, undefined, bus, publisher.publish);
  await fleet.fleet.provision({ hubId: HUB, homeId: HOME });

  // the hub: online, a report, an event, a device list change (offsets 1 to 4)
  const hub = new FakeHub();
  hub.session = new HubSession(HUB, HOME, hub, { ...deps, publishEvent: publisher.publish });
  hub.frame({ t: 1, v: 1, b: 'boot' });
  await hub.frames.next((f) => f.t === 2);
  hub.frame({ t: 4, s: 1, r: { 'lamp-1': { on: false, level: 10 } } });
  hub.frame({ t: 5, s: 2, d: 'button-1', e: 'double_press', p: { count: 2 } });
  hub.frame({ t: 9, s: 3, j: [{ d: 'plug-2', k: 'plug', m: 'ZP-100' }], l: ['lamp-9'] });
  await eventOf('devices');
  publishDesired(bus, HUB, 'lamp-1', { reported: { on: false }, reportedVersion: 1, reportedAt: Date.now(), desired: { on: true }, desiredVersion: 1 });
  await seen.next((m) => m.subject === subjects.hubDesired(HUB));

  // the apps: this node's HomeFeeds with the history, and a node that keeps none (TIER_HISTORY_SIZE=0)
  const side = (history?: EventHistory) => {
    const topics = new FakeTopics();
    return { topics, feeds: new HomeFeeds(bus, topics, log, { history }) };
  };
  const withHistory = side(history);
  const noHistory = side();
  let connections = 0;
  const connect = (enc: AppEncoding, node = withHistory, principal: Principal = { kind: 'user', sub: 'u1', homes: new Set([HOME]) }) => {
    const link = new FakeAppLink(enc, node.topics);
    const session = new AppSession(
      principal,
      link,
      {
        system: deps.system,
        feeds: node.feeds,
        sendCommand: (hubId, deviceId, spec, timeoutMs) => sendCommand(recording, hubId, deviceId, spec, timeoutMs),
        homeOf: async (hubId) => (hubId === HUB ? HOME : null),
        commandTimeoutMs: 5_000,
        maxSubscriptions: 64,
      },
      `app:u1:${++connections}`,
    );
    return { link, session };
  };

  // requests as text, answered as the gateway answers them
  const exchanges: Exchange[] = [];
  const ask = async (app: ReturnType<typeof connect>, name: string, text: string, id?: number) => {
    const before = app.link.replies.all.length;
    try {
      app.session.tell({ type: 'request', request: decodeAppRequest(new TextEncoder().encode(text).buffer as ArrayBuffer, false, 16_384, 60_000) });
    } catch (err) {
      app.session.rejectRaw(asTierError(err));
    }
    const reply = await app.link.replies.next((r) => r.id === id, before);
    let request: unknown = null;
    try {
      request = JSON.parse(text);
    } catch {}
    exchanges.push({ name, text, request, reply });
  };
  const json = (v: object) => JSON.stringify(v);
  const app = connect('json');
  await ask(app, 'ping', json({ op: 'ping', id: 1 }), 1);
  await ask(app, 'sub to another home', json({ op: 'sub', id: 2, home: 'h2' }), 2);
  await ask(app, 'unsub', json({ op: 'unsub', id: 3, home: HOME }), 3);
  await ask(app, 'cmd set', json({ op: 'cmd', id: 4, hub: HUB, device: 'lamp-1', set: { on: true } }), 4);
  await ask(app, 'cmd the hub refuses', json({ op: 'cmd', id: 5, hub: HUB, device: 'lamp-1', method: 'unlock', params: { code: '1234' } }), 5);
  await ask(app, 'cmd to an unknown device', json({ op: 'cmd', id: 6, hub: HUB, device: 'lamp-9', method: 'identify' }), 6);
  // 12 KB of JSON, within the app's limit; 27 KB as a command frame (msgpack floats take 9 bytes): over the hub's max
  await ask(app, 'cmd over the hub frame max', json({ op: 'cmd', id: 12, hub: HUB, device: 'lamp-1', method: 'show', params: { lines: Array.from({ length: 3_000 }, () => 0.1) } }), 12);
  await ask(app, 'cmd to another home', json({ op: 'cmd', id: 7, hub: 'hub-x', device: 'lamp-1', set: { on: true } }), 7);
  await ask(app, 'invalid cmd', json({ op: 'cmd', id: 8, hub: HUB, device: 'lamp-1', set: { on: true }, method: 'open' }), 8);
  await ask(app, 'invalid set', json({ op: 'cmd', id: 11, hub: HUB, device: 'lamp-1', set: { on: [1] } }), 11);
  await ask(app, 'not JSON', '{"op": "ping", "id": 9', undefined);
  await ask(app, 'too large', json({ op: 'ping', id: 10, pad: 'x'.repeat(20_000) }), undefined);

  // subscribers, each on its own connection; they stay subscribed and receive what follows
  const { epoch } = await history.position(HOME);
  const subscribers = {
    fresh: connect('json'),
    'resumed (json)': connect('json'),
    'resumed (msgpack)': connect('msgpack'),
    'another epoch': connect('msgpack'),
    'too old': connect('json'),
    'no history': connect('json', noHistory),
    'no history, since': connect('msgpack', noHistory),
  };
  const sub = (id: number, since?: object) => json({ op: 'sub', id, home: HOME, ...(since ? { since } : {}) });
  await ask(subscribers.fresh, 'sub', sub(20), 20);
  await ask(subscribers.fresh, 'sub again', sub(21, { epoch, offset: 1 }), 21);
  await ask(subscribers['resumed (json)'], 'sub since (json)', sub(22, { epoch, offset: 1 }), 22);
  await ask(subscribers['resumed (msgpack)'], 'sub since (msgpack)', sub(23, { epoch, offset: 1 }), 23);
  await ask(subscribers['another epoch'], 'sub since another epoch', sub(24, { epoch: OTHER_EPOCH, offset: 2 }), 24);
  await ask(subscribers['too old'], 'sub since too long ago', sub(25, { epoch, offset: 0 }), 25);
  await ask(subscribers['no history'], 'sub without history', sub(26), 26);
  await ask(subscribers['no history, since'], 'sub since without history', sub(27, { epoch, offset: 1 }), 27);
  await Promise.all(Object.values(subscribers).map((s) => s.link.joined.next((h) => h === HOME)));
  // a recovery the home outruns: while the app's socket drains, the hub reports four changes
  // (offsets 5 to 8; the history keeps 6 to 8), so the recovery fails after its answer
  const outrun = connect('msgpack');
  outrun.link.onDrain = async () => {
    for (let s = 4; s <= 7; s++) hub.frame({ t: 4, s, r: { 'lamp-1': { level: s * 10 } } });
    await seen.next((m) => m.subject.startsWith('evt.') && positionOf(m.data)?.offset === 8);
  };
  await ask(outrun, 'sub since, outrun', sub(28, { epoch, offset: 1 }), 28);
  await outrun.link.joined.next((h) => h === HOME);
  // one connection, as many homes as it may have, and one more
  const busy = connect('json', noHistory, { kind: 'admin' });
  for (let id = 101; id <= 164; id++) {
    busy.session.tell({ type: 'request', request: { op: 'sub', id, home: `home-${id}` } });
    expect((await busy.link.replies.next((r) => r.id === id)).op).toBe('ok');
  }
  await ask(busy, 'sub to a 65th home', json({ op: 'sub', id: 165, home: 'home-65' }), 165);
  busy.session.tell({ type: 'closed' });

  // the operator moves the hub to another home: its session tells it to reconnect and closes (offset 9, live),
  // then the home says the hub left (offset 10) and the new home gets its devices
  await fleet.fleet.move(HUB, 'h2');
  await eventOf('removed');
  // then disables it (no session left to close), and revokes one token, then every token of a user
  await fleet.fleet.patch(HUB, { enabled: false });
  const socketCloses: string[] = [];
  const iat = Math.floor(Date.now() / 1000) - 60;
  for (const [sub, jti] of [['u1', 'tok-1'], ['alice', 'tok-2'], ['bob', 'tok-3']] as const) {
    fleet.sockets.opened({ close: (code, reason) => socketCloses.push(`${jti} ${code} ${reason}`) }, { kind: 'user', sub, homes: new Set([HOME]), jti, iat });
  }
  const revoke = fleetRoute(fleet, 'post', '/v1/admin/tokens/revoke');
  const revokeReplies = [await revoke({ jti: 'tok-1' }), await revoke({ sub: 'alice', before: new Date().toISOString() })];
  fleet.close();
  // the home's history recreated on another node: its first event, of a new epoch, reaches the feeds
  const elsewhere = new EventPublisher(bus, new MemoryEventHistory(RETENTION), log, () => {});
  elsewhere.publish({ op: 'evt', kind: 'online', home: HOME, hub: HUB, node: 'n2', ts: Date.now() }, 1);
  await elsewhere.settled();
  const newEpoch = (decodeValue(seen.all[seen.all.length - 1]!.data) as AppEventMessage).pos!.epoch;
  wheel.close();
  await bus.close();
  return { seen: seen.all, commandReplies, exchanges, subscribers: { ...subscribers, outrun }, epoch, newEpoch, hubFrames: hub.frames.all, socketCloses, revokeReplies };
}

/** A message an app received, in short: `ok` answers by their result, events by kind and position, reloads by reason and position. */
function trace(m: unknown, epochs: Record<string, string>): string {
  const v = m as { op: string; kind?: string; reason?: string; pos?: Position | null; result?: SubResult };
  const at = (p: Position | null | undefined) => (p ? `${epochs[p.epoch] ?? p.epoch}/${p.offset}` : String(p));
  if (v.op === 'evt') return `evt ${v.kind} ${at(v.pos)}`;
  if (v.op === 'reload') return `reload ${v.reason} ${at(v.pos)}`;
  const r = v.result!;
  return `${v.op} ${at(r.pos)}${r.recovered === undefined ? '' : ` recovered ${r.recovered}`}${r.reason ? ` ${r.reason}` : ''}`;
}

/** What an answer, event or reload looks like, whatever its values. */
function shape(m: unknown): string {
  const v = m as { op: string; result?: SubResult; reason?: string };
  const keys = (o: object) => Object.keys(o).sort().join(',');
  if (v.op === 'ok' && v.result) return `ok {${keys(v.result)}} pos ${v.result.pos === null ? 'null' : 'set'} recovered ${String(v.result.recovered)} ${v.result.reason ?? ''}`;
  return `${v.op} {${keys(v as object)}} ${v.reason ?? ''}`;
}

describe('AsyncAPI document and the messages a node really sends', () => {
  let node: Awaited<ReturnType<typeof runNode>>;
  beforeAll(async () => {
    node = await runNode();
  });
  const events = () => node.seen.filter((m) => m.subject.startsWith('evt.')).map((m) => ({ ...m, event: decodeValue(m.data) as AppEventMessage }));

  it('every bus message is on one channel of the document and fits one of its messages', () => {
    const channels = new Set<string>();
    for (const m of node.seen) {
      const on = natsChannels.filter((c) => parametersOf(c.address, m.subject) !== null);
      expect(on.map((c) => c.id), m.subject).toHaveLength(1);
      channels.add(on[0]!.id);
      const value = decodeValue(m.data);
      const fits = Object.values(on[0]!.channel.messages ?? {}).some((message) => problems(message.payload, value).length === 0);
      expect(fits, `${m.subject}: ${JSON.stringify(value)}`).toBe(true);
    }
    expect([...channels].sort()).toEqual(['hubClose', 'hubCommand', 'hubDesired', 'hubEvents', 'hubTakeover', 'hubsChanged', 'tokensRevoked']);
  });

  it("the operator's close orders fit, and the hub's holder acts on them", () => {
    const orders = node.seen.filter((m) => m.subject === subjects.hubClose(HUB)).map((m) => decodeValue(m.data));
    expect(orders).toEqual([{ e: 'hub_moved' }, { e: 'hub_disabled' }]);
    for (const o of orders) {
      expect(misfit('orderClose', o), JSON.stringify(o)).toEqual([]);
      expect(misfit('receiveClose', o), JSON.stringify(o)).toEqual([]);
    }
    expect(examples('CloseOrder')).toEqual({ moved: orders[0], disabled: orders[1] });
    // the moved hub was told to reconnect, then bye, then closed with 4008 (its offline event's reason)
    expect(node.hubFrames.slice(-2)).toMatchObject([{ t: 11, e: 'hub_moved' }, { t: 12, e: 'hub_moved' }]);
    const offline = events().find((e) => e.event.kind === 'offline')!.event;
    expect(offline).toMatchObject({ kind: 'offline', reason: '4008' });
  });

  it('record changes fit: provisioned, moved, disabled', () => {
    const changes = node.seen.filter((m) => m.subject === subjects.hubsChanged).map((m) => decodeValue(m.data));
    expect(changes).toEqual([{ hub: HUB }, { hub: HUB }, { hub: HUB }]);
    for (const c of changes) {
      expect(misfit('announceHubChange', c), JSON.stringify(c)).toEqual([]);
      expect(misfit('receiveHubChange', c), JSON.stringify(c)).toEqual([]);
    }
    expect(examples('HubChanged')).toEqual({ changed: changes[0] });
  });

  it('token revocations fit, the nodes close the sockets they revoke, and the examples have their shapes', () => {
    expect(node.revokeReplies.map((r) => r.status)).toEqual([200, 200]);
    const revocations = node.seen.filter((m) => m.subject === subjects.tokensRevoked).map((m) => decodeValue(m.data) as TokenRevocation);
    const keys = (o: object) => Object.keys(o).sort().join(',');
    expect(revocations.map(keys)).toEqual(['exp,jti', 'before,exp,sub']);
    expect(revocations).toMatchObject([{ jti: 'tok-1' }, { sub: 'alice' }]);
    for (const r of revocations) {
      expect(misfit('announceRevocation', r), JSON.stringify(r)).toEqual([]);
      expect(misfit('receiveRevocation', r), JSON.stringify(r)).toEqual([]);
      expect(Number.isInteger(r.exp)).toBe(true);
    }
    expect(revocations[1]!.exp - revocations[1]!.before!).toBe(MAX_TTL_S);
    // the node's own subscription closed the sockets of the revoked tokens, not bob's
    expect(node.socketCloses).toEqual(['tok-1 4007 token_revoked', 'tok-2 4007 token_revoked']);
    const { token, user } = examples('TokenRevocation') as Record<string, TokenRevocation>;
    expect([keys(token!), keys(user!)]).toEqual(revocations.map(keys));
    expect(user!.exp - user!.before!).toBe(MAX_TTL_S);
  });

  it('command requests and their replies (ok, refused by the hub, unknown device, over the frame max) fit the command operation', () => {
    const requests = node.seen.filter((m) => m.subject === subjects.hubCommand(HUB)).map((m) => decodeValue(m.data));
    expect(requests.length).toBe(4); // the app's set, unlock, the unknown device and the one over the max (not the other home's)
    for (const r of requests) expect(misfit('answerCommand', r), JSON.stringify(r)).toEqual([]);
    const replies = node.commandReplies.map((d) => decodeValue(d) as { ok: boolean; e?: string; hub?: string });
    expect(replies.map((r) => (r.ok ? 'ok' : `${r.e}${r.hub ? `/${r.hub}` : ''}`))).toEqual(['ok', 'command_failed/jammed', 'unknown_device', 'frame_too_large']);
    for (const r of replies) expect(misfit('answerCommand', r, 'reply'), JSON.stringify(r)).toEqual([]);
    for (const r of replies) expect(misfit('requestCommand', r, 'reply'), JSON.stringify(r)).toEqual([]);
    // the examples are real replies (but for the frame's size: its command id, random, takes 1 to 5 bytes)
    const sized = (r: unknown) => JSON.parse(JSON.stringify(r).replace(/would be \d+ bytes/, 'would be N bytes')) as unknown;
    expect(sized(examples('CommandReply'))).toEqual(sized({ ok: replies[0], refusedByHub: replies[1], unknownDevice: replies[2], overFrameMax: replies[3] }));
  });

  it('every kind of hub event fits on the bus (pos its second key), to JSON apps and to msgpack apps, and without pos', () => {
    const all = events().filter((e) => e.event.pos?.epoch === node.epoch && e.event.home === HOME);
    expect(all.map((e) => e.event.kind)).toEqual(['online', 'state', 'event', 'devices', 'state', 'state', 'state', 'state', 'offline', 'removed']);
    // the moved hub's devices in its new home, the first event there (the history's epoch is the process's)
    const arrived = events().filter((e) => e.event.home === 'h2');
    expect(arrived.map((e) => e.event)).toMatchObject([{ kind: 'devices', hub: HUB, joined: [{ d: 'plug-2', k: 'plug', m: 'ZP-100' }], left: [], pos: { epoch: node.epoch, offset: 1 } }]);
    expect(misfit('publishEvent', arrived[0]!.event)).toEqual([]);
    all.forEach(({ subject, data, event }, i) => {
      expect(parametersOf(doc.channels.hubEvents!.address!, subject), subject).toEqual(VALUES);
      expect(Object.keys(event).slice(0, 2)).toEqual(['op', 'pos']);
      expect(event.pos).toEqual({ epoch: node.epoch, offset: i + 1 });
      expect(misfit('publishEvent', event), `bus ${event.kind}`).toEqual([]);
      expect(misfit('sendEvent', JSON.parse(appEventJson(data))), `json ${event.kind}`).toEqual([]);
      expect(misfit('sendEvent', decodeValue(appEventBytes(data))), `msgpack ${event.kind}`).toEqual([]);
      // as the EventPublisher publishes it when there is no history or it refused the event
      const { pos: _pos, ...bare } = event;
      expect(misfit('publishEvent', decodeValue(encodeBus(bare))), `${event.kind} without pos`).toEqual([]);
      expect(misfit('sendEvent', JSON.parse(appEventJson(encodeBus(bare)))), `${event.kind} without pos`).toEqual([]);
    });
  });

  it('every answer of the app session fits a reply of the operation its request is', () => {
    expect(node.exchanges.map((x) => `${x.name}: ${x.reply.op}${x.reply.op === 'err' ? ` ${x.reply.code}` : ''}`)).toEqual([
      'ping: ok',
      'sub to another home: err forbidden',
      'unsub: ok',
      'cmd set: ok',
      'cmd the hub refuses: err command_failed',
      'cmd to an unknown device: err unknown_device',
      'cmd over the hub frame max: err frame_too_large',
      'cmd to another home: err forbidden',
      'invalid cmd: err invalid_field',
      'invalid set: err invalid_field',
      'not JSON: err malformed_frame',
      'too large: err frame_too_large',
      'sub: ok',
      'sub again: ok',
      'sub since (json): ok',
      'sub since (msgpack): ok',
      'sub since another epoch: ok',
      'sub since too long ago: ok',
      'sub without history: ok',
      'sub since without history: ok',
      'sub since, outrun: ok',
      'sub to a 65th home: err limit_exceeded',
    ]);
    const receiving = Object.entries(doc.operations).filter(([, op]) => op.action === 'receive' && op.channel === doc.channels.appSocket);
    for (const x of node.exchanges) {
      const ops = receiving.filter(([id]) => misfit(id, x.request).length === 0).map(([id]) => id);
      if (nodeAccepts(x.request)) {
        expect(ops, x.name).toHaveLength(1);
        expect(misfit(ops[0]!, x.reply, 'reply'), `${x.name}: ${JSON.stringify(x.reply)}`).toEqual([]);
      } else {
        expect(ops, x.name).toEqual([]);
        expect(misfit('refuse', x.reply), `${x.name}: ${JSON.stringify(x.reply)}`).toEqual([]);
      }
    }
    // the error examples are the node's own answers
    const answer = (name: string) => node.exchanges.find((x) => x.name === name)!.reply;
    expect(examples('ErrReply')).toEqual({ invalidField: answer('invalid set'), hubRefused: answer('cmd the hub refuses'), unreadable: answer('not JSON') });
  });

  it('each subscriber receives the sub answer, the missed events, then live events and reloads, all fitting the document', () => {
    const epochs = { [node.epoch]: 'E', [node.newEpoch]: 'E2' };
    // while the outrun recovery waited, the hub reported four changes; later it went away; then the history was recreated
    const during = ['evt state E/5', 'evt state E/6', 'evt state E/7', 'evt state E/8'];
    const live = ['evt offline E/9', 'evt removed E/10', 'reload epoch_changed E2/0', 'evt online E2/1'];
    const recovered = ['ok E/1 recovered true', 'evt state E/2', 'evt event E/3', 'evt devices E/4'];
    const received = Object.fromEntries(Object.entries(node.subscribers).map(([name, s]) => [name, s.link.received.map((m) => trace(m, epochs))]));
    expect(received).toEqual({
      fresh: ['ok E/4', 'ok E/4', ...during, ...live],
      'resumed (json)': [...recovered, ...during, ...live],
      'resumed (msgpack)': [...recovered, ...during, ...live],
      'another epoch': ['ok E/4 recovered false epoch_changed', ...during, ...live],
      'too old': ['ok E/4 recovered false too_old', ...during, ...live],
      // a node without history passes events through as they come and never reloads
      'no history': ['ok null', ...during, 'evt offline E/9', 'evt removed E/10', 'evt online E2/1'],
      'no history, since': ['ok null recovered false unavailable', ...during, 'evt offline E/9', 'evt removed E/10', 'evt online E2/1'],
      // the answer said recovered; offset 5 was trimmed before the recovery read it: a reload to this socket alone
      outrun: [...recovered, 'reload too_old E/8', ...live],
    });
    const operationOf: Record<string, [string, 'messages' | 'reply']> = { ok: ['subscribe', 'reply'], evt: ['sendEvent', 'messages'], reload: ['sendReload', 'messages'] };
    for (const [name, s] of Object.entries(node.subscribers)) {
      for (const m of s.link.received) {
        const [id, part] = operationOf[(m as { op: string }).op]!;
        expect(misfit(id, m, part), `${name}: ${JSON.stringify(m)}`).toEqual([]);
        if (id === 'subscribe') expect(problems(doc.channels.appSocket!.messages!.subOk!.payload, m), name).toEqual([]);
      }
    }
  });

  it('recovered events are the bytes the bus carried, so a resumed app reads what a live one read', () => {
    const onBus = events().filter((e) => e.event.pos?.epoch === node.epoch).map((e) => Buffer.from(e.data).toString('hex'));
    for (const name of ['resumed (json)', 'resumed (msgpack)', 'outrun'] as const) {
      const [join] = node.subscribers[name].link.joins;
      expect(join!.sent.map((b) => Buffer.from(b).toString('hex')), name).toEqual(onBus.slice(1, 4));
    }
  });

  it('the sub answer and reload examples have the shapes of real ones', () => {
    const real = new Set(Object.values(node.subscribers).flatMap((s) => s.link.received.filter((m) => (m as { op: string }).op !== 'evt').map(shape)));
    for (const [name, example] of Object.entries({ ...examples('SubOk'), ...examples('Reload') })) expect(real, `${name}: ${shape(example)}`).toContain(shape(example));
  });
});

describe('AsyncAPI document refuses wrong messages', () => {
  const state = { op: 'evt', kind: 'state', home: HOME, hub: HUB, device: 'temp-1', attrs: { temp: 21.5 }, version: 8, ts: 1_700_000_000_000 };
  const refuses = (id: string, value: unknown, part: 'messages' | 'reply' = 'messages') => expect(misfit(id, value, part), JSON.stringify(value)).not.toEqual([]);

  it('events: a missing field, an unknown kind, no op, a bad position', () => {
    expect(misfit('sendEvent', state)).toEqual([]);
    const { attrs: _attrs, ...withoutAttrs } = state;
    refuses('sendEvent', withoutAttrs);
    refuses('sendEvent', { ...state, kind: 'weird' });
    const { op: _op, ...withoutOp } = state;
    refuses('publishEvent', withoutOp);
    refuses('sendEvent', { ...state, pos: { epoch: '4kq1w2', offset: -1 } });
    refuses('sendEvent', { ...state, pos: { epoch: '4kq1w2', offset: 1, extra: 1 } });
    refuses('sendEvent', { ...state, pos: null });
    refuses('sendEvent', { ...state, attrs: { temp: { c: 21.5 } } });
    const removed = { op: 'evt', kind: 'removed', home: HOME, hub: HUB, reason: 'moved', ts: 1_700_000_000_000 };
    expect(misfit('sendEvent', removed)).toEqual([]);
    refuses('sendEvent', { ...removed, reason: 'stolen' });
  });

  it('answers and reloads: an unknown code, a sub answer without pos, a failed recovery without reason', () => {
    const err = { op: 'err', id: 1, code: 'forbidden', num: 201, temporary: false, msg: 'no' };
    expect(misfit('refuse', err)).toEqual([]);
    refuses('refuse', { ...err, code: 'nope' });
    const { msg: _msg, ...withoutMsg } = err;
    refuses('refuse', withoutMsg);
    refuses('subscribe', { op: 'ok', id: 1, result: { home: HOME } }, 'reply');
    refuses('subscribe', { op: 'ok', id: 1, result: { home: HOME, pos: null, recovered: false } }, 'reply');
    refuses('subscribe', { op: 'ok', id: 1, result: { home: HOME, pos: null, recovered: true, reason: 'later' } }, 'reply');
    refuses('sendReload', { op: 'reload', home: HOME, reason: 'epoch_changed', pos: null });
    refuses('sendReload', { op: 'reload', home: HOME, reason: 'gone', pos: { epoch: 'e', offset: 0 } });
  });

  it('stream entries: offset 0, an offset as a number; a stored event with pos', () => {
    const entry = examples('EventStreamEntry').state as { event: string };
    expect(misfit('appendEvent', entry)).toEqual([]);
    refuses('appendEvent', { ...entry, offset: '0' });
    refuses('appendEvent', { ...entry, offset: 1042 });
    expect(problems(schema('StoredEvent'), { ...state, pos: { epoch: 'a3f09c41d2b7', offset: 1 } })).not.toEqual([]);
  });

  it('bus payloads: a command without timeout, a failed reply without code, a takeover without epoch', () => {
    refuses('answerCommand', { d: 'lamp-1', m: 'set', p: {} });
    refuses('answerCommand', { ok: false }, 'reply');
    refuses('answerCommand', { ok: false, e: 'jammed' }, 'reply');
    refuses('receiveTakeover', { node: 'node-b' });
    refuses('receiveDesired', { d: 'lamp-1', desired: { on: [true] }, v: 1 });
  });

  it('fleet notices: a close order of another code, a change without a hub, revocations the nodes ignore', () => {
    refuses('receiveClose', { e: 'draining' });
    refuses('receiveClose', {});
    refuses('receiveHubChange', {});
    refuses('receiveHubChange', { hub: 'hub.7' });
    const exp = 1_740_902_400;
    expect(misfit('receiveRevocation', { jti: 'tok-1', sub: 'alice', exp })).toEqual([]); // jti wins, as the nodes read it
    refuses('receiveRevocation', { jti: 'tok-1' });
    refuses('receiveRevocation', { sub: 'alice', exp }); // no before: ignored
    refuses('receiveRevocation', { exp });
    refuses('receiveRevocation', { jti: '', exp });
    refuses('receiveRevocation', { sub: 'alice', before: 1_738_310_400_000.5, exp });
  });
});
