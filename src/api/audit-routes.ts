/**
 * Reading the audit trail: every home for the admin, one home for its users (and the admin).
 * A home's users see who did what in their home, not from where: `homeView` leaves that out.
 *
 *   GET /v1/admin/audit?homeId&hubId&actor&action&outcome&since&until&limit&cursor
 *   GET /v1/homes/{homeId}/audit?hubId&actor&action&outcome&since&until&limit&cursor
 */
import type { Static } from '@sinclair/typebox';
import { requireAdmin, requireHome, type Authenticator } from '../auth/authenticator.js';
import { TierError } from '../errors.js';
import { AUDIT_PAGE_MAX, type AuditLog, type AuditQuery } from '../ports/audit/audit.js';
import { parseId } from '../schemas/common.js';
import { DATE_TIME_MESSAGE, dateTimeMs } from '../schemas/date-time.js';
import type { AuditActor, AuditEntry } from '../../proto/subjects.js';
import type { AuditEntryView, AuditReply } from '../schemas/audit.js';
import { route, routeOptions, type RouteHost } from '../transport/http.js';
import { queryCount, queryOne } from '../transport/http-input.js';
import type { TemplatedApp } from '../transport/uws.js';

/** Entries per page when `limit` is not given. */
export const AUDIT_PAGE_DEFAULT = 100;

export interface AuditApiDeps extends RouteHost {
  auth: Authenticator;
  /** absent: the routes answer an empty trail */
  store?: AuditLog;
}

/** Mount before the main API (its catch-all 404 must stay the last route). */
export function mountAuditApi(app: TemplatedApp, deps: AuditApiDeps): void {
  const { auth } = deps;
  const opts = routeOptions(deps);
  const page = async (q: AuditQuery, view: (e: AuditEntry) => Static<typeof AuditEntryView> = (e) => e) => {
    const found = deps.store ? await deps.store.list(q) : { entries: [], next: null };
    const reply: Static<typeof AuditReply> = { entries: found.entries.map(view), next: found.next };
    return { status: 200, body: reply };
  };

  route(
    app,
    'get',
    '/v1/admin/audit',
    async (call) => {
      requireAdmin(await auth.fromHeader(call.authorization, call.remote));
      return page(auditQuery(call.query, true));
    },
    opts,
  );

  route(
    app,
    'get',
    '/v1/homes/:homeId/audit',
    async (call) => {
      const principal = await auth.fromHeader(call.authorization, call.remote);
      const homeId = parseId(call.params[0], 'homeId');
      requireHome(principal, homeId);
      // a user reads the trail of the home since its last erasure: the id may have been another household's
      return principal.kind === 'admin' ? page({ ...auditQuery(call.query, false), homeId }) : page({ ...auditQuery(call.query, false), homeId, afterErasure: true }, homeView);
    },
    opts,
  );
}

/**
 * An entry as a home's users read it: without `from` (the address of every other user and of
 * support staff is personal data they have no need for, nor which node served it), and a hub
 * move without its detail (the home the hub came from is the previous owner's, as the old home's
 * `removed` event does not name the new one). Who acted (`actor.sub`) stays: that is the trail's point.
 */
export function homeView(entry: AuditEntry): Omit<AuditEntry, 'from'> {
  const { from: _from, ...rest } = entry;
  if (rest.action === 'hub.move') delete rest.detail;
  return rest;
}

const ACTOR_KINDS: ReadonlyArray<AuditActor['kind']> = ['admin', 'user', 'rule', 'system'];

/** The latest instant a `Date` holds (ms): a larger `since` or `until` is no time at all. */
const DATE_MAX_MS = 8_640_000_000_000_000;

/** The filters of a query string; a bad one answers invalid_field naming it. */
export function auditQuery(q: URLSearchParams, withHome: boolean): AuditQuery {
  const bad = (field: string, what: string) => new TierError('invalid_field', `${field}: ${what}`, { field });
  const one = (name: string) => queryOne(q, name);
  const text = (name: string, max: number) => {
    const v = one(name);
    if (v === null) return undefined;
    if (v.length === 0 || v.length > max) throw bad(name, `must be 1..${max} characters`);
    return v;
  };
  // RFC 3339 only, not Date.parse: V8 also takes " 1" (2001), "12/31/2025" and "Tuesday 5"
  const time = (name: string) => {
    const v = one(name);
    if (v === null) return undefined;
    const ms = /^\d{1,16}$/.test(v) ? Number(v) : dateTimeMs(v);
    if (ms === null || ms > DATE_MAX_MS) throw bad(name, `${DATE_TIME_MESSAGE} (a + of its offset sent as %2B), or ms since the epoch`);
    return ms;
  };
  const limit = queryCount(q, 'limit', AUDIT_PAGE_DEFAULT, AUDIT_PAGE_MAX);
  const out: AuditQuery = { limit };
  const homeId = withHome ? text('homeId', 64) : undefined;
  const hubId = text('hubId', 64);
  const actor = text('actor', 256);
  const actorKind = text('actorKind', 16);
  if (actorKind !== undefined && !ACTOR_KINDS.includes(actorKind as AuditActor['kind'])) throw bad('actorKind', `must be one of ${ACTOR_KINDS.join(', ')}`);
  const action = text('action', 64);
  const outcome = text('outcome', 64);
  const cursor = text('cursor', 512);
  const since = time('since');
  const until = time('until');
  if (homeId !== undefined) out.homeId = homeId;
  if (hubId !== undefined) out.hubId = hubId;
  if (actor !== undefined) out.actor = actor;
  if (actorKind !== undefined) out.actorKind = actorKind as AuditActor['kind'];
  if (action !== undefined) out.action = action;
  if (outcome !== undefined) out.outcome = outcome;
  if (cursor !== undefined) out.cursor = cursor;
  if (since !== undefined) out.since = since;
  if (until !== undefined) out.until = until;
  return out;
}
