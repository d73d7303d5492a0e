import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Attrs } from '../../proto/frames.js';
import { isValidId } from '../../proto/subjects.js';
import { publishDesired, sendCommand, type CommandSpec } from '../actors/commands.js';
import { DEFAULT_HUB_LIMITS, type HubLimits } from '../actors/hub-limits.js';
import type { Bus } from '../ports/bus/bus.js';
import type { Directory } from '../ports/directory/directory.js';
import type { HubRecord, HubRegistry } from '../ports/hub-registry/hub-registry.js';
import type { ShadowStore } from '../ports/shadow-store/shadow-store.js';
import { TierError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { attrs, params } from '../protocol/codec.js';
import { route, type HttpCall, type RouteTable } from '../transport/http.js';
import type { TemplatedApp } from '../transport/uws.js';
import type { WriteBatch } from '../transport/write-batch.js';
import { requireAdmin, requireHome, type Authenticator, type Principal } from '../auth/authenticator.js';
import { openApiDocument } from './openapi.js';

/** Version of the HTTP API in the OpenAPI document. */
const API_VERSION = '1.0.0';

const CONSOLE_PAGE = readFileSync(new URL('./console.html', import.meta.url), 'utf8');
const CONSOLE_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
  'x-frame-options': 'DENY',
};

export interface ApiDeps {
  auth: Authenticator;
  bus: Bus;
  registry: HubRegistry;
  directory: Directory;
  shadows: ShadowStore;
  log: Logger;
  maxBodyBytes: number;
  commandTimeoutMs: number;
  commandTimeoutMaxMs: number;
  /** the same bounds the hub sessions enforce: desired state cannot grow a shadow past them */
  hubLimits?: HubLimits;
  writes?: WriteBatch;
  /** all routes of the app (this API's and the automation's), for the OpenAPI document */
  table?: RouteTable;
}

function invalid(field: string, what: string): never {
  throw new TierError('invalid_field', `${field}: ${what}`, { field });
}

function idParam(value: string | undefined, field: string): string {
  if (!isValidId(value)) invalid(field, 'must be an id of 1..64 characters [A-Za-z0-9_-]');
  return value;
}

function objectBody(v: unknown): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) invalid('body', 'must be a JSON object');
  return v as Record<string, unknown>;
}

/**
 * The JSON HTTP API. Users reach hubs of their homes only; an unknown hub and a hub of another
 * home both answer 403 to a user (no probing of ids), 404 to the admin.
 */
