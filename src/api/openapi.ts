/**
 * The OpenAPI 3.1 document of the routes actually registered: the paths come from the route
 * table, the bodies from the schemas the handlers validate with (src/schemas/), the examples from
 * those schemas, and each error example from the code that answers it.
 */
import type { TSchema } from '@sinclair/typebox';
import { ErrorCodes, type ErrorCode } from '../../proto/errors.js';
import { CommandError, TierError } from '../errors.js';
import { REFUSAL_KEYS, compile, type RefusalOptions } from '../schemas/check.js';
import { ErrorBody, ID_REGEX, parseId } from '../schemas/common.js';
import { errorReply, type RouteTable } from '../transport/http.js';
import { operations, type Operation } from './operations.js';

/** What the document is built for: the node's limits appear in the schemas. */
export interface DocumentLimits {
  /** @default 60_000 (ms) */
  commandTimeoutMaxMs: number;
  /** @default 65_536 (bytes): the body cap, named in the 413 example */
  maxBodyBytes?: number;
}

const PARAMS: Record<string, { description: string; example: string }> = {
  hubId: { description: 'the hub', example: 'hub-7' },
  deviceId: { description: 'a device of the hub', example: 'lamp-1' },
  homeId: { description: 'the home', example: 'home-42' },
  ruleId: { description: 'a rule of the home', example: 'r1a2b3' },
  sceneId: { description: 'a scene of the home', example: 's9c8d7' },
};

const TAGS = [
  { name: 'hubs', description: 'Commands, connection status and device state of a hub' },
  { name: 'admin', description: 'Provisioning, the fleet of hubs and tokens (admin token only)' },
  { name: 'homes', description: 'Settings and hubs of a home' },
  { name: 'rules', description: 'Automation rules: when, if, then' },
  { name: 'scenes', description: 'Device commands run together' },
  { name: 'meta', description: 'This document and the demo console' },
];

/**
 * Markdown, shown at the top of the docs page. The links are root-relative to files the node serves
 * (src/api/docs-page.ts), so they work on the page of any node; the repository paths are named too.
 */
const DESCRIPTION = [
  'Commands, shadows, provisioning, automation. Every body is described by the schemas the server validates with (src/schemas/); errors use the code table of the [protocol](/docs/protocol.md), §9.',
  '',
  '## WebSockets',
  '',
  'The same port serves two WebSocket endpoints, outside this document:',
  '',
  '- `/hub/v1`: where hubs connect. The upgrade request is signed with the hub’s secret; then every message is one binary msgpack frame: reports acknowledged by sequence number, and commands as RPC (a `command` frame answered by one `result`). See the [hub protocol](/docs/protocol.md) §1–§9 (`proto/PROTOCOL.md` in the repository).',
  '- `/app/v1`: where apps connect with a user JWT (`?token=`, the `bearer.<token>` subprotocol or `Authorization`): subscribe to a home’s live events, resume from a position without a gap, send commands. JSON text messages, or msgpack with `?enc=msgpack`. See the [app protocol](/docs/protocol.md) §11 and its [AsyncAPI document](/docs/asyncapi.yaml) (`proto/asyncapi.yaml`); browsers can use the client library at [/client.js](/client.js).',
].join('\n');

/** Registered routes the document does not describe (a test keeps this empty). */
export function undocumented(table: RouteTable): string[] {
  const ops = operations({ commandTimeoutMaxMs: 60_000 });
  return table.map((r) => `${r.method} ${r.pattern}`).filter((k) => !Object.hasOwn(ops, k));
}

type Json = Record<string, unknown>;

/**
 * Schemas as the document shows them: a schema with a `title` once under components (a use
 * with its own description keeps it beside the `$ref`), the refusal options left out, a union
 * with a discriminator property marked as one.
 */
class Components {
  readonly schemas: Record<string, unknown> = {};

  use(schema: TSchema): unknown {
    return this.walk(schema as TSchema & Json, true);
  }

  private walk(s: Json, top: boolean): unknown {
    const title = s.title;
    if (typeof title !== 'string') return this.plain(s);
    if (!Object.hasOwn(this.schemas, title)) {
      this.schemas[title] = {}; // taken before the walk, so a schema that contains itself ends
      this.schemas[title] = this.plain(s);
    }
    const ref = { $ref: `#/components/schemas/${title}` };
    return !top && typeof s.description === 'string' ? { ...ref, description: s.description } : ref;
  }

