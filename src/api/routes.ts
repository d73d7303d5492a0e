import { readFileSync } from 'node:fs';
import type { Attrs } from '../../proto/frames.js';
import type { Static } from '@sinclair/typebox';
import { sendCommand, type CommandMetrics } from '../actors/commands.js';
import { writeDesired } from '../actors/desired-write.js';
import { DEFAULT_HUB_LIMITS, type HubLimits } from '../actors/hub-limits.js';
import type { Bus } from '../ports/bus/bus.js';
import type { Directory } from '../ports/directory/directory.js';
import type { HubInfo, HubRegistry } from '../ports/hub-registry/hub-registry.js';
import type { ShadowStore } from '../ports/shadow-store/shadow-store.js';
import { TierError } from '../errors.js';
import { LIMITS } from '../protocol/codec.js';
import { compile } from '../schemas/check.js';
import { commandSpec } from '../schemas/command.js';
import { parseId } from '../schemas/common.js';
import { CommandReply, CommandRequest, DesiredReply, DesiredRequest, HubStatus, ShadowReply, TokenReply, TokenRequest } from '../schemas/hubs.js';
import { route, routeOptions, storeWriteOptions, type HttpCall, type RouteHost } from '../transport/http.js';
import type { TemplatedApp } from '../transport/uws.js';
import { canSeeHome, requireAdmin, type Authenticator, type Principal } from '../auth/authenticator.js';
import { byCaller, NO_AUDIT, type AuditTrail, type AuditWhat } from '../actors/audit-trail.js';
import { clientBundle } from './client-bundle.js';
import { mountDocsPage } from './docs-page.js';
import { openApiDocument } from './openapi.js';
import { mountNoRoute } from './no-route.js';
import { HomeReadBudget } from './read-budget.js';
import { monotonicMs } from '../actors/clock.js';

/** Version of the HTTP API in the OpenAPI document. */
const API_VERSION = '1.0.0';
/** how long the served OpenAPI document is kept before it is made again (ms) */
const OPENAPI_REMADE_MS = 60_000;

const desiredRequest = compile(DesiredRequest);
const tokenRequest = compile(TokenRequest);

/**
 * At most 64 attributes in one desired change, nils included, refused as the limit it is (`422
 * limit_exceeded`, PROTOCOL.md §1), not as a malformed body; the store holds string lengths and the
 * device and hub after the merge to the node's limits, answered the same way.
 */
function checkDesiredChange(patch: Attrs): void {
  let n = 0;
  for (const _ in patch) {
    if (++n > LIMITS.attrsPerDevice) throw new TierError('limit_exceeded', `desired: more than ${LIMITS.attrsPerDevice} attributes in one change`, { field: 'desired' });
  }
}

