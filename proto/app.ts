/**
 * App protocol v1 over `/app/v1`: JSON text frames by default, msgpack binary frames with
 * `?enc=msgpack`. Every message is one map with `op`. Requests carry a client-chosen `id` that the
 * answer (`ok` or `err`) repeats; events carry none.
 */
import type { Attrs, DeviceInfo } from './frames.js';

/**
 * The subprotocol a client offers beside `bearer.<token>` and the node answers with when offered:
 * echoing the bearer one puts the whole token in the response header, which Node's HTTP parser
 * refuses past 16 KiB (a token of a couple of thousand homes). Clients that offer only the bearer
 * one are answered with it, as before.
 */
export const APP_SUBPROTOCOL = 'hubtier.app.v1';

/** What a subprotocol may hold (an RFC 7230 token): a JWT does; `openssl rand -base64 32` gives `/` and `=`, which do not. */
const SUBPROTOCOL_SAFE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * The token as a WebSocket subprotocol, the one way a browser can send a credential on the
 * upgrade without putting it in the URL (where proxies and logs keep it): `bearer.<token>`, or
 * `bearer64.<the token's UTF-8 in unpadded base64url>` when it holds characters a subprotocol
 * cannot (a WebSocket constructor throws on them, with the token in its message).
 */
export function bearerProtocol(token: string): string {
  if (SUBPROTOCOL_SAFE.test(token)) return `bearer.${token}`;
  let binary = '';
  for (const byte of new TextEncoder().encode(token)) binary += String.fromCharCode(byte);
  return `bearer64.${btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')}`;
}

/** Whether an offered subprotocol carries a token. */
export function isBearerProtocol(protocol: string): boolean {
  return protocol.startsWith('bearer.') || protocol.startsWith('bearer64.');
}

/** The token a bearer subprotocol carries (`bearerProtocol` undone; atob and TextDecoder, as in browsers); undefined: not base64url. */
export function bearerToken(protocol: string): string | undefined {
  if (!protocol.startsWith('bearer64.')) return protocol.slice('bearer.'.length);
  const encoded = protocol.slice('bearer64.'.length);
  if (!/^[A-Za-z0-9_-]*$/.test(encoded) || encoded.length % 4 === 1) return undefined;
  const binary = atob(encoded.replace(/-/g, '+').replace(/_/g, '/'));
  return new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0)));
}

/**
 * Where an event sits in its home's history. `offset` grows by one per event of the home; `epoch`
 * names one continuous history: when it changes (a store reset, a history lost), offsets of the
 * old epoch mean nothing and an app reloads the home's snapshot.
 */
export interface Position {
  epoch: string;
  offset: number;
}

/** Why a `sub` with `since` could not deliver what was missed: the app reloads the snapshot. */
export type RecoveryFailure =
  /** the history was reset or recreated since that position */
  | 'epoch_changed'
  /** the events after that position are no longer kept (trimmed by count or age), or too many */
  | 'too_old'
  /** this node keeps no history (TIER_HISTORY_SIZE=0) or could not read it */
  | 'unavailable';

/**
 * The `ok` answer to `sub`. `pos` is where the events this subscription delivers begin: they have
 * offsets above it (null when no position is known: no history, or it could not be read).
 * - without `since`: the home's current position; live events follow.
 * - with `since`, `recovered: true`: `pos` is `since`; exactly the events after it follow, in order,
 *   then the live ones. Should the history lose them meanwhile, a `reload` to this app says so.
 *   With `carry: true` and a `since` of an epoch the history continues (an embedded node's unclean
 *   stop kept what it committed), `pos` is the same offset in the current epoch.
 * - with `since`, `recovered: false` and `reason`: reload the home's snapshot, then go on from `pos`
 *   (the current position).
 * A second `sub` of a home already subscribed on the connection answers `pos` alone.
 */
export interface SubResult {
  home: string;
  pos: Position | null;
  recovered?: boolean;
  reason?: RecoveryFailure;
}

