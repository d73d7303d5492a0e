/**
 * The API document, generated from the schemas the handlers validate with: every registered
 * route is in it, every body is a JSON Schema with its required fields and a description per
 * field, every example passes its schema (and the route's whole validation), every error example
 * is the code's own answer, and Redocly's recommended rules find nothing.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ErrorCodes, isErrorCode, type ErrorCode } from '../../proto/errors.js';
import { openApiDocument, undocumented } from '../../src/api/openapi.js';
import { operations } from '../../src/api/operations.js';
import { mountApi } from '../../src/api/routes.js';
import { mountFleetApi, revokedBefore } from '../../src/api/fleet-routes.js';
import { mountRulesApi } from '../../src/api/rules-routes.js';
import { mountHomeApi } from '../../src/api/home-routes.js';
import { mountAuditApi } from '../../src/api/audit-routes.js';
import { validateRuleSpec, validateSceneSpec, validateSettings, validateTestRequest } from '../../src/rules/validate.js';
import { compile } from '../../src/schemas/check.js';
import { ErrorBody } from '../../src/schemas/common.js';
import type { RouteTable } from '../../src/transport/http.js';
import { loadUws } from '../../src/transport/uws.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const LIMITS = { commandTimeoutMaxMs: 60_000 };

/** The routes as the server registers them (mounted on an app that never listens). */
function registeredRoutes(): RouteTable {
  const app = loadUws({ requireNative: false }).uws.App();
  const table: RouteTable = [];
  const log = { error() {}, warn() {}, info() {}, debug() {}, child: () => log } as never;
  mountRulesApi(app, { auth: {} as never, store: {} as never, engine: {} as never, homeOfHub: async () => null, log, maxBodyBytes: 65_536, table });
  mountFleetApi(app, { auth: {} as never, fleet: {} as never, revoke: {} as never, revocations: {} as never, log, maxBodyBytes: 65_536, secretGraceS: 604_800, table });
  mountAuditApi(app, { auth: {} as never, log, maxBodyBytes: 65_536, table });
  mountHomeApi(app, { auth: {} as never, data: {} as never, log, maxBodyBytes: 65_536, table });
  mountApi(app, { auth: {} as never, bus: {} as never, registry: {} as never, directory: {} as never, shadows: {} as never, log, maxBodyBytes: 65_536, commandTimeoutMs: 10_000, ...LIMITS, table });
  return table;
}

type Json = Record<string, any>;
const table = registeredRoutes();
const doc = openApiDocument(table, '1.0.0', LIMITS) as Json;
const ops = operations(LIMITS);

/** Every schema object under `s` (properties, items, unions), with where it is. */
function* schemasIn(s: unknown, at: string): Generator<[Json, string]> {
  if (typeof s !== 'object' || s === null) return;
  const schema = s as Json;
  yield [schema, at];
  for (const [k, v] of Object.entries((schema.properties ?? {}) as Json)) yield* schemasIn(v, `${at}.${k}`);
  for (const [k, v] of Object.entries((schema.patternProperties ?? {}) as Json)) yield* schemasIn(v, `${at}[${k}]`);
  for (const key of ['anyOf', 'oneOf', 'allOf'] as const) for (const [i, v] of ((schema[key] ?? []) as unknown[]).entries()) yield* schemasIn(v, `${at}.${key}[${i}]`);
  if (schema.items) yield* schemasIn(schema.items, `${at}[]`);
}

