/**
 * HTTP routes of running a fleet (admin token): hubs provisioned one by one or in batches, listed
 * and searched, changed, moved, deleted and re-keyed; and the hubs of a home for its users.
 * What they do is src/api/fleet.ts; the bodies are src/schemas/fleet.ts.
 */
import type { Static } from '@sinclair/typebox';
import { isValidId } from '../../proto/subjects.js';
import { requireAdmin, requireHome, type Authenticator } from '../auth/authenticator.js';
import { TierError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { compile } from '../schemas/check.js';
import { parseId } from '../schemas/common.js';
import type { TokenRevocation } from '../../proto/subjects.js';
import { BatchReply, BatchRequest, DeleteHubReply, HomeHubsReply, HubListReply, HubPatchRequest, MoveRequest, RevokeReply, RevokeRequest, RotateReply, RotateRequest } from '../schemas/fleet.js';
import { ProvisionReply, ProvisionRequest } from '../schemas/hubs.js';
import { optionalJson, route, type HttpCall, type HttpMetrics, type RouteTable } from '../transport/http.js';
import type { AccessLog } from '../log/access-log.js';
import type { TemplatedApp } from '../transport/uws.js';
import type { WriteBatch } from '../transport/write-batch.js';
import type { Fleet, FleetQuery } from './fleet.js';

const provisionRequest = compile(ProvisionRequest);
const patchRequest = compile(HubPatchRequest);
const moveRequest = compile(MoveRequest);
const rotateRequest = compile(RotateRequest);
const batchRequest = compile(BatchRequest);
const revokeRequest = compile(RevokeRequest);

/** Hubs per page of `GET /v1/admin/hubs`: default and most. */
export const PAGE_DEFAULT = 100;
export const PAGE_MAX = 1_000;

export interface FleetApiDeps {
  auth: Authenticator;
  fleet: Fleet;
  /** revokes user tokens on every node (src/compose/fleet-wiring.ts) */
  revoke(r: { jti: string } | { sub: string; before: number }): Promise<TokenRevocation>;
  log: Logger;
  maxBodyBytes: number;
  /** @default 604_800 (s): grace of a rotated-out secret when the request names none */
  secretGraceS: number;
  writes?: WriteBatch;
  table?: RouteTable;
  httpMetrics?: HttpMetrics;
  /** the access log and request ids of the node's HTTP routes */
  access?: AccessLog;
}

export function mountFleetApi(app: TemplatedApp, deps: FleetApiDeps): void {
  const { auth, fleet } = deps;
  const opts = { maxBodyBytes: deps.maxBodyBytes, log: deps.log, writes: deps.writes, table: deps.table, metrics: deps.httpMetrics, access: deps.access };
  const admin = async (call: HttpCall) => requireAdmin(await auth.fromHeader(call.authorization));

  route(
    app,
    'post',
    '/v1/admin/hubs',
    async (call) => {
      await admin(call);
      const { hubId, homeId, model } = provisionRequest.parse(await call.json());
      const { secret } = await fleet.provision({ hubId, homeId, model });
      const reply: Static<typeof ProvisionReply> = { hubId, homeId, model: model ?? null, secret };
      return { status: 201, body: reply };
    },
    opts,
  );

  route(
    app,
    'post',
    '/v1/admin/hubs:batch',
    async (call) => {
      await admin(call);
      const { hubs } = batchRequest.parse(await call.json());
      const results = await fleet.provisionBatch(hubs);
      const created = results.filter((r) => r.ok).length;
      const reply: Static<typeof BatchReply> = { results, created, failed: results.length - created };
      return { status: 200, body: reply };
    },
    opts,
  );

  route(
    app,
    'get',
    '/v1/admin/hubs',
    async (call) => {
      await admin(call);
      const reply: Static<typeof HubListReply> = await fleet.list(listQuery(call.query));
      return { status: 200, body: reply };
    },
    opts,
  );

  route(
    app,
    'get',
    '/v1/admin/hubs/:hubId',
    async (call) => {
      await admin(call);
      return { status: 200, body: await fleet.get(parseId(call.params[0], 'hubId')) };
    },
    opts,
  );

  route(
    app,
    'patch',
    '/v1/admin/hubs/:hubId',
    async (call) => {
      await admin(call);
      const hubId = parseId(call.params[0], 'hubId');
      const body = patchRequest.parse(await call.json());
      return { status: 200, body: await fleet.patch(hubId, body) };
    },
    opts,
  );

  route(
    app,
    'post',
    '/v1/admin/hubs/:hubId/move',
    async (call) => {
      await admin(call);
      const hubId = parseId(call.params[0], 'hubId');
      const { homeId } = moveRequest.parse(await call.json());
      return { status: 200, body: await fleet.move(hubId, homeId) };
    },
    opts,
  );

  route(
    app,
    'del',
    '/v1/admin/hubs/:hubId',
    async (call) => {
      await admin(call);
      const hubId = parseId(call.params[0], 'hubId');
      const { closed } = await fleet.remove(hubId);
      const reply: Static<typeof DeleteHubReply> = { ok: true, hubId, closed };
      return { status: 200, body: reply };
    },
    opts,
  );

  route(
    app,
    'post',
    '/v1/admin/hubs/:hubId/secret',
    async (call) => {
      await admin(call);
      const hubId = parseId(call.params[0], 'hubId');
      const { graceS = deps.secretGraceS } = rotateRequest.parse((await optionalJson(call)) ?? {});
      const r = await fleet.rotateSecret(hubId, graceS);
      const reply: Static<typeof RotateReply> = { hubId, secret: r.secret, secretVersion: r.secretVersion, previousValidUntil: new Date(r.previousValidUntil).toISOString() };
      return { status: 200, body: reply };
    },
    opts,
  );

  route(
    app,
    'post',
    '/v1/admin/tokens/revoke',
    async (call) => {
      await admin(call);
      const body = revokeRequest.parse(await call.json());
      const bad = (field: string, what: string) => new TierError('invalid_field', `${field}: ${what}`, { field });
      if ((body.jti === undefined) === (body.sub === undefined)) throw bad('jti', 'give jti, or sub (with an optional before), not both');
      if (body.jti !== undefined && body.before !== undefined) throw bad('before', 'only with sub');
      let before = Math.floor(Date.now() / 1000);
      if (body.before !== undefined) {
        const ms = Date.parse(body.before);
        if (!Number.isFinite(ms)) throw bad('before', 'must be an ISO 8601 date and time');
        before = Math.floor(ms / 1000);
      }
      const r = await deps.revoke(body.jti !== undefined ? { jti: body.jti } : { sub: body.sub!, before });
      const reply: Static<typeof RevokeReply> = { ok: true, until: new Date(r.exp * 1000).toISOString() };
      return { status: 200, body: reply };
    },
    opts,
  );

  route(
    app,
    'get',
    '/v1/homes/:homeId/hubs',
    async (call) => {
      const principal = await auth.fromHeader(call.authorization);
      const homeId = parseId(call.params[0], 'homeId');
      requireHome(principal, homeId);
      const reply: Static<typeof HomeHubsReply> = { homeId, hubs: await fleet.listHome(homeId) };
      return { status: 200, body: reply };
    },
    opts,
  );
}

/** `?limit&after&prefix&home&model&firmware&enabled&online&node`; a bad one answers invalid_field naming it. */
export function listQuery(q: URLSearchParams): FleetQuery {
  const bad = (field: string, what: string) => new TierError('invalid_field', `${field}: ${what}`, { field });
  const id = (name: string) => {
    const v = q.get(name);
    if (v === null) return undefined;
    if (!isValidId(v)) throw bad(name, 'must be an id of 1..64 characters [A-Za-z0-9_-]');
    return v;
  };
  const flag = (name: string) => {
    const v = q.get(name);
    if (v === null) return undefined;
    if (v !== 'true' && v !== 'false') throw bad(name, 'must be true or false');
    return v === 'true';
  };
  const text = (name: string) => {
    const v = q.get(name);
    if (v === null) return undefined;
    if (v.length === 0 || v.length > 64) throw bad(name, 'must be 1..64 characters');
    return v;
  };
  const rawLimit = q.get('limit');
  const limit = rawLimit === null ? PAGE_DEFAULT : Number(rawLimit);
  if (!Number.isInteger(limit) || limit < 1 || limit > PAGE_MAX) throw bad('limit', `must be an integer in 1..${PAGE_MAX}`);
  const prefix = q.get('prefix');
  if (prefix !== null && !/^[A-Za-z0-9_-]{1,64}$/.test(prefix)) throw bad('prefix', 'must be 1..64 characters [A-Za-z0-9_-]');
  const out: FleetQuery = { limit };
  const after = id('after');
  const homeId = id('home');
  const model = text('model');
  const firmware = text('firmware');
  const enabled = flag('enabled');
  const online = flag('online');
  const node = text('node');
  if (after !== undefined) out.after = after;
  if (prefix !== null) out.prefix = prefix;
  if (homeId !== undefined) out.homeId = homeId;
  if (model !== undefined) out.model = model;
  if (firmware !== undefined) out.firmware = firmware;
  if (enabled !== undefined) out.enabled = enabled;
  if (online !== undefined) out.online = online;
  if (node !== undefined) out.node = node;
  return out;
}
