/**
 * Bodies of the fleet routes (src/api/fleet-routes.ts): hubs listed, changed, moved, deleted and
 * re-keyed, provisioned in batches, and user tokens revoked. Each carries its examples.
 */
import { Type, type TSchema } from '@sinclair/typebox';
import { ID_REGEX, Id } from './common.js';
import { DateTime } from './date-time.js';
import { ProvisionRequest } from './hubs.js';

const nullable = <T extends TSchema>(schema: T, description: string) => Type.Union([schema, Type.Null()], { description });

/** Most hubs one batch may provision. */
export const MAX_BATCH = 1_000;
/** Longest grace period of a rotated-out secret: 90 days. */
export const MAX_GRACE_S = 90 * 86_400;

export const Labels = (description: string) =>
  Type.Record(Type.String({ pattern: ID_REGEX }), Type.String({ maxLength: 128 }), {
    maxProperties: 32,
    // a name that is not an id is refused, not let through as a property the pattern does not cover
    additionalProperties: false,
    description,
    errorMessage: 'must map at most 32 ids ([A-Za-z0-9_-], 1..64) to strings of at most 128 characters',
  });

export const hub7 = {
  hubId: 'hub-7',
  homeId: 'home-42',
  model: 'h2',
  enabled: true,
  labels: { site: 'plant-3' },
  firmware: '2.4.1',
  secretVersion: 2,
  createdAt: '2025-01-31T08:00:00.000Z',
  online: true,
  node: 'node-a',
};

export const FleetHub = Type.Object(
  {
    hubId: Id('the hub'),
    homeId: Id('its home'),
    model: nullable(Type.String(), 'hardware model, null if none'),
    enabled: Type.Boolean({ description: 'false: refused at the handshake, commands answer hub_disabled' }),
    labels: Labels('the operator’s labels (empty when none)'),
    firmware: nullable(Type.String(), 'the firmware version of the hub’s last hello, null if it never said'),
    secretVersion: Type.Integer({ minimum: 1, description: '1 at provisioning, + 1 per rotation' }),
    createdAt: Type.String({ description: 'when it was provisioned, ISO 8601' }),
    online: Type.Boolean({ description: 'a node holds a session of the hub now' }),
    node: nullable(Type.String(), 'the node holding the session, null when offline'),
  },
  { title: 'FleetHub', description: 'A hub as the operator sees it (never its secret)', examples: [hub7] },
);

export const HubListReply = Type.Object(
  {
    hubs: Type.Array(FleetHub, { description: 'in ascending id order' }),
    next: nullable(Type.String(), 'the cursor of the next page (`after=`), null on the last; a page may be short when filters skip many hubs'),
  },
  { title: 'HubListReply', description: 'One page of hubs', examples: [{ hubs: [hub7], next: 'hub-7' }] },
);

export const HomeHub = Type.Object(
  {
    hubId: Id('the hub'),
    model: nullable(Type.String(), 'hardware model, null if none'),
    enabled: Type.Boolean({ description: 'false: the operator disabled it' }),
    online: Type.Boolean({ description: 'connected now' }),
    devices: Type.Integer({ minimum: 0, description: 'devices in its shadow' }),
  },
  { title: 'HomeHub', description: 'A hub of the home, as its users see it' },
);

export const HomeHubsReply = Type.Object(
  {
    homeId: Id('the home'),
    hubs: Type.Array(HomeHub, { description: 'the hubs of the home, in id order, at most 1,000 a page' }),
    next: nullable(Type.String(), 'the cursor of the next page (`after=`), null on the last'),
  },
  { title: 'HomeHubsReply', description: 'The hubs of a home, a page at a time', examples: [{ homeId: 'home-42', hubs: [{ hubId: 'hub-7', model: 'h2', enabled: true, online: true, devices: 8 }], next: null }] },
);

export const HubPatchRequest = Type.Object(
  {
    enabled: Type.Optional(Type.Boolean({ description: 'false closes the hub’s session at once (4006) and refuses it until true again' })),
    model: Type.Optional(nullable(Type.String({ maxLength: 64 }), 'hardware model; null removes it')),
    labels: Type.Optional(nullable(Labels('replaces every label'), 'labels; null removes them all')),
  },
  {
    title: 'HubPatchRequest',
    description: 'Fields to change; those left out stay',
    minProperties: 1,
    errorMessage: { minProperties: 'give at least one of enabled, model, labels' },
    examples: [{ enabled: false }, { model: 'h3', labels: { site: 'plant-3', batch: 'b7' } }],
  },
);

