/**
 * NATS subject names and their payloads (plain msgpack maps). Part of the protocol: other services
 * publish and subscribe on them, with the permissions of their NATS user (deploy/nats/nats-server.conf:
 * the nodes trust whatever may publish here).
 *
 *   hub.<hubId>.cmd        request/reply: run a command on the hub (only the holding node subscribes)
 *   hub.<hubId>.desired    publish: desired state of the hub changed, push the delta if online
 *   hub.<hubId>.takeover   publish: another node claimed the hub; the holder closes its session
 *   hub.<hubId>.close      publish: the operator disabled, deleted or moved the hub; the holder closes its session
 *   fleet.hubs.changed     publish: a hub's record changed; every node drops its cached copy
 *   fleet.tokens.revoked   publish: user tokens were revoked; every node refuses them and closes their app sockets
 *   fleet.reconcile        publish: fleet notices were lost; every node re-reads revocations and re-checks its hub sessions
 *   evt.<shard>.<homeId>.<hubId>  publish: state and device events of a hub, shard = fnv1a(homeId) mod SHARDS
 *   audit.events           publish: one entry of the audit trail per control action (for a SIEM)
 */
import type { AppEventMessage } from './app.js';
import type { ErrorCode } from './errors.js';
import type { Attrs } from './frames.js';

export const SHARDS = 64;

/** Ids allowed in subjects and keys: no dots, wildcards or whitespace. */
export const ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** Names that would reach Object.prototype when used as a plain object's key. */
const RESERVED = new Set(['__proto__', 'constructor', 'prototype']);

/** What `isValidId` accepts, in the words of an answer that refuses an id: every reserved name. */
export const ID_RULE = `an id of 1..64 characters [A-Za-z0-9_-], not ${[...RESERVED].join(', ').replace(/, (?=[^,]*$)/, ' or ')}`;

/** True for a hub, home, device or attribute id: ID_PATTERN and not a reserved object key. */
export function isValidId(s: unknown): s is string {
  return typeof s === 'string' && ID_PATTERN.test(s) && !RESERVED.has(s);
}

/** Attribute names: 1..64 characters, not a reserved object key. */
export function isValidKey(s: string): boolean {
  return s.length > 0 && s.length <= 64 && !RESERVED.has(s);
}

/** The last token of a `hub.<hubId>.<verb>` subject: what the holder of the hub is asked to do. */
export type HubVerb = 'cmd' | 'desired' | 'takeover' | 'close';

export const subjects = {
  hubCommand: (hubId: string) => `hub.${hubId}.cmd`,
  hubDesired: (hubId: string) => `hub.${hubId}.desired`,
  hubTakeover: (hubId: string) => `hub.${hubId}.takeover`,
  hubClose: (hubId: string) => `hub.${hubId}.close`,
  hubsChanged: 'fleet.hubs.changed',
  tokensRevoked: 'fleet.tokens.revoked',
  fleetReconcile: 'fleet.reconcile',
  auditEvents: 'audit.events',
  /** every `hub.<hubId>.<verb>`: what the node holding the hub subscribes to */
  hubAll: (hubId: string) => `hub.${hubId}.*`,
  hubEvents: (homeId: string, hubId: string) => `evt.${shardOf(homeId)}.${homeId}.${hubId}`,
  homeEvents: (homeId: string) => `evt.${shardOf(homeId)}.${homeId}.*`,
};

/** The verb of a subject received on `subjects.hubAll`, or null for one this version does not know. */
export function hubVerbOf(subject: string): HubVerb | null {
  const verb = subject.slice(subject.lastIndexOf('.') + 1);
  return verb === 'cmd' || verb === 'desired' || verb === 'takeover' || verb === 'close' ? verb : null;
}

/** `hub.<hubId>.cmd` request. */
export interface CommandRequest {
  /** device id */
  d: string;
  /** method; `set` applies `p` as attributes */
  m: string;
  p: Record<string, unknown>;
  /** ms the hub has to answer */
  to: number;
  /**
   * the caller's deadline (ms since 1970 on the cluster's clock: Redis's, each node's offset to it
   * measured at its liveness refresh; src/actors/cluster-clock.ts): a command that reaches the hub's
   * node after it is answered `command_timeout` unsent, and the hub is given only the time left;
   * older nodes send none, and take `to` whole
   */
  dl?: number;
  /** the caller's request id, logged with the outcome by the holding node; optional (older nodes send none) */
  rid?: string;
  /**
   * W3C `traceparent` of the caller's `bus request` span, the parent of the holding node's
   * `hub command` span; sent only while the caller traces. In the payload: the Bus port has no headers.
   */
  tp?: string;
}

