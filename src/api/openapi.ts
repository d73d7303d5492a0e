import { ErrorCodes } from '../../proto/errors.js';
import type { RouteTable } from '../transport/http.js';

/** What the document says of one operation; keyed by `method /pattern` as registered. */
interface Operation {
  summary: string;
  tag: 'hubs' | 'admin' | 'rules' | 'scenes' | 'homes' | 'meta';
  body?: string;
  ok: string;
  /** error codes from the protocol's table this operation may answer with, besides auth ones */
  errors?: string[];
  /** no bearer token needed */
  open?: boolean;
}

const OPERATIONS: Record<string, Operation> = {
  'post /v1/hubs/:hubId/devices/:deviceId/commands': {
    summary: 'Run a command on a device and return the hub’s answer',
    tag: 'hubs',
    body: '{"set": {attrs}} or {"method": string, "params": {...}}, optional "timeoutMs"',
    ok: '{"ok": true, "result": <the hub’s answer>}',
    errors: ['hub_offline', 'command_timeout', 'unknown_device', 'command_failed', 'invalid_field', 'busy', 'session_closed'],
  },
  'get /v1/hubs/:hubId': { summary: 'Whether and where a hub is connected', tag: 'hubs', ok: '{hubId, homeId, model, enabled, online, node, since, epoch}', errors: ['not_found'] },
  'get /v1/hubs/:hubId/shadow': { summary: 'Reported and desired state of every device of a hub', tag: 'hubs', ok: '{hubId, homeId, devices: {<id>: {reported, reportedVersion, reportedAt, desired, desiredVersion, kind}}}', errors: ['not_found'] },
  'put /v1/hubs/:hubId/devices/:deviceId/desired': { summary: 'Set desired state (null removes a key); an online hub gets the delta at once', tag: 'hubs', body: '{"desired": {attrs}}', ok: '{ok, hubId, deviceId, device}', errors: ['invalid_field', 'not_found'] },
  'post /v1/admin/hubs': { summary: 'Provision a hub; its secret is returned only here', tag: 'admin', body: '{"hubId", "homeId", "model"?}', ok: '201 {hubId, homeId, model, secret}', errors: ['already_exists', 'invalid_field'] },
  'post /v1/admin/tokens': { summary: 'Mint a user JWT for homes', tag: 'admin', body: '{"sub", "homes": [...], "ttlS"?}', ok: '201 {token}', errors: ['invalid_field'] },
  'get /v1/homes/:homeId/settings': { summary: 'The home’s time zone', tag: 'homes', ok: '{timeZone}' },
  'put /v1/homes/:homeId/settings': { summary: 'Set the home’s IANA time zone', tag: 'homes', body: '{"timeZone"}', ok: '{timeZone}', errors: ['invalid_field'] },
  'get /v1/homes/:homeId/rules': { summary: 'List the home’s rules with status and counters', tag: 'rules', ok: '[rule]' },
  'post /v1/homes/:homeId/rules': { summary: 'Create a rule', tag: 'rules', body: 'rule spec: triggers, devices, conditions, actions, cooldownMs, limit', ok: '201 rule', errors: ['invalid_field'] },
  'get /v1/homes/:homeId/rules/:ruleId': { summary: 'Read a rule with its counters', tag: 'rules', ok: 'rule', errors: ['not_found'] },
  'put /v1/homes/:homeId/rules/:ruleId': { summary: 'Replace a rule (version + 1)', tag: 'rules', body: 'rule spec', ok: 'rule', errors: ['invalid_field', 'not_found'] },
  'delete /v1/homes/:homeId/rules/:ruleId': { summary: 'Delete a rule', tag: 'rules', ok: '{ok}', errors: ['not_found'] },
  'post /v1/homes/:homeId/rules/:ruleId/enable': { summary: 'Enable a rule (lifts a loop suspension)', tag: 'rules', ok: 'rule', errors: ['not_found'] },
  'post /v1/homes/:homeId/rules/:ruleId/disable': { summary: 'Disable a rule (cancels a waiting run)', tag: 'rules', ok: 'rule', errors: ['not_found'] },
  'post /v1/homes/:homeId/rules/:ruleId/test': { summary: 'Dry run against current state: what the rule would do, doing nothing', tag: 'rules', body: 'optional {"event", "prev"}', ok: '{triggered, conditions, actions, blockedBy, wouldRun, state}', errors: ['not_found', 'invalid_field'] },
  'get /v1/homes/:homeId/scenes': { summary: 'List the home’s scenes', tag: 'scenes', ok: '[scene]' },
  'post /v1/homes/:homeId/scenes': { summary: 'Create a scene', tag: 'scenes', body: '{name, commands: [...]}', ok: '201 scene', errors: ['invalid_field'] },
  'get /v1/homes/:homeId/scenes/:sceneId': { summary: 'Read a scene', tag: 'scenes', ok: 'scene', errors: ['not_found'] },
  'put /v1/homes/:homeId/scenes/:sceneId': { summary: 'Replace a scene', tag: 'scenes', body: 'scene spec', ok: 'scene', errors: ['invalid_field', 'not_found'] },
  'delete /v1/homes/:homeId/scenes/:sceneId': { summary: 'Delete a scene', tag: 'scenes', ok: '{ok}', errors: ['not_found'] },
  'post /v1/homes/:homeId/scenes/:sceneId/enable': { summary: 'Enable a scene', tag: 'scenes', ok: 'scene', errors: ['not_found'] },
  'post /v1/homes/:homeId/scenes/:sceneId/disable': { summary: 'Disable a scene', tag: 'scenes', ok: 'scene', errors: ['not_found'] },
  'post /v1/homes/:homeId/scenes/:sceneId/run': { summary: 'Run a scene now', tag: 'scenes', ok: '{results: [{hub, device, ok, result|code, message}], allOk}', errors: ['not_found', 'invalid_field'] },
  'get /v1/openapi.json': { summary: 'This document', tag: 'meta', ok: 'OpenAPI 3.1 JSON', open: true },
  'get /': { summary: 'The demo console: live events of a home and commands, in a browser', tag: 'meta', ok: 'text/html', open: true },
};