export const MoveRequest = Type.Object(
  {
    homeId: Id('the home the hub moves to'),
    keepDesired: Type.Optional(
      Type.Boolean({
        description:
          'keep the desired state the old home set (default false: it is emptied before the hub reconnects, so the old home’s intents, a door PIN or a name, neither reach the new home’s users nor are sent to the hub in its new home). For a move between homes of one household; reported state, kinds and models are kept either way',
      }),
    ),
  },
  { title: 'MoveRequest', description: 'Where the hub goes', examples: [{ homeId: 'home-43' }, { homeId: 'home-43', keepDesired: true }] },
);

export const Named = Type.Object({ id: Type.String({ description: 'its id' }), name: Type.String({ description: 'its name' }) }, { description: 'a rule or scene' });

export const MoveReply = Type.Object(
  {
    hub: FleetHub,
    from: Id('the home it left'),
    desiredCleared: Type.Integer({ minimum: 0, description: 'devices whose desired state was emptied (0 with `keepDesired`, or when the home did not change)' }),
    rules: Type.Array(Named, { description: 'rules of the old home that name the hub: left unchanged, they no longer reach it' }),
    scenes: Type.Array(Named, { description: 'scenes of the old home that name the hub: left unchanged, they no longer reach it' }),
  },
  {
    title: 'MoveReply',
    description: 'The moved hub and what of the old home still names it',
    examples: [{ hub: { ...hub7, homeId: 'home-43' }, from: 'home-42', desiredCleared: 2, rules: [{ id: 'r1a2b3', name: 'Hall light at night' }], scenes: [] }],
  },
);

export const DeleteHubReply = Type.Object(
  {
    ok: Type.Literal(true, { description: 'deleted' }),
    hubId: Id('the hub'),
    closed: Type.Boolean({ description: 'a live session was told to close' }),
    rules: Type.Array(Named, { description: 'rules of its home that name the hub: left unchanged, they no longer reach it (rewrite or delete them)' }),
    scenes: Type.Array(Named, { description: 'scenes of its home that name the hub: left unchanged, they no longer reach it' }),
  },
  {
    title: 'DeleteHubReply',
    description: "The hub, its shadow and its session are gone (its home's event history is kept), and what of its home still names it",
    examples: [{ ok: true, hubId: 'hub-7', closed: true, rules: [{ id: 'r1a2b3', name: 'Hall light at night' }], scenes: [] }],
  },
);

export const RotateRequest = Type.Object(
  {
    graceS: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_GRACE_S, description: 'how long the old secret keeps working, s (default TIER_SECRET_GRACE_S, 7 days)' })),
    idempotencyKey: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 128,
        description:
          'a key of the caller’s choosing for this rotation (a UUID): a retry with the key of the hub’s last rotation rotates nothing and answers that rotation again (the same secret, version and grace), so a retry after a lost answer keeps the secret the hub holds working. Without one every call rotates, and ends the grace of the secret before',
      }),
    ),
  },
  { title: 'RotateRequest', description: 'A new secret for the hub', examples: [{ graceS: 86_400, idempotencyKey: '7d0e5c1a-2b3f-4c9d-8e7f-6a5b4c3d2e1f' }, { graceS: 86_400 }] },
);

export const RotateReply = Type.Object(
  {
    hubId: Id('the hub'),
    secret: Type.String({ description: 'the new secret: shown only here (and to a retry with the same `idempotencyKey`), send it to the hub (over the air)' }),
    secretVersion: Type.Integer({ minimum: 2, description: 'its version' }),
    previousVersion: Type.Integer({ minimum: 1, description: 'the version of the replaced secret, the one `previousValidUntil` is for; every older secret no longer works' }),
    previousValidUntil: Type.String({ description: 'until when the replaced secret (`previousVersion`) still works, ISO 8601' }),
    repeated: Type.Boolean({ description: 'true: a retry with the last rotation’s `idempotencyKey`, nothing rotated; this is that rotation’s answer again' }),
  },
  {
    title: 'RotateReply',
    description: 'The new secret',
    examples: [{ hubId: 'hub-7', secret: 'Xk2m9Q0v8yXr2c9Tn4Ub7Wd6Ja5Le0Hf', secretVersion: 3, previousVersion: 2, previousValidUntil: '2025-02-07T08:00:00.000Z', repeated: false }],
  },
);

export const BatchItem = Type.Object(
  {
    hubId: ProvisionRequest.properties.hubId,
    homeId: ProvisionRequest.properties.homeId,
    model: ProvisionRequest.properties.model,
    labels: Type.Optional(Labels('labels to start with')),
  },
  { description: 'a hub to provision' },
);

