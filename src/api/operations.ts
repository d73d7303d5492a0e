/**
 * What the API document says of each route, keyed by `method /pattern` as registered: words,
 * the request and response schemas the handlers use, and the error codes each may answer with
 * besides authentication and a bad id (those the document adds itself).
 */
import { Type, type TSchema } from '@sinclair/typebox';
import type { ErrorCode } from '../../proto/errors.js';
import { CommandReply, CommandRequest, DesiredReply, DesiredRequest, HubStatus, ProvisionReply, ProvisionRequest, ShadowReply, TokenReply, TokenRequest } from '../schemas/hubs.js';
import { BatchReply, BatchRequest, DeleteHubReply, FleetHub, HomeHubsReply, HubListReply, HubPatchRequest, MoveReply, MoveRequest, RevocationListReply, RevokeReply, RevokeRequest, RotateReply, RotateRequest } from '../schemas/fleet.js';
import { Deleted, DryRunReply, RuleList, RuleReply, RuleSaved, SceneDeleted, SceneList, SceneReply, SceneRunReply, SettingsReply } from '../schemas/rules-replies.js';
import { RuleRequest, SceneRequest, Settings, TestRequest } from '../schemas/rules.js';
import { EraseHomeReply, HomeExport } from '../schemas/homes.js';
import { AuditReply } from '../schemas/audit.js';
import { ID_REGEX } from '../schemas/common.js';
import { AUDIT_PAGE_MAX } from '../ports/audit/audit.js';
import type { TierError } from '../errors.js';
import { auditQuery } from './audit-routes.js';
import { alreadyProvisioned } from './fleet.js';
import { homeHubsQuery, listQuery, PAGE_DEFAULT, PAGE_MAX } from './fleet-routes.js';
import { REVOCATIONS_PAGE_DEFAULT, REVOCATIONS_PAGE_MAX, revocationsQuery } from './revocation-list.js';

/** One parameter of a query string, as the document declares it ("Try it out" sends it). */
export interface QueryParam {
  name: string;
  description: string;
  schema: Record<string, unknown>;
}

export interface Operation {
  summary: string;
  description?: string;
  tag: 'hubs' | 'admin' | 'rules' | 'scenes' | 'homes' | 'meta';
  /**
   * The body's schema and a body it refuses (its answer is the document's 400 example). `examples`:
   * instead of the schema's, made when the document is served (`nowMs`), for bodies the server
   * checks against the clock.
   */
  request?: { schema: TSchema; bad: unknown; optional?: boolean; examples?: (nowMs: number) => unknown[] };
  /** the query string's parameters, a query it refuses and the route's own reading of it (the 400 example) */
  query?: { params: QueryParam[]; bad: string; parse: (q: URLSearchParams) => unknown };
  /** the answer of a code where the route's own words say more than the code's (what to do next) */
  errorAnswers?: Partial<Record<ErrorCode, TierError>>;
  ok: { status: 200 | 201; description: string; schema: TSchema } | { status: 200; description: string; html: string } | { status: 200; description: string; script: string };
  errors?: ErrorCode[];
  /** no bearer token needed */
  open?: boolean;
}

/** The document's own schema in the document: an object whose structure is OpenAPI 3.1's. */
const OpenApiDocument = Type.Object(
  { openapi: Type.Literal('3.1.0', { description: 'the OpenAPI version' }) },
  { additionalProperties: true, title: 'OpenApiDocument', description: 'This document', examples: [{ openapi: '3.1.0', info: { title: 'hubtier HTTP API', version: '1.0.0' }, paths: {} }] },
);

const text = (max: number) => ({ type: 'string', minLength: 1, maxLength: max });

