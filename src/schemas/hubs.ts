/**
 * Bodies of the hub and admin routes of the HTTP API (src/api/routes.ts). Unknown keys in a
 * request are ignored, as on the wire. Each body carries its examples; a test checks every
 * example against its schema and the API document shows them.
 */
import { Type, type TSchema } from '@sinclair/typebox';
import { command } from './command.js';
import { Attrs, DesiredAttrs, ID_REGEX, Id } from './common.js';

/** @param max the node's largest command timeout (ms) */
export const CommandRequest = (max: number) =>
  command({}, max, {
    strict: false,
    title: 'CommandRequest',
    description: 'A device command: `set` attributes, or call a `method` with `params`; never both',
    examples: [{ set: { on: true, level: 80 } }, { method: 'identify', params: { times: 3 }, timeoutMs: 5_000 }],
  });

export const CommandReply = Type.Object(
  {
    ok: Type.Literal(true, { description: 'the hub ran the command' }),
    result: Type.Unknown({ description: 'the hub’s answer, as the hub sent it' }),
  },
  { title: 'CommandReply', description: 'The hub’s answer to a command', examples: [{ ok: true, result: { on: true, level: 80 } }] },
);

const nullable = <T extends TSchema>(schema: T, description: string) => Type.Union([schema, Type.Null()], { description });

export const HubStatus = Type.Object(
  {
    hubId: Id('the hub'),
    homeId: Id('the home the hub is provisioned in'),
    model: nullable(Type.String(), 'hardware model given at provisioning, null if none'),
    enabled: Type.Boolean({ description: 'false: the hub is refused at the handshake' }),
    online: Type.Boolean({ description: 'a node holds a session of the hub now' }),
    node: nullable(Type.String(), 'the node holding the session, null when offline'),
    since: nullable(Type.String(), 'when the session started, ISO 8601 (`2025-01-31T08:00:00.000Z`); null when offline'),
    epoch: nullable(Type.Integer(), 'the session’s epoch: grows with every new session of the hub; null when offline'),
  },
  {
    title: 'HubStatus',
    description: 'Whether and where a hub is connected',
    examples: [{ hubId: 'hub-7', homeId: 'home-42', model: 'h2', enabled: true, online: true, node: 'node-a', since: '2025-01-31T08:00:00.000Z', epoch: 3 }],
  },
);

export const lamp = { kind: 'switch.dimmer', reported: { on: true, level: 80 }, reportedVersion: 12, reportedAt: 1_738_310_400_000, desired: { level: 80 }, desiredVersion: 2 };

export const DeviceShadow = Type.Object(
  {
    kind: Type.Optional(Type.String({ description: 'device kind from the hub’s device list (`sensor.door`, `switch`, ...), when known' })),
    model: Type.Optional(Type.String({ description: 'device model from the hub’s device list, when known' })),
    reported: Attrs('state the hub reported last'),
    reportedVersion: Type.Integer({ minimum: 0, description: 'grows by one with every change of `reported`' }),
    reportedAt: Type.Integer({ minimum: 0, description: 'ms since the Unix epoch of the last report' }),
    desired: Attrs('state the device should have; sent to the hub as a delta'),
    desiredVersion: Type.Integer({ minimum: 0, description: 'grows by one with every change of `desired`' }),
  },
  { title: 'DeviceShadow', description: 'Reported and desired state of one device', examples: [lamp] },
);

export const ShadowReply = Type.Object(
  {
    hubId: Id('the hub'),
    homeId: Id('its home'),
    devices: Type.Record(Type.String({ pattern: ID_REGEX }), DeviceShadow, { description: 'device id → its shadow' }),
  },
  { title: 'ShadowReply', description: 'Every device of a hub', examples: [{ hubId: 'hub-7', homeId: 'home-42', devices: { 'lamp-1': lamp } }] },
);

export const DesiredRequest = Type.Object(
  { desired: DesiredAttrs('attributes to set in the desired state; null removes the key. Beyond 64 of them or a string beyond 1024 characters: `422 limit_exceeded`') },
  { title: 'DesiredRequest', description: 'A change of desired state', examples: [{ desired: { level: 40, scene: null } }] },
);

export const DesiredReply = Type.Object(
  {
    ok: Type.Literal(true, { description: 'stored' }),
    hubId: Id('the hub'),
    deviceId: Id('the device'),
    device: DeviceShadow,
  },
  { title: 'DesiredReply', description: 'The device’s shadow after the change', examples: [{ ok: true, hubId: 'hub-7', deviceId: 'lamp-1', device: lamp }] },
);

export const ProvisionRequest = Type.Object(
  {
    hubId: Id('the new hub’s id'),
    homeId: Id('the home it belongs to'),
    model: Type.Optional(Type.String({ maxLength: 64, description: 'hardware model' })),
  },
  { title: 'ProvisionRequest', description: 'A hub to provision', examples: [{ hubId: 'hub-7', homeId: 'home-42', model: 'h2' }] },
);

export const ProvisionReply = Type.Object(
  {
    hubId: Id('the hub'),
    homeId: Id('its home'),
    model: nullable(Type.String(), 'hardware model, null if none'),
    secret: Type.String({ description: 'the hub’s secret for the handshake signature: returned only here, store it on the hub' }),
  },
  { title: 'ProvisionReply', description: 'The provisioned hub with its secret', examples: [{ hubId: 'hub-7', homeId: 'home-42', model: 'h2', secret: 'q3Zk0m1v8yXr2c9Tn4Ub7Wd6Ja5Le0Hf' }] },
);

/** Longest user token: 30 days. */
export const MAX_TTL_S = 30 * 86_400;

export const TokenRequest = Type.Object(
  {
    sub: Type.String({ minLength: 1, maxLength: 128, description: 'the user (JWT subject)' }),
    homes: Type.Array(Id('a home'), { description: 'homes the user may see and command' }),
    ttlS: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_TTL_S, description: 'lifetime, s (default 3600)' })),
  },
  { title: 'TokenRequest', description: 'A user token to mint', examples: [{ sub: 'alice', homes: ['home-42'], ttlS: 86_400 }] },
);

export const TokenReply = Type.Object(
  { token: Type.String({ description: 'an HS256 JWT with claims `sub`, `homes` and `exp`' }) },
  { title: 'TokenReply', description: 'The minted token', examples: [{ token: 'eyJhbGciOiJIUzI1NiJ9.eyJob21lcyI6WyJob21lLTQyIl0sInN1YiI6ImFsaWNlIn0.c2lnbmF0dXJl' }] },
);
