import type { CallObserver } from '../ports.js';
import type { Redis } from 'ioredis';
import type { Logger } from '../../log/logger.js';
import { closeRedis, connectRedis, hashTag, LuaScript, RedisKeys, type RedisTlsFiles } from '../redis.js';
import { keyOf, overdueKey, type PendingRun, type PendingRuns } from './pending-runs.js';

export interface RedisPendingRunsOptions {
  /** this node's name: the owner of the entries it saves */
  nodeId: string;
  log: Logger;
  keys?: RedisKeys;
  /** a node that has not renewed its claim for this long is gone; @default 30_000 (ms) */
  ttlMs?: number;
}

/** Redis' clock in ms, and this node's claim renewed until then + ttl (ARGV[1] node, ARGV[2] ttl). */
const CLOCK = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[2]), ARGV[1])
local function alive(node)
  local until_ = redis.call('ZSCORE', KEYS[3], node)
  return until_ and tonumber(until_) > now
end
`;

/** KEYS runs, owners, nodes; ARGV node, ttl. */
const RENEW = new LuaScript(`${CLOCK}
return 1`);

/**
 * KEYS runs, owners, nodes; ARGV node, ttl, ruleId, json, dedupBase, savedAt ('' if none). The
 * rule's entry of another run, due by `savedAt`, is kept apart under "<ruleId> <its dedupBase>"
 * with its owner (pending-runs.ts `keptApart`); a field with a space is an entry apart (CLAIM).
 */
const SAVE = new LuaScript(`${CLOCK}
local old = redis.call('HGET', KEYS[1], ARGV[3])
if old then
  local o = cjson.decode(old)
  if ARGV[6] ~= '' and o.dedupBase ~= ARGV[5] and tonumber(o.dueAt) <= tonumber(ARGV[6]) then
    local apart = ARGV[3] .. ' ' .. o.dedupBase
    redis.call('HSET', KEYS[1], apart, old)
    redis.call('HSET', KEYS[2], apart, redis.call('HGET', KEYS[2], ARGV[3]) or ARGV[1])
  end
end
redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[1])
return 1`);

/** KEYS runs, owners; ARGV ruleId, runId, dedupBase ('' none): deletes the entry only while it is that wait, or the run's entry apart while it is. */
const REMOVE = new LuaScript(`
local field = ARGV[1]
local v = redis.call('HGET', KEYS[1], field)
if not v or cjson.decode(v).runId ~= ARGV[2] then
  if ARGV[3] == '' then return 0 end
  field = ARGV[1] .. ' ' .. ARGV[3]
  v = redis.call('HGET', KEYS[1], field)
  if not v or cjson.decode(v).runId ~= ARGV[2] then return 0 end
