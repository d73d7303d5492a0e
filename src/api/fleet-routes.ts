/**
 * HTTP routes of running a fleet (admin token): hubs provisioned one by one or in batches, listed
 * and searched, changed, moved, deleted and re-keyed; and the hubs of a home for its users.
 * What they do is src/api/fleet.ts; the bodies are src/schemas/fleet.ts.
 */
import type { Static } from '@sinclair/typebox';
import { ID_RULE, isValidId } from '../../proto/subjects.js';
import { requireAdmin, requireHome, type Authenticator } from '../auth/authenticator.js';
import { TierError } from '../errors.js';
import { compile } from '../schemas/check.js';
import { parseId } from '../schemas/common.js';
import { DATE_TIME_MESSAGE, dateTimeMs } from '../schemas/date-time.js';
import type { TokenRevocation } from '../../proto/subjects.js';
import { BatchReply, BatchRequest, DeleteHubReply, HomeHubsReply, HubListReply, HubPatchRequest, MoveRequest, RevocationListReply, RevokeReply, RevokeRequest, RotateReply, RotateRequest } from '../schemas/fleet.js';
import { MAX_TTL_S, ProvisionReply, ProvisionRequest } from '../schemas/hubs.js';
import { route, routeOptions, storeWriteOptions, type HttpCall, type RouteHost } from '../transport/http.js';
import { optionalJson, queryCount, queryOne } from '../transport/http-input.js';
import type { TemplatedApp } from '../transport/uws.js';
import { byCaller, NO_AUDIT, type AuditTrail, type AuditWhat } from '../actors/audit-trail.js';
import type { Fleet, FleetQuery } from './fleet.js';
import { RevocationPages, revocationsQuery } from './revocation-list.js';

const provisionRequest = compile(ProvisionRequest);
const patchRequest = compile(HubPatchRequest);
const moveRequest = compile(MoveRequest);
const rotateRequest = compile(RotateRequest);
const batchRequest = compile(BatchRequest);
const revokeRequest = compile(RevokeRequest);

/** Hubs per page of `GET /v1/admin/hubs`: default and most. */
export const PAGE_DEFAULT = 100;
export const PAGE_MAX = 1_000;

/** A revocation as asked for: one token, a user's tokens issued before a time, or a home taken from the tokens issued before a time. */
export type RevokeOrder = { jti: string } | { sub: string; before: number } | { home: string; before: number };

export interface FleetApiDeps extends RouteHost {
  auth: Authenticator;
  fleet: Fleet;
  /** revokes user tokens on every node (src/compose/fleet-wiring.ts) */
  revoke(r: RevokeOrder): Promise<TokenRevocation>;
  /** the revocations in force, as stored for nodes that start later */
  revocations(): Promise<TokenRevocation[]>;
  /** the list route's pages of `revocations`, told of every revocation the node makes (the node's; absent, the routes make their own) */
  revocationPages?: RevocationPages;
  /** @default 604_800 (s): grace of a rotated-out secret when the request names none */
  secretGraceS: number;
  /** every change to the fleet and every revocation is recorded here */
  audit?: AuditTrail;
}