  private plain(s: Json): Json {
    const out: Json = {};
    for (const [key, value] of Object.entries(s)) {
      if (REFUSAL_KEYS.has(key)) continue;
      if (key === 'properties' || key === 'patternProperties') out[key] = Object.fromEntries(Object.entries(value as Json).map(([k, v]) => [k, this.walk(v as Json, false)]));
      else if (key === 'anyOf' || key === 'allOf' || key === 'oneOf') out[key] = (value as Json[]).map((v) => this.walk(v, false));
      else if ((key === 'items' || key === 'not' || key === 'additionalProperties') && typeof value === 'object') out[key] = this.walk(value as Json, false);
      else out[key] = value; // keywords and data (examples, const, enum): as they are
    }
    const sel = (s as RefusalOptions).select;
    if (sel && 'by' in sel) out.discriminator = discriminator(s, sel.by);
    return out;
  }
}

/** The OpenAPI discriminator of a union: tag → the variant's component, where it has one. */
function discriminator(s: Json, by: string): Json {
  const mapping: Record<string, string> = {};
  for (const v of s.anyOf as Json[]) {
    const first = Array.isArray(v.anyOf) ? (v.anyOf[0] as Json) : v;
    const tag = ((first.properties as Record<string, Json> | undefined)?.[by])?.const;
    if (typeof tag === 'string' && typeof v.title === 'string') mapping[tag] = `#/components/schemas/${v.title}`;
  }
  return Object.keys(mapping).length > 0 ? { propertyName: by, mapping } : { propertyName: by };
}

function examplesOf(schema: TSchema, made?: unknown[]): Json {
  const list = made ?? ((schema as Json).examples as unknown[] | undefined) ?? [];
  return Object.fromEntries(list.map((value, i) => [`example${i + 1}`, { value }]));
}

/** The answer the code gives for `code` on this operation: validation ones from its validator. */
function errorExample(code: ErrorCode, op: Operation, params: string[], maxBodyBytes: number): unknown {
  const own = op.errorAnswers?.[code];
  if (own) return errorReply(own).body;
  if (code === 'invalid_field') {
    try {
      if (op.request) compile(op.request.schema).parse(op.request.bad);
      else if (op.query) op.query.parse(new URLSearchParams(op.query.bad));
      else if (params.length > 0) parseId('not.an-id', params[0]!);
      // a route that reads no input still refuses a query that is not percent-encoded UTF-8 (src/transport/http.ts)
      else throw new TierError('invalid_field', 'q: not a valid percent-encoded UTF-8 query parameter', { field: 'q' });
    } catch (err) {
      if (err instanceof TierError) return errorReply(err).body;
      throw err;
    }
  }
  // what src/transport/http.ts answers for a body that is not JSON or is over the node's cap
  if (code === 'malformed_frame') return errorReply(new TierError('malformed_frame', 'body is not valid JSON', { field: 'body' })).body;
  if (code === 'frame_too_large' && op.request) return errorReply(new TierError('frame_too_large', `body larger than ${maxBodyBytes} bytes`)).body;
  if (code === 'command_failed') return errorReply(new CommandError('command_failed', 'the hub reported: motor jammed', { hubCode: 'command_failed' })).body;
  return errorReply(new TierError(code)).body;
}

function operationId(method: string, pattern: string): string {
  const words = pattern.split('/').filter(Boolean).map((w) => w.replace(/^:/, 'by-').replace(':', '-'));
  return [method, ...words].join('-').replace(/-([a-z0-9])/gi, (_, c: string) => c.toUpperCase());
}

/** What src/log/request-id.ts accepts from a caller. */
const REQUEST_ID_SCHEMA = { type: 'string', minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9._:-]+$' };