end
redis.call('HDEL', KEYS[2], field)
return redis.call('HDEL', KEYS[1], field)`);

/**
 * KEYS runs, owners, nodes; ARGV node, ttl, own ('1': also this node's own entries). Takes every
 * entry whose owner's claim has lapsed, and returns them (with its own when asked).
 */
const CLAIM = new LuaScript(`${CLOCK}
local owners = redis.call('HGETALL', KEYS[2])
local out = {}
for i = 1, #owners, 2 do
  local rule, owner = owners[i], owners[i + 1]
  local mine = owner == ARGV[1]
  if (mine and ARGV[3] == '1') or (not mine and not alive(owner)) then
    if not mine then redis.call('HSET', KEYS[2], rule, ARGV[1]) end
    local v = redis.call('HGET', KEYS[1], rule)
    if v then
      out[#out + 1] = rule
      out[#out + 1] = v
    end
  end
end
-- nodes whose claim lapsed own nothing now: forget them
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
return out`);

/**
 * Pending runs shared by the nodes of a cluster, in three keys of one hash slot (a script may
 * touch them together, also on Redis Cluster): `runs` (rule id → JSON entry), `owners` (rule id →
 * node) and `nodes` (node → the end of its claim, on Redis' clock).
 *
 * Ownership: a node saving an entry owns it. Every call of a node renews its claim for `ttlMs`,
 * and a timer renews it every ttl/3 meanwhile; `close` drops it, so the others take its entries
 * over at their next `claimOrphans` instead of after the ttl. A node whose claim lapsed (crashed,
 * cut off) loses its entries to the first node that claims: the script moves each to that node
 * atomically, so one node resumes it. A node cut off longer than the ttl and back may still run
 * its own waits: at least once, as the engine's dedup keys of notifications assume.
 *
 * Cost: `load` and `claimOrphans` read the owners of every pending run of the cluster (one slot):
 * fine for thousands of waiting delays, not for millions.
 */
export class RedisPendingRuns implements PendingRuns {
  readonly durable = true;
  readonly #keys: [runs: string, owners: string, nodes: string];
  readonly #nodeId: string;
  readonly #ttl: number;
  readonly #renew: NodeJS.Timeout;

  /** Takes ownership of `client`: `close()` quits it. */
  constructor(
    private readonly client: Redis,
    options: RedisPendingRunsOptions,
  ) {
    const keys = options.keys ?? new RedisKeys();
    const base = keys.single(hashTag('delays', 'all'));
    this.#keys = [`${base}:runs`, `${base}:owners`, `${base}:nodes`];
    this.#nodeId = options.nodeId;
    this.#ttl = Math.ceil(options.ttlMs ?? 30_000);
    // one timer per node, not per entry: the claim must outlive quiet stretches without saves
    this.#renew = setInterval(() => {
      RENEW.run(this.client, this.#keys, [this.#nodeId, this.#ttl]).catch((err: unknown) => options.log.warn({ err }, 'pending runs: claim not renewed; retried'));
    }, Math.max(1, Math.floor(this.#ttl / 3)));
    this.#renew.unref();
  }

  static async connect(url: string, options: RedisPendingRunsOptions & { name: string; observe?: CallObserver; tls?: RedisTlsFiles }): Promise<RedisPendingRuns> {
    return new RedisPendingRuns(await connectRedis(url, { name: options.name, log: options.log, observe: options.observe, tls: options.tls }), options);
  }

  async save(run: PendingRun): Promise<void> {
    // beside the rule's entry (`apart`): as an overdue one kept apart, which its field names already
    if (run.apart) await SAVE.run(this.client, this.#keys, [this.#nodeId, this.#ttl, keyOf(run), JSON.stringify(run), run.dedupBase, '']);
    else await SAVE.run(this.client, this.#keys, [this.#nodeId, this.#ttl, run.ruleId, JSON.stringify(run), run.dedupBase, run.savedAt ?? '']);
  }

  async remove(ruleId: string, runId: string, dedupBase?: string): Promise<void> {
    await REMOVE.run(this.client, this.#keys.slice(0, 2), [ruleId, runId, dedupBase ?? '']);
  }

  async holds(ruleId: string, runId: string, dedupBase?: string): Promise<boolean> {
    const fields = dedupBase === undefined ? [ruleId] : [ruleId, overdueKey(ruleId, dedupBase)];
    const found = await this.client.hmget(this.#keys[0], ...fields);
    return found.some((json) => json !== null && (JSON.parse(json) as PendingRun).runId === runId);
  }

  load(): Promise<PendingRun[]> {
    return this.#claim(true);
  }

  claimOrphans(): Promise<PendingRun[]> {
    return this.#claim(false);
  }

  async close(): Promise<void> {
    clearInterval(this.#renew);
    let answered = false;
    try {
      // the others take this node's entries over at their next claim
      if (this.client.status === 'ready') await this.client.zrem(this.#keys[2], this.#nodeId);
      answered = true;
    } finally {
      // a farewell that timed out (a hung Redis) is not followed by a QUIT that would wait as long
      await closeRedis(this.client, answered ? undefined : 0);
    }
  }

  async #claim(own: boolean): Promise<PendingRun[]> {
    const found = (await CLAIM.run(this.client, this.#keys, [this.#nodeId, this.#ttl, own ? '1' : '0'])) as string[];
    const out: PendingRun[] = [];
    for (let i = 0; i + 1 < found.length; i += 2) {
      const run = JSON.parse(found[i + 1]!) as PendingRun;
      // kept apart by another run's save (its field names it so): resumed as such
      if (found[i]!.includes(' ')) run.apart = true;
      out.push(run);
    }
    return out;
  }
}
