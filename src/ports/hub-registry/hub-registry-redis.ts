import type { Redis } from 'ioredis';
import { TierError } from '../../errors.js';
import type { Logger } from '../../log/logger.js';
import type { HubRecord, HubRegistry, NonceStore } from './hub-registry.js';
import { closeRedis, connectRedis, LuaScript, RedisKeys } from '../redis.js';

export interface RedisRegistryOptions {
  /** key names and their prefix */
  keys?: RedisKeys;
}

/** Writes the record only if the hub id is free: a duplicate never overwrites. */
const CREATE = new LuaScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1`);

/** Sets `enabled` of an existing record; creates nothing. */
const SET_ENABLED = new LuaScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'enabled', ARGV[1])
return 1`);

/**
 * Provisioned hubs in Redis: one hash per hub, `<prefix>{h:<hubId>}:hub` with the fields `homeId`,
 * `secret`, `enabled` (`1`/`0`), `createdAt` (ms) and `model` when known. No TTL. Create and
 * setEnabled are Lua scripts, so racing creates of one id leave exactly one record.
 */
export class RedisHubRegistry implements HubRegistry {
  private readonly keys: RedisKeys;

  /** Takes ownership of `client`: `close()` quits it. */
  constructor(
    private readonly client: Redis,
    options: RedisRegistryOptions = {},
  ) {
    this.keys = options.keys ?? new RedisKeys();
  }

  static async connect(url: string, options: RedisRegistryOptions & { name: string; log: Logger }): Promise<RedisHubRegistry> {
    return new RedisHubRegistry(await connectRedis(url, { name: options.name, log: options.log }), options);
  }

  async create(record: HubRecord): Promise<void> {
    const fields = [
      'homeId', record.homeId,
      'secret', record.secret,
      'enabled', record.enabled ? '1' : '0',
      'createdAt', String(record.createdAt),
    ];
    if (record.model !== undefined) fields.push('model', record.model);
    const created = await CREATE.run(this.client, [this.key(record.hubId)], fields);
    if (created !== 1) throw new TierError('already_exists', `hub ${record.hubId} is already provisioned`);
  }

  async get(hubId: string): Promise<HubRecord | null> {
    const h = await this.client.hgetall(this.key(hubId));
    if (h.homeId === undefined) return null;
    if (h.secret === undefined || h.enabled === undefined || h.createdAt === undefined) {
      throw new TierError('internal', `hub record ${hubId} in redis lacks fields: ${Object.keys(h).join(',')}`);
    }
    return {
      hubId,
      homeId: h.homeId,
      model: h.model,
      secret: h.secret,
      enabled: h.enabled === '1',
      createdAt: Number(h.createdAt),
    };
  }

  async setEnabled(hubId: string, enabled: boolean): Promise<boolean> {
    return (await SET_ENABLED.run(this.client, [this.key(hubId)], [enabled ? '1' : '0'])) === 1;
  }

  async close(): Promise<void> {
    await closeRedis(this.client);
  }

  private key(hubId: string): string {
    return this.keys.hub(hubId, 'hub');
  }
}

/**
 * Handshake nonces in Redis: `SET <prefix>nonce:<key> 1 PX ttlMs NX`, so the first claim wins
 * across all nodes and Redis forgets the key after `ttlMs` (a repeat does not extend it).
 */
export class RedisNonceStore implements NonceStore {
  private readonly keys: RedisKeys;

  /** Takes ownership of `client`: `close()` quits it. */
  constructor(
    private readonly client: Redis,
    options: RedisRegistryOptions = {},
  ) {
    this.keys = options.keys ?? new RedisKeys();
  }

  static async connect(url: string, options: RedisRegistryOptions & { name: string; log: Logger }): Promise<RedisNonceStore> {
    return new RedisNonceStore(await connectRedis(url, { name: options.name, log: options.log }), options);
  }

  async claim(key: string, ttlMs: number): Promise<boolean> {
    const px = Math.max(1, Math.ceil(ttlMs));
    return (await this.client.set(this.keys.single(`nonce:${key}`), '1', 'PX', px, 'NX')) === 'OK';
  }

  async close(): Promise<void> {
    await closeRedis(this.client);
  }
}