export function mountFleetApi(app: TemplatedApp, deps: FleetApiDeps): void {
  const { auth, fleet } = deps;
  const opts = routeOptions(deps);
  // the list route's pages, from one read and sort of the revocations at a time (revocation-list.ts)
  const ownPages = deps.revocationPages === undefined;
  const revocationPages = deps.revocationPages ?? new RevocationPages(deps.revocations);
  // routes that wait for the node's store: refused at once while it stalls (api/store-admission.ts)
  const writeOpts = storeWriteOptions(deps);
  const admin = async (call: HttpCall) => requireAdmin(await auth.fromHeader(call.authorization, call.remote));
  const audit = deps.audit ?? NO_AUDIT;
  /** An admin action, recorded once the caller is known (a user refused here is recorded too). */
  const adminAction = async <T>(call: HttpCall, what: AuditWhat, action: () => Promise<T>): Promise<T> => {
    const principal = await auth.fromHeader(call.authorization, call.remote);
    return audit.run(byCaller(principal, call), what, async () => {
      requireAdmin(principal);
      return action();
    });
  };

  route(
    app,
    'post',
    '/v1/admin/hubs',
    async (call) => {
      const what: AuditWhat = { action: 'hub.provision' };
      return adminAction(call, what, async () => {
        const { hubId, homeId, model } = provisionRequest.parse(await call.json());
        Object.assign(what, { hubId, homeId });
        const { secret } = await fleet.provision({ hubId, homeId, model });
        const reply: Static<typeof ProvisionReply> = { hubId, homeId, model: model ?? null, secret };
        return { status: 201, body: reply };
      });
    },
    writeOpts,
  );

  route(
    app,
    'post',
    '/v1/admin/hubs:batch',
    async (call) => {
      const what: AuditWhat = { action: 'hub.provision_batch' };
      return adminAction(call, what, async () => {
        const { hubs } = batchRequest.parse(await call.json());
        // the batch as one entry; the hubs it created, each with its home, as entries of their own,
        // each as it is made: a batch the store cuts short (500) names the hubs it made before
        what.target = `${hubs.length} hubs`;
        let created = 0;
        const results = await fleet
          .provisionBatch(hubs, (h) => {
            created++;
            audit.record(byCaller({ kind: 'admin' }, call), { action: 'hub.provision', hubId: h.hubId, homeId: h.homeId, detail: 'batch' }, 'ok');
          })
          .catch((err: unknown) => {
            what.detail = `created ${created}, then stopped: the store failed`;
            throw err;
          });
        what.detail = `created ${created}, failed ${results.length - created}`;
        const reply: Static<typeof BatchReply> = { results, created, failed: results.length - created };
        return { status: 200, body: reply };
      });
    },
    writeOpts,
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
      const what: AuditWhat = { action: 'hub.patch' };
      return adminAction(call, what, async () => {
        const hubId = (what.hubId = parseId(call.params[0], 'hubId'));
        const body = patchRequest.parse(await call.json());
        what.detail = Object.keys(body).map((k) => (k === 'enabled' ? `enabled=${String(body.enabled)}` : k)).join(',');
        const hub = await fleet.patch(hubId, body);
        what.homeId = hub.homeId;
        return { status: 200, body: hub };
      });
    },
    writeOpts,
  );

  route(
    app,
    'post',
    '/v1/admin/hubs/:hubId/move',
    async (call) => {
      const what: AuditWhat = { action: 'hub.move' };
      return adminAction(call, what, async () => {
        const hubId = (what.hubId = parseId(call.params[0], 'hubId'));
        const { homeId, keepDesired } = moveRequest.parse(await call.json());
        // recorded under the new home; the old one is in the detail, which the new home's users
        // do not see (src/api/audit-routes.ts homeView)
        what.homeId = homeId;
        const moved = await fleet.move(hubId, homeId, { keepDesired: keepDesired === true });
        what.detail = `from ${moved.from}${keepDesired === true ? ', desired state kept' : `, desired state of ${moved.desiredCleared} devices cleared`}`;
        return { status: 200, body: moved };
      });
    },
    writeOpts,
  );

  route(
    app,
    'del',
    '/v1/admin/hubs/:hubId',
    async (call) => {
      const what: AuditWhat = { action: 'hub.delete' };
      return adminAction(call, what, async () => {
        const hubId = (what.hubId = parseId(call.params[0], 'hubId'));
        const before = await fleet.get(hubId).catch(() => null);
        if (before) what.homeId = before.homeId;
        // read before the delete: a read failing after it answered 500 for a hub gone, and the retry 404 (review diff15)
        const naming = before ? await fleet.naming(before.homeId, hubId) : { rules: [], scenes: [] };
        const { closed } = await fleet.remove(hubId);
        const reply: Static<typeof DeleteHubReply> = { ok: true, hubId, closed, ...naming };
        return { status: 200, body: reply };
      });
    },
    writeOpts,
  );

  route(
    app,
    'post',
    '/v1/admin/hubs/:hubId/secret',
    async (call) => {
      const what: AuditWhat = { action: 'hub.secret_rotate' };
      return adminAction(call, what, async () => {
        const hubId = (what.hubId = parseId(call.params[0], 'hubId'));
        const { graceS = deps.secretGraceS, idempotencyKey } = rotateRequest.parse((await optionalJson(call)) ?? {});
        what.detail = `grace ${graceS}s`;
        const r = await fleet.rotateSecret(hubId, graceS, idempotencyKey);
        // in the home's own trail too, with the version the hub now holds (review "rotation")
        what.homeId = r.homeId;
        what.detail = `version ${r.secretVersion}, grace ${graceS}s`;
        if (r.repeated) what.detail += ', a retry: nothing rotated';
        const reply: Static<typeof RotateReply> = {
          hubId,
          secret: r.secret,
          secretVersion: r.secretVersion,
          previousVersion: r.secretVersion - 1,
          previousValidUntil: new Date(r.previousValidUntil).toISOString(),
          repeated: r.repeated,
        };
        return { status: 200, body: reply };
      });
    },
    writeOpts,
  );

  route(
    app,
    'post',
    '/v1/admin/tokens/revoke',
    async (call) => {
      const what: AuditWhat = { action: 'token.revoke' };
      return adminAction(call, what, async () => {
        const body = revokeRequest.parse(await call.json());
        what.target = body.jti !== undefined ? `jti ${body.jti}` : body.home !== undefined ? `home ${body.home}` : `sub ${body.sub ?? ''}`;
        const bad = (field: string, problem: string) => new TierError('invalid_field', `${field}: ${problem}`, { field });
        const given = [body.jti, body.sub, body.home].filter((v) => v !== undefined).length;
        if (given !== 1) throw bad('jti', 'give one of jti, sub (with an optional before) or home (with an optional before)');
        if (body.jti !== undefined && body.before !== undefined) throw bad('before', 'only with sub or home');
        const before = revokedBefore(body.before, await auth.revocationNow());
        const r = await deps.revoke(body.jti !== undefined ? { jti: body.jti } : body.home !== undefined ? { home: body.home, before } : { sub: body.sub!, before });
        // the node's pages are told by its revoke (review diff20: told twice, each a walk of the list)
        if (ownPages) revocationPages.added(r);
        const reply: Static<typeof RevokeReply> = { ok: true, until: new Date(r.exp * 1000).toISOString() };
        return { status: 200, body: reply };
      });
    },
    writeOpts,
  );

  route(
    app,
    'get',
    '/v1/admin/tokens/revocations',
    async (call) => {
      await admin(call);
      const reply: Static<typeof RevocationListReply> = await revocationPages.page(revocationsQuery(call.query));
      return { status: 200, body: reply };
    },
    opts,
  );

  route(
    app,
    'get',
    '/v1/homes/:homeId/hubs',
    async (call) => {
      const principal = await auth.fromHeader(call.authorization, call.remote);
      const homeId = parseId(call.params[0], 'homeId');
      requireHome(principal, homeId);
      const { after } = homeHubsQuery(call.query);
      const reply: Static<typeof HomeHubsReply> = { homeId, ...(await fleet.listHome(homeId, after)) };
      return { status: 200, body: reply };
    },
    opts,
  );
}