export type AppRequest =
  | { op: 'sub'; id: number; home: string; since?: Position; carry?: true }
  | { op: 'unsub'; id: number; home: string }
  | {
      op: 'cmd';
      id: number;
      hub: string;
      device: string;
      set?: Attrs;
      method?: string;
      params?: Record<string, unknown>;
      timeoutMs?: number;
      /** W3C traceparent: the node's spans for the command join the app's trace */
      traceparent?: string;
    }
  | { op: 'ping'; id: number };

export type AppReply =
  | { op: 'ok'; id: number; result?: unknown }
  | { op: 'err'; id?: number; code: string; num: number; temporary: boolean; msg: string; field?: string; hubCode?: string; hubTemporary?: true; sent?: false };

/** Why a hub left a home: the operator moved it to another home, or deleted it. */
export type RemovedReason = 'moved' | 'deleted';

/** What happened at a hub: its devices' state and events, its device list, its connection, its leaving the home. */
export type HubEvent =
  /**
   * `attrs`: what the hub reported (repeated values included); `prev`: the value before this report
   * of each attribute of `attrs` it changed, `null` when the device had none (its first report of
   * it). An attribute of `attrs` not in `prev` kept its value. Absent in events stored before it existed.
   * `src` (state and device events): the hub frame it came from, `<boot tag>.<s>`; the same when the
   * hub resends that frame after a failover, when the event may be stored again at a new offset:
   * hub, device and `src` tell such a second copy. Absent in events stored before 2026-12-07.
   */
  | { kind: 'state'; home: string; hub: string; device: string; attrs: Attrs; version: number; ts: number; src?: string; prev?: Attrs }
  | { kind: 'event'; home: string; hub: string; device: string; event: string; params?: Attrs; ts: number; src?: string }
  /** published only when the hub's list changed what is stored (not for one sent again as it is) */
  | { kind: 'devices'; home: string; hub: string; joined: DeviceInfo[]; left: string[]; ts: number }
  | { kind: 'online'; home: string; hub: string; node: string; ts: number }
  | { kind: 'offline'; home: string; hub: string; reason: string; ts: number }
  /**
   * the hub and its devices are no longer in this home (moved elsewhere, or deleted): the last event
   * of the hub in the home's history; an app drops them. Which home it went to is not said.
   */
  | { kind: 'removed'; home: string; hub: string; reason: RemovedReason; ts: number };

/**
 * A hub event as published on `evt.<shard>.<homeId>.<hubId>` and as apps receive it: the same map,
 * so a node passes the bus payload's bytes through to msgpack subscribers without decoding them.
 * `pos` is the event's place in its home's history; absent when the node keeps no history or
 * could not store the event there (then it is delivered live only, at most once).
 */
export type AppEventMessage = { op: 'evt'; pos?: Position } & HubEvent;

/**
 * Sent to a home's subscribers when its history lost continuity while they were subscribed (the
 * epoch changed, or a gap could not be filled): reload the snapshot, then go on from `pos`.
 */
export interface AppReloadMessage {
  op: 'reload';
  home: string;
  reason: RecoveryFailure;
  pos: Position;
}

/**
 * The node ended the connection's subscription to `home` (no `id`: nothing asked for it): the
 * token was taken the home (`forbidden`, a revocation by home; the socket stays open for the
 * token's other homes). No more events of the home come; a `sub` of it is refused the same way.
 */
export interface AppEndMessage {
  op: 'end';
  home: string;
  code: string;
  num: number;
  temporary: boolean;
  msg: string;
}

/** Every message of the app socket, either way. */
export type AppWireMessage = AppRequest | AppReply | AppEventMessage | AppReloadMessage | AppEndMessage;

// a Record needs every op and refuses others: the lists below cannot drift from the types above
const REQUEST_OPS: Record<AppRequest['op'], true> = { sub: true, unsub: true, cmd: true, ping: true };
const NODE_OPS: Record<Exclude<AppWireMessage, AppRequest>['op'], true> = { ok: true, err: true, evt: true, reload: true, end: true };

/** The `op` of every request an app may send (the node's frame counters take these as labels). */
export const APP_REQUEST_OPS = Object.keys(REQUEST_OPS) as ReadonlyArray<AppRequest['op']>;
/** The `op` of every message the node sends an app. */
export const APP_NODE_OPS = Object.keys(NODE_OPS) as ReadonlyArray<Exclude<AppWireMessage, AppRequest>['op']>;