export const BatchRequest = Type.Object(
  { hubs: Type.Array(BatchItem, { minItems: 1, maxItems: MAX_BATCH, description: `1 to ${MAX_BATCH} hubs; each is provisioned or refused on its own` }) },
  { title: 'BatchRequest', description: 'Hubs to provision at once (the factory)', examples: [{ hubs: [{ hubId: 'hub-7', homeId: 'home-42', model: 'h2' }, { hubId: 'hub-8', homeId: 'home-42' }] }] },
);

export const BatchResult = Type.Union(
  [
    Type.Object({ hubId: Type.String({ description: 'the hub' }), ok: Type.Literal(true, { description: 'provisioned' }), secret: Type.String({ description: 'its secret: shown only here' }) }),
    Type.Object({
      hubId: Type.String({ description: 'the hub' }),
      ok: Type.Literal(false, { description: 'refused' }),
      code: Type.String({ description: 'why (`already_exists`, `invalid_field`, …)' }),
      message: Type.String({ description: 'detail' }),
    }),
  ],
  { description: 'one item’s outcome' },
);

export const BatchReply = Type.Object(
  {
    results: Type.Array(BatchResult, { description: 'one per item, in the request’s order' }),
    created: Type.Integer({ minimum: 0, description: 'items provisioned' }),
    failed: Type.Integer({ minimum: 0, description: 'items refused' }),
  },
  {
    title: 'BatchReply',
    description: 'Per item: provisioned with its secret, or refused with a code',
    examples: [{ results: [{ hubId: 'hub-7', ok: true, secret: 'q3Zk0m1v8yXr2c9Tn4Ub7Wd6Ja5Le0Hf' }, { hubId: 'hub-8', ok: false, code: 'already_exists', message: 'hub hub-8 is already provisioned' }], created: 1, failed: 1 }],
  },
);

export const RevokeRequest = Type.Object(
  {
    jti: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'the one token to revoke (its `jti` claim)' })),
    sub: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'revoke every token of this user issued before `before`' })),
    home: Type.Optional(Id('take this home from every token issued before `before`: a token keeps its other homes, and one left with none is refused', ['home-42'])),
    before: Type.Optional(DateTime('with `sub` or `home`: tokens issued at or before this instant (default now), within 30 days of now; a later one also covers the tokens issued until then')),
  },
  {
    title: 'RevokeRequest',
    description: 'One token by `jti`, every token of a `sub` issued before a time, or a `home` taken from every token issued before a time',
    minProperties: 1,
    errorMessage: { minProperties: 'give jti, sub or home (sub and home with an optional before)' },
    // one with `before` is made when the document is served (src/api/operations.ts): it must lie within 30 days of then
    examples: [{ jti: '0f9c2a7e-1d4b-4c8a-9b1e-2f3a4b5c6d7e' }, { sub: 'alice' }, { home: 'home-42' }],
  },
);

export const RevokeReply = Type.Object(
  {
    ok: Type.Literal(true, { description: 'every node refuses the tokens from now on (within a second)' }),
    until: Type.String({ description: 'the revocation is kept until then (the tokens would have expired by then anyway), ISO 8601' }),
  },
  { title: 'RevokeReply', description: 'The revocation', examples: [{ ok: true, until: '2025-03-02T08:00:00.000Z' }] },
);

export const RevocationView = Type.Object(
  {
    jti: Type.Optional(Type.String({ description: 'the one token revoked' })),
    sub: Type.Optional(Type.String({ description: 'the user whose tokens issued until `before` are revoked' })),
    home: Type.Optional(Id('the home taken from the tokens issued until `before`')),
    before: Type.Optional(Type.String({ description: 'with `sub` or `home`: tokens issued at or before this instant are covered, ISO 8601' })),
    until: Type.String({ description: 'kept until then (the tokens would have expired by then anyway), ISO 8601' }),
  },
  { title: 'RevocationView', description: 'A revocation in force', additionalProperties: false },
);

export const RevocationListReply = Type.Object(
  {
    revocations: Type.Array(RevocationView, { description: 'those matching the query, the longest kept first, at most `limit`' }),
    total: Type.Integer({ minimum: 0, description: 'how many match the query' }),
    next: nullable(Type.String(), 'the cursor of the next page (`after=`), null on the last'),
  },
  {
    title: 'RevocationListReply',
    description: 'Revocations in force',
    examples: [{ revocations: [{ home: 'home-42', before: '2025-01-31T08:00:00.000Z', until: '2025-03-02T08:00:00.000Z' }, { jti: '0f9c2a7e-1d4b-4c8a-9b1e-2f3a4b5c6d7e', until: '2025-03-01T10:00:00.000Z' }], total: 2, next: null }],
  },
);
