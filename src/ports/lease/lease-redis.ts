import type { Redis } from 'ioredis';
import { closeRedis, connectRedis, LuaScript, RedisKeys, type RedisTlsFiles } from '../redis.js';
import type { Logger } from '../../log/logger.js';
import type { Lease } from './lease.js';

export interface RedisLeaseOptions {
  /** key names and their prefix */
  keys?: RedisKeys;
}

/** Extends the claim only while ARGV[1] holds it. */
const RENEW = new LuaScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`);

/** Frees the key only while ARGV[1] holds it. */
const RELEASE = new LuaScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1`);

/**
 * Leases in Redis, shared by every node: one key per lease, `<prefix>lease:<key>`, holding the
 * owner's name, with Redis' own expiry (`SET … NX PX ttl`). Expiry runs on Redis' clock, so nodes
 * need not agree on the time. Each call touches one key, so it runs unchanged on Redis Cluster.
 * A Redis error rejects the call (the 'fail' connection profile): the scheduler retries the
 * instant at its next tick, and the cursor's compare-and-set still prevents a double firing.
 */
export class RedisLease implements Lease {
  private readonly keys: RedisKeys;

  /** Takes ownership of `client`: `close()` quits it. */
  constructor(
    private readonly client: Redis,
    options: RedisLeaseOptions = {},
  ) {
    this.keys = options.keys ?? new RedisKeys();
  }

  static async connect(url: string, options: RedisLeaseOptions & { name: string; log: Logger; tls?: RedisTlsFiles }): Promise<RedisLease> {
    return new RedisLease(await connectRedis(url, { name: options.name, log: options.log, tls: options.tls }), options);
  }

  async tryAcquire(key: string, owner: string, ttlMs: number): Promise<boolean> {
    return (await this.client.set(this.key(key), owner, 'PX', ttl(ttlMs), 'NX')) === 'OK';
  }

  async renew(key: string, owner: string, ttlMs: number): Promise<boolean> {
    return (await RENEW.run(this.client, [this.key(key)], [owner, ttl(ttlMs)])) === 1;
  }

  async release(key: string, owner: string): Promise<boolean> {
    return (await RELEASE.run(this.client, [this.key(key)], [owner])) === 1;
  }

  async close(): Promise<void> {
    await closeRedis(this.client);
  }

  private key(key: string): string {
    return this.keys.single(`lease:${key}`);
  }
}

/** Redis wants a positive integer of ms. */
function ttl(ms: number): number {
  if (!Number.isFinite(ms) || ms <= 0) throw new RangeError(`lease ttlMs must be a positive number, got ${ms}`);
  return Math.ceil(ms);
}