const CONSOLE_PAGE = readFileSync(new URL('./console.html', import.meta.url), 'utf8');
const CONSOLE_SCRIPT = readFileSync(new URL('./console.js', import.meta.url), 'utf8');
/** The console's scripts come from this node only, never inline; nothing may frame it, set its base or post a form from it. */
const CONSOLE_HEADERS = {
  'content-security-policy': [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'unsafe-inline'",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; '),
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};
/** The console's script and the client library: checked against the node again whenever used. */
const SCRIPT_HEADERS = { 'cache-control': 'no-cache' };

export interface ApiDeps extends RouteHost {
  /** @default 100 ms a second a home: the loop time its shadow reads may take (read-budget.ts) */
  shadowReads?: HomeReadBudget;
  auth: Authenticator;
  bus: Bus;
  registry: HubRegistry;
  directory: Directory;
  shadows: ShadowStore;
  commandTimeoutMs: number;
  commandTimeoutMaxMs: number;
  /** the same bounds the hub sessions enforce: desired state cannot grow a shadow past them */
  hubLimits?: HubLimits;
  commandMetrics?: CommandMetrics;
  /** commands, desired changes and token issues are recorded here */
  audit?: AuditTrail;
}

/**
 * The JSON HTTP API. Users reach hubs of their homes only; an unknown hub and a hub of another
 * home both answer 403 to a user (no probing of ids), 404 to the admin.
 */
export function mountApi(app: TemplatedApp, deps: ApiDeps): void {
  const { auth, registry } = deps;
  const opts = routeOptions(deps);
  const commandRequest = compile(CommandRequest(deps.commandTimeoutMaxMs));
  const audit = deps.audit ?? NO_AUDIT;
  const reads = deps.shadowReads ?? new HomeReadBudget();

  /** Authenticates and loads the hub the caller may touch. */
  async function hubFor(call: HttpCall): Promise<{ principal: Principal; hub: HubInfo }> {
    const principal = await auth.fromHeader(call.authorization, call.remote);
    return { principal, hub: await hubOf(principal, parseId(call.params[0], 'hubId')) };
  }

  async function hubOf(principal: Principal, hubId: string): Promise<HubInfo> {
    const hub = await registry.lookup(hubId);
    if (!hub && principal.kind === 'admin') throw new TierError('not_found', `hub ${hubId} is not provisioned`);
    // one answer for a hub that does not exist and one of another home: naming the home would
    // tell a user which ids exist and where
    if (!hub || !canSeeHome(principal, hub.homeId)) throw new TierError('forbidden', `not allowed to access hub ${hubId}`);
    return hub;
  }

  /**
   * A control action on a hub, recorded once the caller is known (a refused token is not an
   * action of anyone): the hub's home is added when the caller may see it.
   */
  async function onHub<T>(call: HttpCall, what: AuditWhat, action: (hub: HubInfo) => Promise<T>): Promise<T> {
    const principal = await auth.fromHeader(call.authorization, call.remote);
    const hubId = parseId(call.params[0], 'hubId');
    what.hubId = hubId;
    return audit.run(byCaller(principal, call), what, async () => {
      const hub = await hubOf(principal, hubId);
      what.homeId = hub.homeId;
      return action(hub);
    });
  }

  route(
    app,
    'post',
    '/v1/hubs/:hubId/devices/:deviceId/commands',
    async (call) => {
      const what: AuditWhat = { action: 'command' };
      return onHub(call, what, async (hub) => {
        if (!hub.enabled) throw new TierError('hub_disabled', `hub ${hub.hubId} is disabled: commands are refused until it is enabled`);
        const deviceId = parseId(call.params[1], 'deviceId');
        what.deviceId = deviceId;
        const body = commandRequest.parse(await call.json());
        what.detail = commandDetail(body);
        const timeoutMs = body.timeoutMs ?? deps.commandTimeoutMs;
        const reply: Static<typeof CommandReply> = { ok: true, result: await sendCommand(deps.bus, hub.hubId, deviceId, commandSpec(body), timeoutMs, deps.commandMetrics, call.requestId, call.span) };
        return { status: 200, body: reply };
      });
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
      const status: Static<typeof HubStatus> = {
        hubId: hub.hubId,
        homeId: hub.homeId,
        model: hub.model ?? null,
        enabled: hub.enabled,
        online: loc !== null,
        node: loc?.node ?? null,
        since: loc ? new Date(loc.since).toISOString() : null,
        epoch: loc?.epoch ?? null,
      };
      return { status: 200, body: status };
    },
    opts,
  );

  route(
    app,
    'get',
    '/v1/hubs/:hubId/shadow',
    async (call) => {
      const { hub } = await hubFor(call);
      reads.check(hub.homeId);
      const spent = { ms: 0 };
      const devices = await deps.shadows.load(hub.hubId, { spent });
      const shadow: Static<typeof ShadowReply> = { hubId: hub.hubId, homeId: hub.homeId, devices };
      // written here, so that its time (as much as the read's, for a large shadow) is charged too
      const started = performance.now();
      const text = JSON.stringify(shadow);
      reads.spent(hub.homeId, spent.ms + performance.now() - started);
      return { status: 200, text, contentType: 'application/json' };
    },
    opts,
  );

  route(
    app,
    'put',
    '/v1/hubs/:hubId/devices/:deviceId/desired',
    async (call) => {
      const what: AuditWhat = { action: 'desired.set' };
      return onHub(call, what, async (hub) => {
        const deviceId = parseId(call.params[1], 'deviceId');
        what.deviceId = deviceId;
        const patch = desiredRequest.parse(await call.json()).desired;
        checkDesiredChange(patch);
        what.detail = Object.keys(patch).join(',');
        // checked by the store in the same step as the write: concurrent writers cannot pass a limit together
        const device = await writeDesired(deps, hub.hubId, hub.homeId, deviceId, patch, deps.hubLimits ?? DEFAULT_HUB_LIMITS);
        const reply: Static<typeof DesiredReply> = { ok: true, hubId: hub.hubId, deviceId, device };
        return { status: 200, body: reply };
      });
    },
    storeWriteOptions(deps),
  );

  // provisioning and the rest of the fleet: src/api/fleet-routes.ts

  route(
    app,
    'post',
    '/v1/admin/tokens',
    async (call) => {
      const principal = await auth.fromHeader(call.authorization, call.remote);
      const what: AuditWhat = { action: 'token.issue' };
      return audit.run(byCaller(principal, call), what, async () => {
        requireAdmin(principal);
        const { sub, homes, ttlS = 3600 } = tokenRequest.parse(await call.json());
        const reply: Static<typeof TokenReply> = { token: await auth.issue(sub, homes, ttlS) };
        what.target = sub;
        what.detail = `jti ${jtiOf(reply.token)}; homes ${homes.join(',')}; ttl ${ttlS}s`;
        return { status: 201, body: reply };
      });
    },
    opts,
  );

  // the demo console: a static page; it asks for a token and talks to /app/v1 like any app
  route(app, 'get', '/', () => ({ status: 200, text: CONSOLE_PAGE, contentType: 'text/html; charset=utf-8', headers: CONSOLE_HEADERS }), opts);
  route(app, 'get', '/console.js', () => ({ status: 200, text: CONSOLE_SCRIPT, contentType: 'text/javascript; charset=utf-8', headers: SCRIPT_HEADERS }), opts);
  // the app client library the console imports, bundled for browsers (src/client/)
  route(app, 'get', '/client.js', async () => ({ status: 200, text: await clientBundle(), contentType: 'text/javascript; charset=utf-8', headers: SCRIPT_HEADERS }), opts);

  // the API documentation page and the protocol documents it links to; not API routes, so not in the table
  mountDocsPage(app, deps.writes);

  // made from the table at the first request, so routes mounted by other modules are in it too, and
  // again at most once a minute (examples checked against the clock are dated): not per request,
  // as until 2026-12-06, when anyone unauthenticated could spend ~10 ms of the event loop a request
  let openApi: { text: string; at: number } | null = null;
  route(
    app,
    'get',
    '/v1/openapi.json',
    () => {
      // its age on the monotonic clock (a step back of the wall clock kept it until the clock caught up); its dates on the wall clock
      const at = monotonicMs();
      if (openApi === null || at - openApi.at >= OPENAPI_REMADE_MS) {
        const doc = openApiDocument(deps.table ?? [], API_VERSION, { commandTimeoutMaxMs: deps.commandTimeoutMaxMs, maxBodyBytes: deps.maxBodyBytes }, Date.now());
        openApi = { text: JSON.stringify(doc), at };
      }
      return { status: 200, text: openApi.text, contentType: 'application/json' };
    },
    opts,
  );

  // last: what no route above answers
  mountNoRoute(app, deps);
}

/** What a command did, for the audit trail: its method, or the attributes it set. */
function commandDetail(body: { set?: Attrs; method?: string }): string {
  return body.set !== undefined ? `set ${Object.keys(body.set).join(',')}` : (body.method ?? '');
}

/** The `jti` of a token this node just signed (for revoking it later by what the trail shows). */
function jtiOf(token: string): string {
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { jti?: unknown };
    return typeof payload.jti === 'string' ? payload.jti : '';
  } catch {
    return '';
  }
}
