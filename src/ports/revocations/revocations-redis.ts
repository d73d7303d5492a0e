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
  private readonly pageSize: number;

  /** Does not own `client`: the composition root closes the connection it shares. */
  constructor(
    private readonly client: Redis,
    /** `pageSize`: members a read asks for at once (@default 20,000) */
    options: { keys?: RedisKeys; pageSize?: number } = {},
  ) {
    this.key = (options.keys ?? new RedisKeys()).single('revocations');
    this.pageSize = options.pageSize ?? 20_000;
  }

  async add(r: TokenRevocation): Promise<void> {
    const member = JSON.stringify({ k: revocationKey(r), jti: r.jti, sub: r.sub, home: r.home, before: r.before, exp: r.exp });
    await ADD.run(this.client, [this.key], [r.exp, member]);
  }

  /**
   * Read a page at a time by score (from the last page's last score, past its members of that score
   * already read): the whole set in one read, at its documented 1,000,000, neared the command
   * timeout at a node's start and held an admin query's node 1.4 s (review "cluster-cost").
   */
  async list(nowS: number): Promise<TokenRevocation[]> {
    const out: TokenRevocation[] = [];
    let min = `(${nowS}`;
    let skip = 0;
    for (;;) {
      const page = await this.client.zrangebyscore(this.key, min, '+inf', 'WITHSCORES', 'LIMIT', skip, this.pageSize);
      const members: string[] = [];
      for (let i = 0; i < page.length; i += 2) members.push(page[i]!);
      parseInto(out, members);
      if (page.length < 2 * this.pageSize) return out;
      const last = page[page.length - 1]!;
      let same = 0;
      for (let i = page.length - 1; i > 0 && page[i] === last; i -= 2) same++;
      skip = min === last ? skip + same : same;
      min = last;
    }
  }

  async close(): Promise<void> {}
}

/** Members as stored (JSON), into `out`; one that is not a revocation is skipped. */
function parseInto(out: TokenRevocation[], members: readonly string[]): void {
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
}