/** `GET /v1/admin/hubs` (src/api/fleet-routes.ts listQuery). */
const HUB_QUERY: QueryParam[] = [
  { name: 'limit', description: `hubs per page (default ${PAGE_DEFAULT})`, schema: { type: 'integer', minimum: 1, maximum: PAGE_MAX, default: PAGE_DEFAULT } },
  { name: 'after', description: 'the previous page’s `next`: hubs with a larger id', schema: { type: 'string', pattern: ID_REGEX } },
  { name: 'prefix', description: 'hubs whose id starts with this', schema: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' } },
  { name: 'home', description: 'hubs of this home', schema: { type: 'string', pattern: ID_REGEX } },
  { name: 'model', description: 'hubs of this hardware model', schema: text(64) },
  { name: 'firmware', description: 'hubs whose last hello named this firmware', schema: text(64) },
  { name: 'enabled', description: 'enabled (true) or disabled (false) hubs', schema: { type: 'boolean' } },
  { name: 'online', description: 'hubs connected now (true) or not (false)', schema: { type: 'boolean' } },
  { name: 'node', description: 'hubs connected to this node', schema: text(64) },
];

const TIME = { type: 'string', description: 'an RFC 3339 date-time (a `+` of its offset sent as %2B) or ms since the epoch' };

/** The audit routes (src/api/audit-routes.ts auditQuery); each at most once. */
const auditParams = (withHome: boolean): QueryParam[] => [
  ...(withHome ? [{ name: 'homeId', description: 'entries of this home', schema: text(64) }] : []),
  { name: 'hubId', description: 'entries on this hub', schema: text(64) },
  { name: 'actor', description: 'entries by this actor: a user’s `sub`, `admin`, or a rule id', schema: text(256) },
  { name: 'actorKind', description: 'entries by actors of this kind (with `actor`: a user whose `sub` is `admin` apart from the admin token)', schema: { type: 'string', enum: ['admin', 'user', 'rule', 'system'] } },
  { name: 'action', description: 'entries of this action, or of every action it is the prefix of (`rule.`)', schema: text(64) },
  { name: 'outcome', description: '`ok`, an error code, or `error` for every failure', schema: text(64) },
  { name: 'since', description: 'entries at or after this time', schema: TIME },
  { name: 'until', description: 'entries at or before this time', schema: TIME },
  { name: 'limit', description: 'entries per page (default 100)', schema: { type: 'integer', minimum: 1, maximum: AUDIT_PAGE_MAX, default: 100 } },
  { name: 'cursor', description: 'the previous page’s `next`', schema: text(512) },
];

/** Revocation examples: `before` must lie within 30 days of the moment the request is made. */
const revokeExamples = (nowMs: number) => [
  { jti: '0f9c2a7e-1d4b-4c8a-9b1e-2f3a4b5c6d7e' },
  { sub: 'alice', before: new Date(Math.floor(nowMs / 1000) * 1000 - 3_600_000).toISOString() },
  { home: 'home-42' },
];

/** `draining`: the node's bus closed under the request (it is shutting down) */
const COMMAND_ERRORS: ErrorCode[] = ['hub_disabled', 'hub_offline', 'command_timeout', 'unknown_device', 'command_failed', 'busy', 'session_closed', 'draining', 'not_found', 'frame_too_large'];

/** @param limits the node's limits, which the schemas state */
export function operations(limits: { commandTimeoutMaxMs: number }): Record<string, Operation> {
  const max = limits.commandTimeoutMaxMs;
  const rule = { schema: RuleRequest(max), bad: { name: 'Hall light', triggers: [], actions: [{ type: 'scene', scene: 's1' }] } };
  const scene = { schema: SceneRequest(max), bad: { name: 'Movie', commands: [{ hub: 'hub-7', device: 'tv', set: { on: true }, method: 'toggle' }] } };
  const ruleReply = { status: 200 as const, description: 'the rule', schema: RuleReply(max) };
  const ruleSaved = { status: 200 as const, description: 'the rule, with warnings about its state triggers', schema: RuleSaved(max) };
  const sceneReply = { status: 200 as const, description: 'the scene', schema: SceneReply(max) };
  return {
    'post /v1/hubs/:hubId/devices/:deviceId/commands': {
      summary: 'Run a command on a device and return the hub’s answer',
      description: 'An offline hub is answered at once (`hub_offline`); a hub that does not answer within `timeoutMs` is `command_timeout`. A command whose frame to the hub would pass the hub’s frame max (`TIER_MAX_FRAME_BYTES`, 16 KiB; msgpack, so JSON floats grow to 9 bytes) is refused `413 frame_too_large` and not sent: a `set` is not split across frames (use desired state for that). `params` beyond the hub protocol’s limits (keys ≤ 64 characters, strings ≤ 1024, at any depth) are `400 invalid_field` naming the field, not sent. A hub that refuses the command (a result with `ok: false`, or an error frame whose `ref` is its id) ends it at once: `502 command_failed` with the hub’s code in `hubCode`, and `hubTemporary: true` when the hub’s error frame said it was temporary (busy: the same command may succeed later).',
      tag: 'hubs',
      request: { schema: CommandRequest(max), bad: { set: { on: [1] } } },
      ok: { status: 200, description: 'the hub’s answer', schema: CommandReply },
      errors: COMMAND_ERRORS,
    },
    'get /v1/hubs/:hubId': { summary: 'Whether and where a hub is connected', tag: 'hubs', ok: { status: 200, description: 'the hub', schema: HubStatus }, errors: ['not_found'] },
    'get /v1/hubs/:hubId/shadow': {
      summary: 'Reported and desired state of every device of a hub',
      description:
        'A home’s shadow reads may take 100 ms of the node’s time a second (reading and writing them; a hub at its limits, 512 devices, is about 6 ms a read): past it they answer `429 rate_limited` with `Retry-After: 1` until the budget refills. A home whose reads cost less than 2 ms each is never counted.',
      tag: 'hubs',
      ok: { status: 200, description: 'the shadow', schema: ShadowReply },
      errors: ['not_found', 'rate_limited'],
    },
    'put /v1/hubs/:hubId/devices/:deviceId/desired': {
      summary: 'Set desired state (null removes a key); an online hub gets the delta at once',
      description:
        'Held to the hub’s limits (PROTOCOL.md §1): at most 64 attributes in one change (nulls included) and on the device, strings of at most 1024 characters, 512 devices and 128 KiB of desired state per hub (the defaults). Beyond one, `422 limit_exceeded` naming the limit and the field; nothing of the change is stored. A malformed body (a value that is not a string, finite number, boolean or null; a bad attribute name) is `400 invalid_field`. A hub moved to another home while the change was written: `409 hub_moved`, the change undone; deleted meanwhile: `404 not_found`.',
      tag: 'hubs',
      request: { schema: DesiredRequest, bad: { desired: { level: [40] } } },
      ok: { status: 200, description: 'the device’s shadow after the change', schema: DesiredReply },
      errors: ['not_found', 'limit_exceeded', 'hub_moved'],
    },
    'post /v1/admin/hubs': {
      summary: 'Provision a hub; its secret is returned only here',
      tag: 'admin',
      request: { schema: ProvisionRequest, bad: { hubId: 'hub 7', homeId: 'home-42' } },
      description: 'The secret is in this answer only. A retry after a lost answer is refused `409 already_exists`: get a secret for the hub with `POST /v1/admin/hubs/{hubId}/secret` (`graceS: 0` when the hub never received the first).',
      ok: { status: 201, description: 'provisioned', schema: ProvisionReply },
      errors: ['already_exists'],
      errorAnswers: { already_exists: alreadyProvisioned('hub-7') },
    },
    'post /v1/admin/hubs:batch': {
      summary: 'Provision up to 1,000 hubs at once; each item provisioned or refused on its own',
      description: 'Per item: `ok: true` with the secret (shown only here), or `ok: false` with the code (`already_exists`, also for an id given twice; for a hub provisioned by an earlier call whose answer was lost, get its secret with `POST /v1/admin/hubs/{hubId}/secret`). A refused item changes nothing; the others are provisioned. A body that does not validate is refused whole. `npm run fleet -- import FILE` does the same from a CSV or JSON-lines file.',
      tag: 'admin',
      request: { schema: BatchRequest, bad: { hubs: [{ hubId: 'hub 7', homeId: 'home-42' }] } },
      ok: { status: 200, description: 'one result per item', schema: BatchReply },
    },
    'get /v1/admin/hubs': {
      summary: 'List and search hubs, a page at a time',
      description:
        'Query: `limit` (1-1000, default 100), `after` (the previous page’s `next`), `prefix` (of the hub id), `home`, `model`, `firmware`, `enabled`, `online`, `node`; each at most once, a bad or repeated one answers 400 `invalid_field` naming it. Hubs come in id order. One call examines at most 5,000 hubs, so a page may be short (even empty) with a `next` when the filters skip many: keep following `next` until it is null.',
      tag: 'admin',
      query: { params: HUB_QUERY, bad: 'limit=0', parse: listQuery },
      ok: { status: 200, description: 'a page', schema: HubListReply },
    },
    'get /v1/admin/hubs/:hubId': { summary: 'One hub as the operator sees it', tag: 'admin', ok: { status: 200, description: 'the hub', schema: FleetHub }, errors: ['not_found'] },
    'patch /v1/admin/hubs/:hubId': {
      summary: 'Enable or disable a hub, set its model or labels',
      description: 'Disabling closes the hub’s session at once on whichever node holds it (bye `hub_disabled`, close 4006); its handshakes and commands are refused with `hub_disabled` until it is enabled again.',
      tag: 'admin',
      request: { schema: HubPatchRequest, bad: {} },
      ok: { status: 200, description: 'the hub after the change', schema: FleetHub },
      errors: ['not_found'],
    },
    'post /v1/admin/hubs/:hubId/move': {
      summary: 'Move a hub to another home',
      description:
        'The old home’s users lose it and the new home’s gain it at once, on every node. The desired state the old home set is emptied first (unless `keepDesired`: a resold hub must not hand its old owner’s intents to the new one); reported state, kinds and models stay. Its session is told to reconnect (close 4008) and comes back in the new home, with nothing of the old home’s to apply. Once the session let go (at most 2 s), the old home’s apps get the hub’s `removed` event and the new home’s a `devices` event with its devices. Rules and scenes of the old home that name the hub are listed in the answer and left unchanged (they no longer reach it).',
      tag: 'admin',
      request: { schema: MoveRequest, bad: { homeId: 'home 43' } },
      ok: { status: 200, description: 'the moved hub and what still names it', schema: MoveReply },
      errors: ['not_found'],
    },
    'delete /v1/admin/hubs/:hubId': {
      summary: 'Delete a hub: its record, its shadow, its session',
      description: 'The session is closed at once wherever it is (close 4006); the hub’s handshakes answer `bad_signature` afterwards (as an id never provisioned: ids cannot be probed). The home’s stored events go too; its apps then get the hub’s `removed` event.',
      tag: 'admin',
      ok: { status: 200, description: 'deleted', schema: DeleteHubReply },
      errors: ['not_found'],
    },
    'post /v1/admin/hubs/:hubId/secret': {
      summary: 'Rotate a hub’s secret; the old one keeps working for a grace period',
      description:
        'The new secret is shown only in this answer; the replaced one (`previousVersion`) still opens sessions until `previousValidUntil` (so the hub can be updated over the air), then stops. One previous secret is kept: a second rotation ends the first one’s grace at once. So retry a rotation whose answer was lost with the same `idempotencyKey`: while no other rotation came between, it rotates nothing and answers the first rotation again (`repeated: true`), and the secret the hub holds keeps its grace. A retry without a key is a second rotation.',
      tag: 'admin',
      request: { schema: RotateRequest, bad: { graceS: -1 }, optional: true },
      ok: { status: 200, description: 'the new secret', schema: RotateReply },
      errors: ['not_found'],
    },
    'get /v1/homes/:homeId/export': {
      summary: 'Everything kept of a home, in one document (a copy for its owner)',
      description:
        'For the home’s users (and the admin): its settings, every hub (never a secret) with every device’s shadow, its rules and scenes as stored, and the events its history still keeps, oldest first (`TIER_HISTORY_SIZE`, `TIER_HISTORY_MAX_AGE_S`). Its audit trail is `GET /v1/homes/{homeId}/audit`. An unknown home answers an empty document. A node builds at most two exports at once (each is held whole in memory): a third answers `503 busy`, to be tried again, as does one while the node holds `TIER_HTTP_PENDING_BYTES` of large answers for clients that have not read them. The document is built and serialised in slices of a few milliseconds (the node goes on serving hubs and apps between them), and a home whose export took more than 50 ms of the event loop is exported again only after nine times that: sooner answers `429 rate_limited` with `Retry-After` (one home’s exports take at most a tenth of a node). Recorded in the audit trail (`home.export`).',
      tag: 'homes',
      ok: { status: 200, description: 'the home’s data', schema: HomeExport(max) },
      errors: ['unavailable', 'busy', 'rate_limited'],
    },
    'delete /v1/admin/homes/:homeId': {
      summary: 'Erase a home: its rules, scenes, settings, hubs and stored events',
      description:
        'First the home is taken from every user token issued until now, on every node, as `POST /v1/admin/tokens/revoke` with `home` does: nobody adds to the home meanwhile, each token keeps its other homes (one left with none is refused), and the app sockets of those tokens are closed (4007 `token_revoked`); a token issued in a later second grants the home again. Then rules and scenes go (none runs while the hubs go), the settings return to the defaults, every hub is deleted as `DELETE /v1/admin/hubs/{hubId}` deletes one (its session closed at once, close 4006; its record and shadow gone; the apps still subscribed, the admin’s, get its `removed` event), then the home’s stored events (in cluster mode its entries in the services’ stream `<prefix>events` too, followed by an `erased` entry for services: see the AsyncAPI document), and last its push notifications (queued, waiting for a retry, failed, and in cluster mode those kept an hour as delivered; one being delivered at that moment is left to its outcome). The audit trail stays (it records who did what, and ages out with `TIER_AUDIT_MAX_AGE_DAYS`). Nothing left answers zeros, so an erasure may be sent again. Recorded in the audit trail (`home.erase`). With 1,000,000 revocations in force and none of the home, the first step is refused `422 limit_exceeded` and nothing is erased (see `POST /v1/admin/tokens/revoke`).',
      tag: 'admin',
      ok: { status: 200, description: 'erased', schema: EraseHomeReply },
      errors: ['limit_exceeded'],
    },
    'get /v1/homes/:homeId/hubs': {
      summary: 'The hubs of a home, with online state and device counts',
      description: 'For the home’s users (and the admin). 1,000 hubs a page, in id order: follow `next` (as `after`) until it is null.',
      tag: 'homes',
      query: { params: [HUB_QUERY.find((p) => p.name === 'after')!], bad: 'after=a%20b', parse: homeHubsQuery },
      ok: { status: 200, description: 'the hubs', schema: HomeHubsReply },
    },
    'post /v1/admin/tokens/revoke': {
      summary: 'Revoke user tokens: one by `jti`, every token of a `sub` issued before a time, or a `home` taken from every token issued before a time',
      description: 'Takes effect on every node within a second: requests with the tokens are refused (`unauthorized`) and app sockets open with them are closed (4007). With `home`, the tokens keep their other homes: requests for the home answer `forbidden`, a token left with no home is refused, and the app sockets of the tokens that named the home are closed so the app reconnects with the homes it keeps (a user removed from a shared home; a home erased). At most 1,000,000 revocations are in force: past that, one that would add an entry is `422 limit_exceeded` (never is a live one dropped to make room).',
      tag: 'admin',
      request: { schema: RevokeRequest, bad: { sub: 'alice', before: '12/31/2025' }, examples: revokeExamples },
      ok: { status: 200, description: 'revoked', schema: RevokeReply },
      errors: ['limit_exceeded'],
    },
    'get /v1/admin/tokens/revocations': {
      summary: 'The token revocations in force, the longest kept first',
      description:
        'What `POST /v1/admin/tokens/revoke` stored and every node enforces: one token (`jti`), a user’s tokens issued until `before` (`sub`), or a home taken from the tokens issued until `before` (`home`, also made by every home erasure), each kept `until` the tokens it covers would have expired. Query: `jti`, `sub` or `home` to find those of one token, user or home (a user’s `403` on a home it had: look for the home), `limit` (1-1000, default 100), `after` (the previous page’s `next`: follow it until it is null to list every match); each at most once; `total` counts every match.',
      tag: 'admin',
      query: {
        params: [
          { name: 'jti', description: 'the revocation of this token', schema: text(128) },
          { name: 'sub', description: 'revocations of this user’s tokens', schema: text(128) },
          { name: 'home', description: 'revocations of this home', schema: { type: 'string', pattern: ID_REGEX } },
          { name: 'limit', description: `revocations per answer (default ${REVOCATIONS_PAGE_DEFAULT})`, schema: { type: 'integer', minimum: 1, maximum: REVOCATIONS_PAGE_MAX, default: REVOCATIONS_PAGE_DEFAULT } },
          { name: 'after', description: 'the previous page’s `next`: the revocations after its last', schema: text(512) },
        ],
        bad: 'home=a%2Fb',
        parse: revocationsQuery,
      },
      ok: { status: 200, description: 'the revocations', schema: RevocationListReply },
    },
    'get /v1/admin/audit': {
      summary: 'The audit trail of every home: control actions, newest first, a page at a time',
      description:
        'Every command, desired change, rule and scene edit and run, settings change, hub provisioning and administration, token issue and revocation, with who (`sub`, `admin` or the rule), from where, on what, and the outcome; a request refused for its token is not recorded. Query: `homeId`, `hubId`, `actor` (a `sub`, `admin`, or a rule id), `actorKind` (`admin`, `user`, `rule` or `system`: `actor=admin&actorKind=admin` is the admin token alone), `action` (or its prefix: `rule.`), `outcome` (`ok`, an error code, or `error` for every failure), `since` and `until` (an RFC 3339 date-time such as `2025-01-31T08:00:00Z`, a `+` of its offset sent as `%2B`, or ms since the epoch), `limit` (1-500, default 100), `cursor` (the previous page’s `next`); each at most once, a bad or repeated one answers 400 `invalid_field` naming it. Past the count, the oldest entries of the home and actor with the most go first. One call examines at most 5,000 entries, so a page may be short (even empty) with a `next`: keep following `next` until it is null. Kept `TIER_AUDIT_MAX_AGE_DAYS` (90) days and at most `TIER_AUDIT_MAX_ENTRIES` (1,000,000) entries; every entry is also published on the NATS subject `audit.events`.',
      tag: 'admin',
      query: { params: auditParams(true), bad: 'limit=0', parse: (q) => auditQuery(q, true) },
      ok: { status: 200, description: 'a page', schema: AuditReply },
    },
    'get /v1/homes/:homeId/audit': {
      summary: 'The audit trail of a home, for its users',
      description:
        'As `GET /v1/admin/audit`, limited to the actions on this home (the same query but `homeId`). For the home’s users and the admin. A home’s users get each entry without `from` (the addresses of the home’s other users and of support staff), and a `hub.move` without `detail` (the home the hub came from); who acted stays. The admin gets every field.',
      tag: 'homes',
      query: { params: auditParams(false), bad: 'limit=0', parse: (q) => auditQuery(q, false) },
      ok: { status: 200, description: 'a page', schema: AuditReply },
    },
    'post /v1/admin/tokens': {
      summary: 'Mint a user JWT for homes',
      tag: 'admin',
      request: { schema: TokenRequest, bad: { sub: 'alice', homes: ['home-42'], ttlS: 0 } },
      ok: { status: 201, description: 'the token', schema: TokenReply },
    },
    'get /v1/homes/:homeId/settings': { summary: 'The home’s time zone', tag: 'homes', ok: { status: 200, description: 'the settings', schema: SettingsReply } },
    'put /v1/homes/:homeId/settings': {
      summary: 'Set the home’s IANA time zone',
      tag: 'homes',
      request: { schema: Settings, bad: { timeZone: '' } },
      ok: { status: 200, description: 'the settings', schema: SettingsReply },
    },
    'get /v1/homes/:homeId/rules': { summary: 'List the home’s rules with status and counters', tag: 'rules', ok: { status: 200, description: 'the rules', schema: RuleList(max) }, errors: ['busy'] },
    'post /v1/homes/:homeId/rules': {
      summary: 'Create a rule',
      description: 'Every hub the rule names must belong to the home, every scene it runs must exist in it.',
      tag: 'rules',
      request: rule,
      ok: { ...ruleSaved, status: 201, description: 'created, with warnings about its state triggers' },
      errors: ['limit_exceeded'],
    },
    'get /v1/homes/:homeId/rules/:ruleId': { summary: 'Read a rule with its counters', tag: 'rules', ok: ruleReply, errors: ['not_found'] },
    'put /v1/homes/:homeId/rules/:ruleId': { summary: 'Replace a rule (version + 1)', tag: 'rules', request: rule, ok: ruleSaved, errors: ['not_found'] },
    'delete /v1/homes/:homeId/rules/:ruleId': { summary: 'Delete a rule', tag: 'rules', ok: { status: 200, description: 'deleted', schema: Deleted }, errors: ['not_found'] },
    'post /v1/homes/:homeId/rules/:ruleId/enable': { summary: 'Enable a rule (lifts a loop suspension)', tag: 'rules', ok: ruleReply, errors: ['not_found'] },
    'post /v1/homes/:homeId/rules/:ruleId/disable': { summary: 'Disable a rule (cancels a waiting run)', tag: 'rules', ok: ruleReply, errors: ['not_found'] },
    'post /v1/homes/:homeId/rules/:ruleId/test': {
      summary: 'Dry run against current state: what the rule would do, doing nothing',
      tag: 'rules',
      request: { schema: TestRequest, bad: { event: { kind: 'sunrise' } }, optional: true },
      ok: { status: 200, description: 'the report', schema: DryRunReply },
      // draining: the rule pool closed (the node is shutting down), src/rules/dry-run.ts
      errors: ['not_found', 'busy', 'rule_timeout', 'draining', 'rate_limited'],
    },
    'get /v1/homes/:homeId/scenes': { summary: 'List the home’s scenes', tag: 'scenes', ok: { status: 200, description: 'the scenes', schema: SceneList(max) }, errors: ['busy'] },
    'post /v1/homes/:homeId/scenes': { summary: 'Create a scene', tag: 'scenes', request: scene, ok: { ...sceneReply, status: 201, description: 'created' }, errors: ['limit_exceeded'] },
    'get /v1/homes/:homeId/scenes/:sceneId': { summary: 'Read a scene', tag: 'scenes', ok: sceneReply, errors: ['not_found'] },
    'put /v1/homes/:homeId/scenes/:sceneId': { summary: 'Replace a scene', tag: 'scenes', request: scene, ok: sceneReply, errors: ['not_found'] },
    'delete /v1/homes/:homeId/scenes/:sceneId': { summary: 'Delete a scene', tag: 'scenes', ok: { status: 200, description: 'deleted; the rules that run it are listed, left unchanged', schema: SceneDeleted }, errors: ['not_found'] },
    'post /v1/homes/:homeId/scenes/:sceneId/enable': { summary: 'Enable a scene', tag: 'scenes', ok: sceneReply, errors: ['not_found'] },
    'post /v1/homes/:homeId/scenes/:sceneId/disable': { summary: 'Disable a scene', tag: 'scenes', ok: sceneReply, errors: ['not_found'] },
    'post /v1/homes/:homeId/scenes/:sceneId/run': {
      summary: 'Run a scene now',
      description: 'A disabled scene is refused (`invalid_field` naming `enabled`).',
      tag: 'scenes',
      ok: { status: 200, description: 'one result per command', schema: SceneRunReply },
      errors: ['not_found'],
    },
    'get /v1/openapi.json': { summary: 'This document', tag: 'meta', ok: { status: 200, description: 'OpenAPI 3.1', schema: OpenApiDocument }, open: true },
    'get /': {
      summary: 'The demo console: live events of a home and commands, in a browser',
      tag: 'meta',
      ok: { status: 200, description: 'the page', html: '<!doctype html><title>hubtier console</title>…' },
      open: true,
    },
    'get /console.js': {
      summary: 'The demo console’s script (a file of its own: the page’s CSP refuses inline scripts)',
      tag: 'meta',
      ok: { status: 200, description: 'the module', script: "import { HubtierClient } from './client.js';…" },
      open: true,
    },
    'get /client.js': {
      summary: 'The app client library (reconnects, recovers missed events, commands as promises) as one ES module for browsers',
      tag: 'meta',
      ok: { status: 200, description: 'the module', script: 'export { HubtierClient, ClientError, … };' },
      open: true,
    },
  };
}