describe('OpenAPI document', () => {
  it('names routes it has no words for, so a new route without documentation is caught', () => {
    const t = [
      { method: 'get', pattern: '/v1/hubs/:hubId' },
      { method: 'post', pattern: '/v1/new/thing' },
    ];
    expect(undocumented(t)).toEqual(['post /v1/new/thing']);
    const d = openApiDocument(t, '1.0.0') as { paths: Record<string, Record<string, { summary: string }>> };
    expect(d.paths['/v1/hubs/{hubId}']!.get!.summary).toMatch(/connected/);
    expect(d.paths['/v1/new/thing']!.post!.summary).toBe('undocumented');
  });

  it('describes every route the server registers, and only those', () => {
    expect(table.length).toBeGreaterThanOrEqual(26);
    expect(undocumented(table)).toEqual([]);
    expect(Object.keys(ops).sort()).toEqual(table.map((r) => `${r.method} ${r.pattern}`).sort());
  });

  it('every example passes the schema it illustrates, and the body each route refuses is refused', () => {
    for (const [key, op] of Object.entries(ops)) {
      if (op.request) {
        const v = compile(op.request.schema);
        const examples = [...((op.request.schema as Json).examples as unknown[]), ...(op.request.examples?.(Date.now()) ?? [])];
        expect(examples.length, key).toBeGreaterThan(0);
        for (const ex of examples) expect(v.problem(ex), `${key} request ${JSON.stringify(ex)}`).toBeNull();
        expect(v.problem(op.request.bad), `${key} refused body`).not.toBeNull();
      }
      if ('schema' in op.ok) {
        const examples = (op.ok.schema as Json).examples as unknown[];
        expect(examples.length, key).toBeGreaterThan(0);
        for (const ex of examples) expect(compile(op.ok.schema).problem(ex), `${key} response ${JSON.stringify(ex)}`).toBeNull();
      }
    }
  });

  it('request examples of the automation pass the whole validation of their route, semantic checks too', () => {
    const examples = (key: string) => (ops[key]!.request!.schema as Json).examples as unknown[];
    for (const ex of examples('post /v1/homes/:homeId/rules')) expect(validateRuleSpec(ex).name).toBeTypeOf('string');
    for (const ex of examples('post /v1/homes/:homeId/scenes')) expect(validateSceneSpec(ex).commands.length).toBeGreaterThan(0);
    for (const ex of examples('put /v1/homes/:homeId/settings')) expect(validateSettings(ex).timeZone).toBeTypeOf('string');
    for (const ex of examples('post /v1/homes/:homeId/rules/:ruleId/test')) expect(validateTestRequest(ex, 1).event).toBeDefined();
  });

  it('every operation has a request example (with a body), a success example and an example per error code it lists', () => {
    const errorBody = compile(ErrorBody);
    let errorExamples = 0;
    for (const [path, methods] of Object.entries(doc.paths as Json)) {
      for (const [method, op] of Object.entries(methods as Json)) {
        const where = `${method} ${path}`;
        if (op.requestBody) expect(Object.keys(op.requestBody.content['application/json'].examples).length, where).toBeGreaterThan(0);
        for (const [status, res] of Object.entries(op.responses as Json)) {
          const content = res.content as Json;
          const media = Object.values(content)[0] as Json;
          expect(media.example ?? Object.keys(media.examples ?? {}).length, `${where} ${status}`).toBeTruthy();
          if (Number(status) < 400) continue;
          expect(media.schema).toEqual({ $ref: '#/components/schemas/Error' });
          const codes = (res.description as string).split(', ');
          expect(Object.keys(media.examples).sort(), `${where} ${status}`).toEqual([...codes].sort());
          for (const [code, { value }] of Object.entries(media.examples as Record<string, { value: Json }>)) {
            errorExamples++;
            expect(errorBody.problem(value), `${where} ${code}`).toBeNull();
            expect(isErrorCode(code), code).toBe(true);
            const row = ErrorCodes[code as ErrorCode];
            expect(value, `${where} ${code}`).toMatchObject({ code, num: row.code, temporary: row.temporary });
            expect(String(row.http)).toBe(status);
            // a validation answer names the field, and its message says so first
            if (code === 'invalid_field') expect(value.message.startsWith(`${value.field}: `), `${where}: ${value.message}`).toBe(true);
          }
        }
      }
    }
    expect(errorExamples).toBeGreaterThan(60);
  });

  it('every operation takes an x-request-id and every answer echoes one, with the pattern the node accepts', () => {
    const param = doc.components.parameters.RequestId;
    expect(param).toMatchObject({ name: 'x-request-id', in: 'header', required: false });
    const pattern = new RegExp(param.schema.pattern as string);
    expect(pattern.test(param.example as string)).toBe(true);
    expect(pattern.test('no spaces allowed')).toBe(false);
    for (const [path, methods] of Object.entries(doc.paths as Json)) {
      for (const [method, op] of Object.entries(methods as Json)) {
        expect(op.parameters, `${method} ${path}`).toContainEqual({ $ref: '#/components/parameters/RequestId' });
        for (const [status, res] of Object.entries(op.responses as Json)) expect((res as Json).headers?.['x-request-id'], `${method} ${path} ${status}`).toEqual({ $ref: '#/components/headers/RequestId' });
      }
    }
  });

  it('every 429, 500 and 503 answer documents the Retry-After the node sends with it, and no other answer does', () => {
    let with503 = 0;
    for (const [path, methods] of Object.entries(doc.paths as Json)) {
      for (const [method, op] of Object.entries(methods as Json)) {
        for (const [status, res] of Object.entries(op.responses as Json)) {
          const expected = status === '429' || status === '500' || status === '503' ? { $ref: '#/components/headers/RetryAfter' } : undefined;
          expect((res as Json).headers?.['retry-after'], `${method} ${path} ${status}`).toEqual(expected);
          if (status === '503') with503++;
        }
      }
    }
    expect(with503).toBeGreaterThan(0);
    expect(doc.components.headers.RetryAfter.schema).toEqual({ type: 'integer', minimum: 1 });
  });

  it('every operation documents 500 internal (any handler’s unexpected throw), and routes that answer draining say so', () => {
    for (const [path, methods] of Object.entries(doc.paths as Json)) {
      for (const [method, op] of Object.entries(methods as Json)) {
        expect(Object.keys(op.responses['500']?.content['application/json'].examples ?? {}), `${method} ${path}`).toEqual(['internal']);
      }
    }
    // a closed rule pool (src/rules/dry-run.ts) and a closed bus (src/ports/bus/) answer 503 draining
    for (const [path, method] of [['/v1/homes/{homeId}/rules/{ruleId}/test', 'post'], ['/v1/hubs/{hubId}/devices/{deviceId}/commands', 'post']] as const) {
      expect(Object.keys(doc.paths[path][method].responses['503'].content['application/json'].examples), path).toContain('draining');
    }
  });

  it('every operation documents 400 invalid_field: a query not percent-encoded UTF-8 is refused on every route, open ones too (review apiconform F5)', () => {
    for (const [path, methods] of Object.entries(doc.paths as Json)) {
      for (const [method, op] of Object.entries(methods as Json)) {
        expect(Object.keys(op.responses['400']?.content['application/json'].examples ?? {}), `${method} ${path}`).toContain('invalid_field');
      }
    }
    expect(doc.paths['/'].get.responses['400'].content['application/json'].examples.invalid_field.value).toMatchObject({ code: 'invalid_field', field: 'q' });
  });

  it('every 401 documents the WWW-Authenticate challenge the node sends with it', () => {
    let with401 = 0;
    for (const [path, methods] of Object.entries(doc.paths as Json)) {
      for (const [method, op] of Object.entries(methods as Json)) {
        for (const [status, res] of Object.entries(op.responses as Json)) {
          expect((res as Json).headers?.['www-authenticate'], `${method} ${path} ${status}`).toEqual(status === '401' ? { $ref: '#/components/headers/WwwAuthenticate' } : undefined);
          if (status === '401') with401++;
        }
      }
    }
    expect(with401).toBeGreaterThan(30);
  });

  it('the revocation list documents its cursor: after in the query, next in the answer', () => {
    const op = doc.paths['/v1/admin/tokens/revocations'].get;
    expect(op.parameters.map((p: Json) => p.name)).toContain('after');
    expect(doc.components.schemas.RevocationListReply.required).toContain('next');
  });

  it('every guarded operation documents 401 and 403; every one with a path parameter or a body documents its 400', () => {
    for (const [path, methods] of Object.entries(doc.paths as Json)) {
      for (const [method, op] of Object.entries(methods as Json)) {
        const codes = Object.keys(op.responses);
        // and 429: too many wrong admin tokens from the caller's address refuse every guarded route
        if (op.security === undefined) expect(codes, `${method} ${path}`).toEqual(expect.arrayContaining(['401', '403', '429']));
        if (path.includes('{') || op.requestBody) expect(codes, `${method} ${path}`).toContain('400');
      }
    }
    const command = doc.paths['/v1/hubs/{hubId}/devices/{deviceId}/commands'].post;
    expect(command.responses['400'].content['application/json'].examples.invalid_field.value).toMatchObject({ field: 'set.on', code: 'invalid_field' });
    // a command whose frame to the hub would pass its max (PROTOCOL.md §5)
    expect(command.responses['413'].content['application/json'].examples.frame_too_large.value).toMatchObject({ code: 'frame_too_large', num: 101 });
  });

  it('examples the server checks against the clock are made when the document is served: a revocation `before` within 30 days of then', () => {
    for (const nowMs of [Date.parse('2025-01-31T08:00:00Z'), Date.parse('2031-06-01T00:00:00Z')]) {
      const d = openApiDocument(table, '1.0.0', LIMITS, nowMs) as Json;
      const values = Object.values(d.paths['/v1/admin/tokens/revoke'].post.requestBody.content['application/json'].examples as Record<string, { value: Json }>).map((e) => e.value);
      const dated = values.filter((v) => v.before !== undefined);
      expect(dated.length).toBeGreaterThan(0);
      for (const v of dated) expect(() => revokedBefore(v.before, nowMs)).not.toThrow();
    }
  });

  it('every query the routes read is declared, refused with a documented 400; every body route documents 413 and the 400 of a body not JSON', () => {
    const list = doc.paths['/v1/admin/hubs'].get;
    expect((list.parameters as Json[]).filter((p) => p.in === 'query').map((p) => p.name)).toEqual(['limit', 'after', 'prefix', 'home', 'model', 'firmware', 'enabled', 'online', 'node']);
    expect(list.responses['400'].content['application/json'].examples.invalid_field.value).toMatchObject({ field: 'limit' });
    expect((doc.paths['/v1/admin/audit'].get.parameters as Json[]).filter((p) => p.in === 'query').map((p) => p.name)).toContain('since');
    for (const [key, op] of Object.entries(ops)) {
      for (const q of op.query?.params ?? []) {
        // a declared name is one the route reads: a value of the wrong type is refused naming it
        const wrong = q.schema.type === 'integer' ? '0' : q.schema.type === 'boolean' ? 'maybe' : '';
        expect(() => op.query!.parse(new URLSearchParams({ [q.name]: wrong })), `${key} ?${q.name}`).toThrow(expect.objectContaining({ code: 'invalid_field', field: q.name }));
      }
    }
    for (const [path, methods] of Object.entries(doc.paths as Json)) {
      for (const [method, op] of Object.entries(methods as Json)) {
        if (!op.requestBody) continue;
        expect(op.responses['413']?.content['application/json'].examples.frame_too_large.value.message, `${method} ${path}`).toBe('body larger than 65536 bytes');
        expect(op.responses['400'].content['application/json'].examples.malformed_frame, `${method} ${path}`).toBeDefined();
      }
    }
    expect(doc.paths['/v1/admin/hubs'].post.responses['409'].content['application/json'].examples.already_exists.value.message).toContain('POST /v1/admin/hubs/hub-7/secret');
  });

  it('every body is a real JSON Schema: objects list their required fields and every field has a description', () => {
    const components = doc.components.schemas as Json;
    let fields = 0;
    for (const [name, component] of Object.entries(components)) {
      expect(component.description, name).toBeTypeOf('string');
      for (const [schema, at] of schemasIn(component, name)) {
        for (const [field, sub] of Object.entries((schema.properties ?? {}) as Json)) {
          fields++;
          const own = (sub as Json).description ?? components[String((sub as Json).$ref).split('/').pop()!]?.description;
          expect(own, `${at}.${field}`).toBeTypeOf('string');
        }
        for (const req of (schema.required ?? []) as string[]) expect(Object.keys(schema.properties ?? {}), at).toContain(req);
      }
    }
    expect(fields).toBeGreaterThan(150);
    expect(components.RuleRequest.required).toEqual(['name', 'triggers', 'actions']);
    expect(components.RuleRequest.additionalProperties).toBe(false);
    expect(components.CommandRequest.anyOf.map((v: Json) => v.required)).toEqual([['set'], ['method']]);
    expect(components.CommandRequest.anyOf[0].properties.timeoutMs.maximum).toBe(LIMITS.commandTimeoutMaxMs);
    expect(components.Trigger.discriminator).toEqual({ propertyName: 'type', mapping: expect.objectContaining({ cron: '#/components/schemas/CronTrigger' }) });
    // refusal options stay out of the published document
    expect(JSON.stringify(doc)).not.toMatch(/"errorMessage"|"select"/);
  });

  it(
    'lints clean with Redocly’s recommended rules, every one an error',
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'hubtier-openapi-'));
      writeFileSync(join(dir, 'openapi.json'), JSON.stringify(doc, null, 2));
      const out = spawnSync(process.execPath, [join(ROOT, 'node_modules/@redocly/cli/bin/cli.js'), 'lint', 'openapi.json', '--config', join(ROOT, 'test/unit/redocly.yaml'), '--format', 'json'], {
        cwd: dir,
        encoding: 'utf8',
        env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
      });
      const report = JSON.parse(out.stdout.slice(out.stdout.indexOf('{'))) as { totals: { errors: number; warnings: number }; problems: Array<{ ruleId: string; message: string; location: Array<{ pointer: string }> }> };
      expect(report.problems.map((p) => `${p.ruleId} at ${p.location[0]?.pointer}: ${p.message}`)).toEqual([]);
      expect(report.totals).toMatchObject({ errors: 0, warnings: 0 });
      expect(out.status).toBe(0);
    },
    120_000,
  );
});