export function mountApi(app: TemplatedApp, deps: ApiDeps): void {
  const { auth, registry } = deps;
  const opts = { maxBodyBytes: deps.maxBodyBytes, log: deps.log, writes: deps.writes, table: deps.table };

  /** Authenticates and loads the hub the caller may touch. */
  async function hubFor(call: HttpCall): Promise<{ principal: Principal; hub: HubRecord }> {
    const principal = await auth.fromHeader(call.authorization);
    const hubId = idParam(call.params[0], 'hubId');
    const hub = await registry.get(hubId);
    if (!hub) {
      if (principal.kind === 'admin') throw new TierError('not_found', `hub ${hubId} is not provisioned`);
      throw new TierError('forbidden', `not allowed to access hub ${hubId}`);
    }
    requireHome(principal, hub.homeId);
    return { principal, hub };
  }

  /** A new device or new desired keys must stay within the hub's limits (one read: not a hot path). */
  async function checkDesiredLimits(hubId: string, deviceId: string, patch: Attrs): Promise<void> {
    const limits = deps.hubLimits ?? DEFAULT_HUB_LIMITS;
    const shadow = await deps.shadows.load(hubId);
    const device = shadow[deviceId];
    if (device === undefined && Object.keys(shadow).length >= limits.devices) {
      throw new TierError('limit_exceeded', `deviceId: hub ${hubId} has ${limits.devices} devices, the most allowed`, { field: 'deviceId' });
    }
    const keys = new Set(device ? Object.keys(device.desired) : []);
    for (const key in patch) {
      if (patch[key] === null) keys.delete(key);
      else keys.add(key);
    }
    if (keys.size > limits.attrsPerDevice) throw new TierError('limit_exceeded', `desired: more than ${limits.attrsPerDevice} attributes on device ${deviceId}`, { field: 'desired' });
    for (const key in patch) {
      const v = patch[key];
      if (typeof v === 'string' && v.length > limits.valueBytes) throw new TierError('limit_exceeded', `desired.${key}: string values are limited to ${limits.valueBytes} characters`, { field: `desired.${key}` });
    }
  }

  route(
    app,
    'post',
    '/v1/hubs/:hubId/devices/:deviceId/commands',
    async (call) => {
      const { hub } = await hubFor(call);
      const deviceId = idParam(call.params[1], 'deviceId');
      const body = objectBody(await call.json());
      let spec: CommandSpec;
      if (body.set !== undefined) spec = { set: attrs(body.set, 'set') };
      else if (body.method !== undefined) {
        if (typeof body.method !== 'string' || body.method.length === 0 || body.method.length > 64) invalid('method', 'must be a string of 1..64 characters');
        spec = { method: body.method, params: body.params === undefined ? {} : params(body.params, 'params') };
      } else invalid('set', 'give "set" (attributes) or "method" (with optional "params")');
      let timeoutMs = deps.commandTimeoutMs;
      if (body.timeoutMs !== undefined) {
        const t = body.timeoutMs;
        if (typeof t !== 'number' || !Number.isInteger(t) || t < 1 || t > deps.commandTimeoutMaxMs) invalid('timeoutMs', `must be an integer in 1..${deps.commandTimeoutMaxMs}`);
        timeoutMs = t;
      }
      const result = await sendCommand(deps.bus, hub.hubId, deviceId, spec, timeoutMs);
      return { status: 200, body: { ok: true, result } };
    },
    opts,
  );

  route(
    app,
    'get',
    '/v1/hubs/:hubId',
    async (call) => {
      const { hub } = await hubFor(call);
      const loc = await deps.directory.lookup(hub.hubId);
      return {
        status: 200,
        body: {
          hubId: hub.hubId,
          homeId: hub.homeId,
          model: hub.model ?? null,
          enabled: hub.enabled,
          online: loc !== null,
          node: loc?.node ?? null,
          since: loc ? new Date(loc.since).toISOString() : null,
          epoch: loc?.epoch ?? null,
        },
      };
    },
    opts,
  );

  route(
    app,
    'get',
    '/v1/hubs/:hubId/shadow',
    async (call) => {
      const { hub } = await hubFor(call);
      return { status: 200, body: { hubId: hub.hubId, homeId: hub.homeId, devices: await deps.shadows.load(hub.hubId) } };
    },
    opts,
  );

  route(
    app,
    'put',
    '/v1/hubs/:hubId/devices/:deviceId/desired',
    async (call) => {
      const { hub } = await hubFor(call);
      const deviceId = idParam(call.params[1], 'deviceId');
      const body = objectBody(await call.json());
      const patch: Attrs = attrs(body.desired, 'desired');
      await checkDesiredLimits(hub.hubId, deviceId, patch);
      const device = await deps.shadows.setDesired(hub.hubId, deviceId, patch);
      publishDesired(deps.bus, hub.hubId, deviceId, device);
      return { status: 200, body: { ok: true, hubId: hub.hubId, deviceId, device } };
    },
    opts,
  );

  route(
    app,
    'post',
    '/v1/admin/hubs',
    async (call) => {
      requireAdmin(await auth.fromHeader(call.authorization));
      const body = objectBody(await call.json());
      const hubId = idParam(body.hubId as string | undefined, 'hubId');
      const homeId = idParam(body.homeId as string | undefined, 'homeId');
      if (body.model !== undefined && (typeof body.model !== 'string' || body.model.length > 64)) invalid('model', 'must be a string of at most 64 characters');
      const secret = randomBytes(24).toString('base64url');
      await registry.create({ hubId, homeId, model: body.model as string | undefined, secret, enabled: true, createdAt: Date.now() });
      return { status: 201, body: { hubId, homeId, model: body.model ?? null, secret } };
    },
    opts,
  );

  route(
    app,
    'post',
    '/v1/admin/tokens',
    async (call) => {
      requireAdmin(await auth.fromHeader(call.authorization));
      const body = objectBody(await call.json());
      if (typeof body.sub !== 'string' || body.sub.length === 0 || body.sub.length > 128) invalid('sub', 'must be a string of 1..128 characters');
      if (!Array.isArray(body.homes) || body.homes.some((h) => !isValidId(h))) invalid('homes', 'must be an array of home ids');
      const ttlS = body.ttlS ?? 3600;
      if (typeof ttlS !== 'number' || !Number.isInteger(ttlS) || ttlS < 1 || ttlS > 30 * 86400) invalid('ttlS', 'must be an integer in 1..2592000');
      return { status: 201, body: { token: await auth.issue(body.sub, body.homes as string[], ttlS) } };
    },
    opts,
  );

  // the demo console: a static page; it asks for a token and talks to /app/v1 like any app
  route(app, 'get', '/', () => ({ status: 200, text: CONSOLE_PAGE, contentType: 'text/html; charset=utf-8', headers: CONSOLE_HEADERS }), opts);

  // computed per request from the table, so routes mounted by other modules are in it too
  route(app, 'get', '/v1/openapi.json', () => ({ status: 200, body: openApiDocument(deps.table ?? [], API_VERSION) }), opts);

  app.any('/*', (res) => {
    res.cork(() => {
      res.writeStatus('404 Not Found').writeHeader('content-type', 'application/json').end(JSON.stringify({ ok: false, code: 'not_found', num: 106, temporary: false, message: 'no such route' }));
    });
  });
}