/** @param nowMs when the document is served: examples checked against the clock are made for then */
export function openApiDocument(table: RouteTable, version: string, limits: DocumentLimits = { commandTimeoutMaxMs: 60_000 }, nowMs = Date.now()): Json {
  const ops = operations(limits);
  const components = new Components();
  const errorRef = components.use(ErrorBody);
  const paths: Record<string, Json> = {};
  for (const { method, pattern } of table) {
    const key = `${method} ${pattern}`;
    const op: Operation | undefined = Object.hasOwn(ops, key) ? ops[key] : undefined;
    // a parameter is a whole segment (`/:hubId`); a colon inside one is a literal (`/hubs:batch`)
    const names = [...pattern.matchAll(/\/:([A-Za-z]+)/g)].map((m) => m[1]!);
    const path = pattern.replace(/\/:([A-Za-z]+)/g, '/{$1}');
    const parameters: Json[] = names.map((name) => ({
      name,
      in: 'path',
      required: true,
      description: PARAMS[name]?.description ?? name,
      schema: { type: 'string', pattern: ID_REGEX },
      example: PARAMS[name]?.example ?? 'x',
    }));
    for (const q of op?.query?.params ?? []) parameters.push({ name: q.name, in: 'query', required: false, description: q.description, schema: q.schema });
    parameters.push({ $ref: '#/components/parameters/RequestId' });
    const responses: Json = {};
    if (op) {
      const ok = op.ok;
      responses[String(ok.status)] =
        'html' in ok
          ? { description: ok.description, content: { 'text/html': { schema: { type: 'string' }, example: ok.html } } }
          : 'script' in ok
          ? { description: ok.description, content: { 'text/javascript': { schema: { type: 'string' }, example: ok.script } } }
          : { description: ok.description, content: { 'application/json': { schema: components.use(ok.schema), examples: examplesOf(ok.schema) } } };
      // every route with a path parameter, a query or a body may refuse it; a body may also not be
      // JSON or be over the cap (src/transport/http.ts); every guarded one may refuse the token, or
      // the caller's address after too many wrong admin tokens (`rate_limited`); and a guarded
      // route reads or writes a backend, which may be away (`unavailable`); any handler's unexpected
      // throw is `500 internal` (src/transport/http.ts), which the document had nowhere (review "apiconform" F6)
      const codes = new Set<ErrorCode>([
        ...(op.open ? [] : (['unauthorized', 'forbidden', 'rate_limited', 'unavailable'] as const)),
        // every route: a query not percent-encoded UTF-8 is refused before the handler (review "apiconform" F5)
        'invalid_field',
        ...(op.request ? (['malformed_frame', 'frame_too_large'] as const) : []),
        ...(op.errors ?? []),
        'internal',
      ]);
      for (const code of codes) {
        const status = String(ErrorCodes[code].http);
        const entry = (responses[status] ??= { description: '', content: { 'application/json': { schema: errorRef, examples: {} } } }) as Json & { description: string; content: { 'application/json': { examples: Json } } };
        entry.description = entry.description ? `${entry.description}, ${code}` : code;
        entry.content['application/json'].examples[code] = { summary: ErrorCodes[code].text, value: errorExample(code, op, names, limits.maxBodyBytes ?? 65_536) };
      }
    } else responses['200'] = { description: 'undocumented' };
    // every answer of the node's routes echoes the request id; a 429, 500 or 503 also says when to
    // retry, a 401 the scheme it takes (src/transport/http.ts)
    for (const [status, r] of Object.entries(responses) as Array<[string, Json]>) {
      r.headers = {
        'x-request-id': { $ref: '#/components/headers/RequestId' },
        ...(status === '429' || status === '500' || status === '503' ? { 'retry-after': { $ref: '#/components/headers/RetryAfter' } } : {}),
        ...(status === '401' ? { 'www-authenticate': { $ref: '#/components/headers/WwwAuthenticate' } } : {}),
      };
    }
    (paths[path] ??= {})[method] = {
      operationId: operationId(method, pattern),
      summary: op?.summary ?? 'undocumented',
      ...(op?.description ? { description: op.description } : {}),
      tags: [op?.tag ?? 'meta'],
      parameters,
      ...(op?.request
        ? {
            requestBody: {
              required: !op.request.optional,
              ...(op.request.optional ? { description: 'optional: may be left out' } : {}),
              content: { 'application/json': { schema: components.use(op.request.schema), examples: examplesOf(op.request.schema, op.request.examples?.(nowMs)) } },
            },
          }
        : {}),
      ...(op?.open ? { security: [] } : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'hubtier HTTP API',
      version,
      description: DESCRIPTION,
      license: { name: 'MIT', identifier: 'MIT' },
    },
    servers: [{ url: '/', description: 'this node' }],
    security: [{ bearer: [] }],
    tags: TAGS,
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'The admin token, or a user JWT (HS256, claims sub and homes)' } },
      parameters: {
        RequestId: {
          name: 'x-request-id',
          in: 'header',
          required: false,
          description: 'A correlation id of the caller: kept when valid, otherwise one is generated; echoed in the answer and written on the node\'s log lines of the request (and, for a command, on the holding node\'s)',
          schema: REQUEST_ID_SCHEMA,
          example: 'checkout-7f3a-0001',
        },
      },
      headers: {
        RequestId: { description: 'The request id: the caller\'s `x-request-id` when valid, otherwise the one the node generated', schema: REQUEST_ID_SCHEMA },
        WwwAuthenticate: { description: 'The scheme the API takes: `Bearer` (RFC 9110 §11.6.1)', schema: { type: 'string', const: 'Bearer' } },
        RetryAfter: {
          description: 'Seconds to wait before trying again: 1–5, spread, when a backend the node needs is away (`503 unavailable`, or a `500 internal` it could not tell from one); 1 for another `503` (busy, draining, a session closing); for `429 rate_limited` the seconds until the limit lets the caller in again (wrong admin tokens from its address, a home’s export paced), 1 where that is not known',
          schema: { type: 'integer', minimum: 1 },
        },
      },
      schemas: components.schemas,
    },
  };
}
