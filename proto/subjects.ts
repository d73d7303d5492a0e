/**
 * NATS subject names. Part of the protocol: other services publish and subscribe on them.
 *
 *   hub.<hubId>.cmd        request/reply: run a command on the hub (only the holding node subscribes)
 *   hub.<hubId>.desired    publish: desired state of the hub changed, push the delta if online
 *   hub.<hubId>.takeover   publish: another node claimed the hub; the holder closes its session
 *   evt.<shard>.<homeId>.<hubId>  publish: state and device events of a hub, shard = fnv1a(homeId) mod SHARDS
 */
export const SHARDS = 64;

/** Ids allowed in subjects and keys: no dots, wildcards or whitespace. */
export const ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** Names that would reach Object.prototype when used as a plain object's key. */
const RESERVED = new Set(['__proto__', 'constructor', 'prototype']);

/** True for a hub, home, device or attribute id: ID_PATTERN and not a reserved object key. */
export function isValidId(s: unknown): s is string {
  return typeof s === 'string' && ID_PATTERN.test(s) && !RESERVED.has(s);
}

/** Attribute names: 1..64 characters, not a reserved object key. */
export function isValidKey(s: string): boolean {
  return s.length > 0 && s.length <= 64 && !RESERVED.has(s);
}

export const subjects = {
  hubCommand: (hubId: string) => `hub.${hubId}.cmd`,
  hubDesired: (hubId: string) => `hub.${hubId}.desired`,
  hubTakeover: (hubId: string) => `hub.${hubId}.takeover`,
  hubEvents: (homeId: string, hubId: string) => `evt.${shardOf(homeId)}.${homeId}.${hubId}`,
  homeEvents: (homeId: string) => `evt.${shardOf(homeId)}.${homeId}.*`,
};

/** 32-bit FNV-1a over the UTF-16 code units of the id, mod SHARDS. */
export function shardOf(homeId: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < homeId.length; i++) {
    h ^= homeId.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % SHARDS;
}
