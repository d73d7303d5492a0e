import type { Redis } from 'ioredis';
import { LuaScript, RedisKeys } from '../redis.js';
import { revocationKey, type RevocationStore, type TokenRevocation } from './revocations.js';

/**
 * Adds a revocation and removes those expired by Redis's clock: by the adding node's (until
 * 2026-12-06), one node whose clock ran a month ahead removed every revocation of the cluster.
 */
const ADD = new LuaScript(`local t = redis.call('TIME')
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(t[1]))`);

/**
 * Revocations in Redis, shared by the nodes of a cluster: the sorted set `<prefix>revocations`,
 * each member the revocation as JSON scored by its `exp` (Unix seconds). `add` also removes the
 * members that expired, so the set holds the revocations of at most one token lifetime.
 */
export class RedisRevocationStore implements RevocationStore {
  private readonly key: string;

  /** Does not own `client`: the composition root closes the connection it shares. */
  constructor(
    private readonly client: Redis,
    options: { keys?: RedisKeys } = {},
  ) {
    this.key = (options.keys ?? new RedisKeys()).single('revocations');
  }

  async add(r: TokenRevocation): Promise<void> {
    const member = JSON.stringify({ k: revocationKey(r), jti: r.jti, sub: r.sub, home: r.home, before: r.before, exp: r.exp });
    await ADD.run(this.client, [this.key], [r.exp, member]);
  }

  async list(nowS: number): Promise<TokenRevocation[]> {
    const members = await this.client.zrangebyscore(this.key, `(${nowS}`, '+inf');
    const out: TokenRevocation[] = [];
    for (const m of members) {
      let raw: { jti?: unknown; sub?: unknown; home?: unknown; before?: unknown; exp?: unknown };
      try {
        raw = JSON.parse(m) as typeof raw;
      } catch {
        continue;
      }
      if (typeof raw.exp !== 'number') continue;
      const r: TokenRevocation = { exp: raw.exp };
      if (typeof raw.jti === 'string') r.jti = raw.jti;
      if (typeof raw.sub === 'string') r.sub = raw.sub;
      if (typeof raw.home === 'string') r.home = raw.home;
      if (typeof raw.before === 'number') r.before = raw.before;
      out.push(r);
    }
    return out;
  }

  async close(): Promise<void> {}
}