/**
 * A revocation's `before` in Unix seconds (default now), refused `invalid_field` before anything is
 * stored unless an RFC 3339 date-time within MAX_TTL_S (30 days, the longest token life) of now:
 * earlier revokes nothing that has not expired already; later refuses the user's tokens issued
 * until then (a lock-out), for at most as long as a token lives.
 */
export function revokedBefore(before: string | undefined, nowMs: number): number {
  if (before === undefined) return Math.floor(nowMs / 1000);
  const ms = dateTimeMs(before);
  if (ms === null) throw new TierError('invalid_field', `before: ${DATE_TIME_MESSAGE}`, { field: 'before' });
  if (Math.abs(ms - nowMs) > MAX_TTL_S * 1000) throw new TierError('invalid_field', `before: must be within ${MAX_TTL_S / 86_400} days of now (tokens live at most that long)`, { field: 'before' });
  return Math.floor(ms / 1000);
}

/** `?limit`: PAGE_DEFAULT when absent, else an integer in 1..PAGE_MAX (invalid_field naming it). */
function pageLimit(q: URLSearchParams): number {
  return queryCount(q, 'limit', PAGE_DEFAULT, PAGE_MAX);
}

/** `GET /v1/homes/{homeId}/hubs`: `after`, the previous page's `next` (until 2026-12-06 the list stopped at 1,000 hubs, silently). */
export function homeHubsQuery(q: URLSearchParams): { after?: string } {
  const after = queryOne(q, 'after');
  if (after === null) return {};
  if (!isValidId(after)) throw new TierError('invalid_field', `after: must be ${ID_RULE}`, { field: 'after' });
  return { after };
}

/** `?limit&after&prefix&home&model&firmware&enabled&online&node`; a bad or repeated one answers invalid_field naming it. */
export function listQuery(q: URLSearchParams): FleetQuery {
  const bad = (field: string, what: string) => new TierError('invalid_field', `${field}: ${what}`, { field });
  const id = (name: string) => {
    const v = queryOne(q, name);
    if (v === null) return undefined;
    if (!isValidId(v)) throw bad(name, `must be ${ID_RULE}`);
    return v;
  };
  const flag = (name: string) => {
    const v = queryOne(q, name);
    if (v === null) return undefined;
    if (v !== 'true' && v !== 'false') throw bad(name, 'must be true or false');
    return v === 'true';
  };
  const text = (name: string) => {
    const v = queryOne(q, name);
    if (v === null) return undefined;
    if (v.length === 0 || v.length > 64) throw bad(name, 'must be 1..64 characters');
    return v;
  };
  const limit = pageLimit(q);
  const prefix = queryOne(q, 'prefix');
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
