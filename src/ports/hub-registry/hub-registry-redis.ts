import type { Redis } from 'ioredis';
import { Interner } from '../../actors/intern.js';
import { TierError } from '../../errors.js';
import type { Logger } from '../../log/logger.js';
import {
  collectPage,
  labelsOf,
  scanStart,
  type HubLabels,
  type HubPage,
  type HubPatch,
  type HubQuery,
  infoOf,
  type HubInfo,
  type HubRecord,
  type HubPlacement,
  type HubRegistry,
  type HubExpect,
  type NonceStore,
} from './hub-registry.js';
import { closeRedis, connectRedis, LuaScript, RedisKeys, type RedisTlsFiles } from '../redis.js';

export interface RedisRegistryOptions {
  /** key names and their prefix */
  keys?: RedisKeys;
}

/** Writes the record only if the hub id is free: a duplicate never overwrites. */
const CREATE = new LuaScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1`);

/**
 * Changes fields of an existing record: ARGV[1] = how many field/value pairs must hold first ('':
 * absent), those pairs, then how many fields to delete, those names, then field/value pairs to set.
 * Answers the record before and after (HGETALL), nil for none, or its home id when a pair did not hold.
 */
const UPDATE = new LuaScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return nil end
local m = tonumber(ARGV[1])
for i = 2, 2 * m, 2 do
  if (redis.call('HGET', KEYS[1], ARGV[i]) or '') ~= ARGV[i + 1] then return redis.call('HGET', KEYS[1], 'homeId') end
end
local before = redis.call('HGETALL', KEYS[1])
local d = 2 * m + 2
local n = tonumber(ARGV[d])
for i = d + 1, d + n do redis.call('HDEL', KEYS[1], ARGV[i]) end
if #ARGV > d + n then redis.call('HSET', KEYS[1], unpack(ARGV, d + n + 1)) end
return {before, redis.call('HGETALL', KEYS[1])}`);

/**
 * The current secret becomes the previous one (until ARGV[2]); ARGV[1] is current, version + 1;
 * ARGV[3] the rotation's key ('' for none): the last rotation's own key changes nothing.
 */