/**
 * `hub.<hubId>.cmd` reply; `hub`: the hub's own error code, when the hub refused the command.
 * `tmp`: the hub refused with an error frame that said it was temporary (busy: sending again may succeed).
 * `ns` (with `session_closed` or `command_timeout`): the session never sent it to the hub (closing as
 * it came, or the command reached the node past its caller's deadline): safe to send again; with `session_closed` only, `mv`, sent and unanswered when the node's drain (or a shed) closed the session,
 * which told the hub to reconnect elsewhere: its outcome unknown. Older nodes send neither.
 */
export type CommandReply = { ok: true; r: unknown } | { ok: false; e: ErrorCode; msg?: string; hub?: string; tmp?: true; ns?: true; mv?: true };

/** `hub.<hubId>.desired`: the device's whole desired map and its version (older versions are ignored). */
export interface DesiredChange {
  d: string;
  desired: Attrs;
  v: number;
}

/** `hub.<hubId>.takeover`: the claim's epoch; a holder with a smaller one closes. */
export interface TakeoverNotice {
  epoch: number;
  node: string;
}

/** `hub.<hubId>.close`: why the operator closes the hub's session. */
export interface CloseOrder {
  e: 'hub_disabled' | 'hub_moved';
}

/** `fleet.hubs.changed`: the hub whose record changed. */
export interface HubChanged {
  hub: string;
}

/** `fleet.reconcile`: why (`outbox_overflow`); receivers act the same whatever it says. */
export interface ReconcileNotice {
  reason: string;
}

/**
 * `fleet.tokens.revoked`: one token (`jti`), every token of `sub` issued before `before`, or `home`
 * taken from every token issued before `before` (the token keeps its other homes); `exp` is when the
 * revocation stops mattering (the revoked tokens' latest expiry). Unix seconds.
 */
export interface TokenRevocation {
  jti?: string;
  sub?: string;
  home?: string;
  before?: number;
  exp: number;
}

/** Who acted: the admin token, a user token's `sub`, a rule (`sub`: the rule id) or the node itself. */
export interface AuditActor {
  kind: 'admin' | 'user' | 'rule' | 'system';
  sub?: string;
}

/** The control actions recorded in the audit trail. */
export type AuditAction =
  | 'command'
  | 'desired.set'
  | 'rule.create'
  | 'rule.update'
  | 'rule.delete'
  | 'rule.enable'
  | 'rule.disable'
  | 'scene.create'
  | 'scene.update'
  | 'scene.delete'
  | 'scene.enable'
  | 'scene.disable'
  | 'scene.run'
  | 'settings.set'
  | 'hub.provision'
  | 'hub.provision_batch'
  | 'hub.patch'
  | 'hub.move'
  | 'hub.delete'
  | 'hub.secret_rotate'
  | 'home.export'
  | 'home.erase'
  | 'token.issue'
  | 'token.revoke';

/**
 * `audit.events`: one control action as the audit trail keeps it (and `GET /v1/admin/audit`
 * answers it). Strings are at most 256 characters.
 */
export interface AuditEntry {
  /** unique; entries are listed by `at`, then by id */
  id: string;
  /** when the action ended, ms since the epoch (the recording node's clock) */
  at: number;
  actor: AuditActor;
  /** the caller's address (absent for rules) and the node that handled the action */
  from: { ip?: string; node: string };
  action: AuditAction;
  homeId?: string;
  hubId?: string;
  deviceId?: string;
  /** what else was acted on: a rule, scene or token id, a batch size */
  target?: string;
  /** `ok`, or the error code the caller got */
  outcome: string;
  /** the request id (`x-request-id`) or trace id the action carried */
  requestId?: string;
  /** a short description: the command's method, the keys changed */
  detail?: string;
}

/** Every payload the node publishes on the bus; `evt.*` carries the app's event message as it is. */
export type BusPayload = CommandRequest | CommandReply | DesiredChange | TakeoverNotice | CloseOrder | HubChanged | ReconcileNotice | TokenRevocation | AuditEntry | AppEventMessage;

/** 32-bit FNV-1a over the UTF-16 code units of the id, mod SHARDS. */
export function shardOf(homeId: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < homeId.length; i++) {
    h ^= homeId.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % SHARDS;
}