/** Registered routes the document does not describe (a test keeps this empty). */
export function undocumented(table: RouteTable): string[] {
  return table.map((r) => `${r.method} ${r.pattern}`).filter((k) => !Object.hasOwn(OPERATIONS, k));
}

/**
 * The OpenAPI 3.1 document of the routes actually registered: the paths come from the route
 * table, the words from OPERATIONS, the error schema from the protocol's error table.
 */
export function openApiDocument(table: RouteTable, version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const { method, pattern } of table) {
    const op = OPERATIONS[`${method} ${pattern}`];
    const path = pattern.replace(/:([A-Za-z]+)/g, '{$1}');
    const params = [...pattern.matchAll(/:([A-Za-z]+)/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' } }));
    const errors = op?.open ? (op.errors ?? []) : ['unauthorized', 'forbidden', ...(op?.errors ?? [])];
    const responses: Record<string, unknown> = { [op?.ok.startsWith('201') ? '201' : '200']: { description: op?.ok ?? 'undocumented' } };
    for (const code of errors) {
      const row = ErrorCodes[code as keyof typeof ErrorCodes];
      if (!row) continue;
      const key = String(row.http);
      const prev = (responses[key] as { description: string } | undefined)?.description;
      responses[key] = { description: prev ? `${prev}, ${code}` : code, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };
    }
    (paths[path] ??= {})[method] = {
      summary: op?.summary ?? 'undocumented',
      tags: [op?.tag ?? 'meta'],
      parameters: params,
      ...(op?.body ? { requestBody: { required: true, description: op.body, content: { 'application/json': { schema: { type: 'object' } } } } } : {}),
      ...(op?.open ? { security: [] } : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'hubtier HTTP API', version, description: 'Commands, shadows, provisioning, automation. Errors use the code table of proto/PROTOCOL.md.' },
    security: [{ bearer: [] }],
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'The admin token, or a user JWT (HS256, claims sub and homes)' } },
      schemas: {
        Error: {
          type: 'object',
          required: ['ok', 'code', 'num', 'temporary', 'message'],
          properties: {
            ok: { const: false },
            code: { type: 'string', enum: Object.keys(ErrorCodes) },
            num: { type: 'integer' },
            temporary: { type: 'boolean', description: 'true: the same request may succeed later' },
            message: { type: 'string' },
            field: { type: 'string', description: 'the offending field, for validation errors' },
          },
        },
      },
    },
  };
}