const ROTATE = new LuaScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return nil end
if ARGV[3] ~= '' and redis.call('HGET', KEYS[1], 'rotKey') == ARGV[3] then return redis.call('HGETALL', KEYS[1]) end
local old = redis.call('HGET', KEYS[1], 'secret')
local v = tonumber(redis.call('HGET', KEYS[1], 'secretVersion') or '1')
redis.call('HSET', KEYS[1], 'prevSecret', old, 'prevUntil', ARGV[2], 'secret', ARGV[1], 'secretVersion', tostring(v + 1))
if ARGV[3] == '' then redis.call('HDEL', KEYS[1], 'rotKey') else redis.call('HSET', KEYS[1], 'rotKey', ARGV[3]) end
return redis.call('HGETALL', KEYS[1])`);

/** Deletes the record; answers its home id, or nil. */
const REMOVE = new LuaScript(`
local home = redis.call('HGET', KEYS[1], 'homeId')
if not home then return nil end
redis.call('DEL', KEYS[1])
return home`);

/** Index entries read per round trip while listing. */
const LIST_BATCH = 256;

/**
 * Provisioned hubs in Redis: one hash per hub, `<prefix>{h:<hubId>}:hub` with the fields `homeId`,
 * `secret`, `enabled` (`1`/`0`), `createdAt` (ms), and when present `model`, `secretVersion`,
 * `prevSecret` with `prevUntil` (ms) and `rotKey` (the replacing rotation's key), `labels` (JSON) and `firmware`. No TTL. Writes of a record
 * are Lua scripts, so racing creates of one id leave exactly one record.
 *
 * Two indexes, in other slots than the hub's (Redis Cluster: not atomic with the record): the
 * sorted set `<prefix>hubs` (every id, score 0, read by lexical range for `list`) and the set
 * `<prefix>{home:<homeId>}:hubs` per home. Entries are added before the record is written and
 * removed after it is deleted or moved, so an index never lacks a hub; an entry left behind by a
 * crash in between names a missing record or another home, is skipped when read and removed.
 */
export class RedisHubRegistry implements HubRegistry {
  readonly inTurn = false;
  private readonly keys: RedisKeys;

  /** Takes ownership of `client`: `close()` quits it. */
  constructor(
    private readonly client: Redis,
    options: RedisRegistryOptions = {},
  ) {
    this.keys = options.keys ?? new RedisKeys();
  }

  static async connect(url: string, options: RedisRegistryOptions & { name: string; log: Logger; tls?: RedisTlsFiles }): Promise<RedisHubRegistry> {
    return new RedisHubRegistry(await connectRedis(url, { name: options.name, log: options.log, tls: options.tls }), options);
  }

  async create(record: HubRecord): Promise<void> {
    const fields = [
      'homeId', record.homeId,
      'secret', record.secret,
      'enabled', record.enabled ? '1' : '0',
      'createdAt', String(record.createdAt),
    ];
    if (record.model !== undefined) fields.push('model', record.model);
    if (record.secretVersion !== undefined && record.secretVersion !== 1) fields.push('secretVersion', String(record.secretVersion));
    if (record.previousSecret) fields.push('prevSecret', record.previousSecret.secret, 'prevUntil', String(record.previousSecret.until));
    if (record.previousSecret?.rotationKey !== undefined) fields.push('rotKey', record.previousSecret.rotationKey);
    if (record.labels && Object.keys(record.labels).length > 0) fields.push('labels', JSON.stringify(record.labels));
    if (record.firmware !== undefined) fields.push('firmware', record.firmware);
    await this.index(record.hubId, record.homeId);
    const created = await CREATE.run(this.client, [this.key(record.hubId)], fields);
    if (created !== 1) throw new TierError('already_exists', `hub ${record.hubId} is already provisioned`);
  }

  async get(hubId: string): Promise<HubRecord | null> {
    return decode(hubId, await this.client.hgetall(this.key(hubId)));
  }

  async lookup(hubId: string): Promise<HubInfo | null> {
    return infoOf(await this.get(hubId));
  }

  async setEnabled(hubId: string, enabled: boolean): Promise<boolean> {
    return (await this.update(hubId, { enabled })) !== null;
  }

  async list(query: HubQuery): Promise<HubPage> {
    return collectPage(this.scan(query), query);
  }

  /** One SMEMBERS a page (a set has no order to page by): a home's hubs are few next to a fleet. */
  async listHome(homeId: string, limit: number, after?: string): Promise<HubRecord[]> {
    const homeKey = this.keys.home(homeId, 'hubs');
    const ids = (await this.client.smembers(homeKey)).filter((id) => after === undefined || id > after).sort();
    const out: HubRecord[] = [];
    for (let i = 0; i < ids.length && out.length < limit; i += LIST_BATCH) {
      const batch = ids.slice(i, i + LIST_BATCH);
      const records = await this.read(batch);
      const stale: string[] = [];
      records.forEach((r, j) => {
        if (r === null || r.homeId !== homeId) stale.push(batch[j]!);
        else if (out.length < limit) out.push(r);
      });
      if (stale.length > 0) await this.client.srem(homeKey, ...stale);
    }
    return out;
  }

  async update(hubId: string, patch: HubPatch, expect?: HubExpect): Promise<HubRecord | null> {
    const holds: string[] = [];
    if (expect?.homeId !== undefined) holds.push('homeId', expect.homeId);
    if (expect?.secret !== undefined) holds.push('secret', expect.secret);
    if (expect?.previousSecret !== undefined) holds.push('prevSecret', expect.previousSecret ?? '');
    const dels: string[] = [];
    const sets: string[] = [];
    const field = (name: string, value: string | null | undefined) => {
      if (value === null) dels.push(name);
      else if (value !== undefined) sets.push(name, value);
    };
    field('homeId', patch.homeId);
    field('model', patch.model);
    field('enabled', patch.enabled === undefined ? undefined : patch.enabled ? '1' : '0');
    field('labels', patch.labels === undefined ? undefined : patch.labels === null || Object.keys(patch.labels).length === 0 ? null : JSON.stringify(patch.labels));
    field('firmware', patch.firmware);
    field('secret', patch.secret);
    field('prevSecret', patch.previousSecret === undefined ? undefined : (patch.previousSecret?.secret ?? null));
    field('prevUntil', patch.previousSecret === undefined ? undefined : patch.previousSecret === null ? null : String(patch.previousSecret.until));
    field('rotKey', patch.previousSecret === undefined ? undefined : (patch.previousSecret?.rotationKey ?? null));
    // the new home's index first: it never lacks the hub
    if (patch.homeId !== undefined) await this.client.sadd(this.keys.home(patch.homeId, 'hubs'), hubId);
    const reply = (await UPDATE.run(this.client, [this.key(hubId)], [String(holds.length / 2), ...holds, String(dels.length), ...dels, ...sets])) as [string[], string[]] | string | null;
    // not written: the new home's index entry added above stays, as for an unknown hub (a stale
    // entry is dropped by listHome; removing it here could remove a racing writer's)
    if (reply === null || typeof reply === 'string') return null;
    const before = decode(hubId, pairs(reply[0]));
    const after = decode(hubId, pairs(reply[1]));
    if (before && after && before.homeId !== after.homeId) await this.client.srem(this.keys.home(before.homeId, 'hubs'), hubId);
    return after;
  }

  async rotateSecret(hubId: string, secret: string, graceUntil: number, key?: string): Promise<HubRecord | null> {
    const reply = (await ROTATE.run(this.client, [this.key(hubId)], [secret, String(graceUntil), key ?? ''])) as string[] | null;
    return reply === null ? null : decode(hubId, pairs(reply));
  }

  async remove(hubId: string): Promise<boolean> {
    const home = (await REMOVE.run(this.client, [this.key(hubId)], [])) as string | null;
    if (home === null) return false;
    await Promise.all([this.client.zrem(this.keys.single('hubs'), hubId), this.client.srem(this.keys.home(home, 'hubs'), hubId)]);
    return true;
  }

  forget(): void {}

  forgetAll(): void {}

  /** One pipeline of HMGETs (three fields each, no secrets read). */
  async placements(hubIds: readonly string[]): Promise<Array<HubPlacement | null>> {
    if (hubIds.length === 0) return [];
    const pipe = this.client.pipeline();
    for (const id of hubIds) pipe.hmget(this.key(id), 'homeId', 'enabled', 'createdAt');
    const replies = (await pipe.exec()) ?? [];
    return hubIds.map((_, i) => {
      const [err, fields] = replies[i] ?? [new Error('no reply'), null];
      if (err) throw err;
      const [homeId, enabled, createdAt] = fields as Array<string | null>;
      return homeId === null || homeId === undefined ? null : { homeId, enabled: enabled === '1', createdAt: Number(createdAt) };
    });
  }

  /**
   * Puts every hub record under the prefix into the indexes (records written by versions before
   * the indexes existed are found by id but not listed). SCAN over the keyspace: for the fleet
   * command line, not a node. Answers how many records it saw.
   */
  async reindex(): Promise<number> {
    const suffix = '}:hub';
    const start = `${this.keys.prefix}{h:`;
    let cursor = '0';
    let seen = 0;
    do {
      const [next, keys] = await this.client.scan(cursor, 'MATCH', `${start}*${suffix}`, 'COUNT', 1_000);
      cursor = next;
      for (const key of keys) {
        if (!key.startsWith(start) || !key.endsWith(suffix)) continue;
        const hubId = key.slice(start.length, key.length - suffix.length);
        const homeId = await this.client.hget(key, 'homeId');
        if (homeId === null) continue;
        await this.index(hubId, homeId);
        seen++;
      }
    } while (cursor !== '0');
    return seen;
  }

  async close(): Promise<void> {
    await closeRedis(this.client);
  }

  private key(hubId: string): string {
    return this.keys.hub(hubId, 'hub');
  }

  private async index(hubId: string, homeId: string): Promise<void> {
    await this.client.zadd(this.keys.single('hubs'), 0, hubId);
    await this.client.sadd(this.keys.home(homeId, 'hubs'), hubId);
  }

  /** Records by id (null where the record is gone), one pipeline. */
  private async read(ids: string[]): Promise<Array<HubRecord | null>> {
    if (ids.length === 0) return [];
    const pipe = this.client.pipeline();
    for (const id of ids) pipe.hgetall(this.key(id));
    const replies = (await pipe.exec()) ?? [];
    return ids.map((id, i) => {
      const [err, h] = replies[i] ?? [new Error('no reply'), null];
      if (err) throw err;
      return decode(id, h as Record<string, string>);
    });
  }

  /** Records in id order from the index, from the query's start, batch by batch. */
  private async *scan(q: HubQuery): AsyncGenerator<HubRecord> {
    const start = scanStart(q);
    let min = start === undefined ? '-' : start === q.after ? `(${start}` : `[${start}`;
    for (;;) {
      const ids = await this.client.zrangebylex(this.keys.single('hubs'), min, '+', 'LIMIT', 0, LIST_BATCH);
      if (ids.length === 0) return;
      for (const r of await this.read(ids)) if (r) yield r;
      if (ids.length < LIST_BATCH) return;
      min = `(${ids[ids.length - 1]!}`;
    }
  }
}

/** HGETALL's flat reply from a script as a field map. */
function pairs(flat: string[]): Record<string, string> {
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]!] = flat[i + 1]!;
  return out;
}

/** A fleet has few models: one copy of each in the node (whose registry cache keeps every record it read), not one per hub. */
const MODELS = new Interner(1_024, 64);

function decode(hubId: string, h: Record<string, string>): HubRecord | null {
  if (h.homeId === undefined) return null;
  if (h.secret === undefined || h.enabled === undefined || h.createdAt === undefined) {
    throw new TierError('internal', `hub record ${hubId} in redis lacks fields: ${Object.keys(h).join(',')}`);
  }
  const r: HubRecord = { hubId, homeId: h.homeId, model: h.model === undefined ? undefined : MODELS.intern(h.model), secret: h.secret, enabled: h.enabled === '1', createdAt: Number(h.createdAt) };
  if (h.secretVersion !== undefined && h.secretVersion !== '1') r.secretVersion = Number(h.secretVersion);
  if (h.prevSecret !== undefined && h.prevUntil !== undefined) {
    r.previousSecret = { secret: h.prevSecret, until: Number(h.prevUntil) };
    if (h.rotKey !== undefined) r.previousSecret.rotationKey = h.rotKey;
  }
  if (h.labels !== undefined) {
    const labels = parseLabels(h.labels);
    if (labels) r.labels = labels;
  }
  if (h.firmware !== undefined) r.firmware = h.firmware;
  return r;
}

function parseLabels(json: string): HubLabels | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    return undefined;
  }
  return labelsOf(raw);
}

/**
 * Handshake nonces in Redis: `SET <prefix>nonce:<key> 1 PX ttlMs NX`, so the first claim wins
 * across all nodes and Redis forgets the key after `ttlMs` (a repeat does not extend it).
 */
export class RedisNonceStore implements NonceStore {
  readonly inTurn = false;
  private readonly keys: RedisKeys;

  /** Takes ownership of `client`: `close()` quits it. */
  constructor(
    private readonly client: Redis,
    options: RedisRegistryOptions = {},
  ) {
    this.keys = options.keys ?? new RedisKeys();
  }

  static async connect(url: string, options: RedisRegistryOptions & { name: string; log: Logger; tls?: RedisTlsFiles }): Promise<RedisNonceStore> {
    return new RedisNonceStore(await connectRedis(url, { name: options.name, log: options.log, tls: options.tls }), options);
  }

  async claim(key: string, ttlMs: number): Promise<boolean> {
    const px = Math.max(1, Math.ceil(ttlMs));
    return (await this.client.set(this.keys.single(`nonce:${key}`), '1', 'PX', px, 'NX')) === 'OK';
  }

  async close(): Promise<void> {
    await closeRedis(this.client);
  }
}
