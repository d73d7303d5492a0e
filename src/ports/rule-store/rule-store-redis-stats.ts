/**
 * Run statistics of the Redis rule store (see RedisRuleStore): a hash per home,
 * `{home:H}:rule-stats`, with fields `<ruleId>:<counter>` added to by HINCRBY in one script per
 * home and batch, and `<ruleId>:lastRunAt` etc. kept when later.
 */
import type { Redis } from 'ioredis';
import { LuaScript } from '../redis.js';
import { noRunStats, RUN_COUNTERS, type RuleRunDelta, type RuleRunStats } from './rule-store.js';

/** the fields of one rule in `{home:H}:rule-stats`, each `<ruleId>:<field>` */
export const STATS_FIELDS = [...RUN_COUNTERS, 'lastEvaluatedAt', 'lastRunAt', 'lastErrorAt', 'lastError'];

/**
 * KEYS: rules hash, statistics hash (one home). ARGV: per rule 12 values: id, the 7 counts of
 * RUN_COUNTERS in order, lastEvaluatedAt, lastRunAt, lastError at, lastError message ('' when
 * absent). Rules no longer in the rules hash are skipped. Answers the number of rules added to.
 */
const ADD_RUN_STATS = new LuaScript(`
local names = {'evaluated', 'triggered', 'matched', 'suppressed', 'actionsRun', 'errors', 'loopStops'}
local added = 0
local function later(id, field, v)
  if v == '' then return false end
  local cur = redis.call('HGET', KEYS[2], id .. ':' .. field)
  if cur and tonumber(cur) >= tonumber(v) then return false end
  redis.call('HSET', KEYS[2], id .. ':' .. field, v)
  return true
end
for i = 1, #ARGV, 12 do
  local id = ARGV[i]
  if redis.call('HEXISTS', KEYS[1], id) == 1 then
    for j = 1, 7 do
      local n = tonumber(ARGV[i + j])
      if n ~= 0 then redis.call('HINCRBY', KEYS[2], id .. ':' .. names[j], n) end
    end
    later(id, 'lastEvaluatedAt', ARGV[i + 8])
    later(id, 'lastRunAt', ARGV[i + 9])
    if later(id, 'lastErrorAt', ARGV[i + 10]) then redis.call('HSET', KEYS[2], id .. ':lastError', ARGV[i + 11]) end
    added = added + 1
  end
end
return added`);

/** `keysOf(homeId)`: the home's rules hash and statistics hash (one slot). */
export async function addRunStats(client: Redis, keysOf: (homeId: string) => string[], deltas: readonly RuleRunDelta[]): Promise<void> {
  const byHome = new Map<string, Array<string | number>>();
  for (const d of deltas) {
    let args = byHome.get(d.homeId);
    if (!args) byHome.set(d.homeId, (args = []));
    args.push(d.ruleId, ...RUN_COUNTERS.map((c) => d.counts[c] ?? 0), d.lastEvaluatedAt ?? '', d.lastRunAt ?? '', d.lastError?.at ?? '', d.lastError?.message ?? '');
  }
  // one script per home (its own slot): the counts of a home's rules are added atomically
  await Promise.all([...byHome].map(([homeId, args]) => ADD_RUN_STATS.run(client, keysOf(homeId), args)));
}

export async function getRunStats(client: Redis, key: string, ruleIds: readonly string[]): Promise<Map<string, RuleRunStats>> {
  const out = new Map<string, RuleRunStats>();
  if (ruleIds.length === 0) return out;
  const got = await client.hmget(key, ...ruleIds.flatMap((id) => STATS_FIELDS.map((f) => `${id}:${f}`)));
  const n = RUN_COUNTERS.length;
  ruleIds.forEach((id, i) => {
    const v = got.slice(i * STATS_FIELDS.length, (i + 1) * STATS_FIELDS.length);
    const s = noRunStats();
    RUN_COUNTERS.forEach((c, j) => (s[c] = Number(v[j] ?? 0)));
    if (v[n]) s.lastEvaluatedAt = Number(v[n]);
    if (v[n + 1]) s.lastRunAt = Number(v[n + 1]);
    if (v[n + 2]) s.lastError = { at: Number(v[n + 2]), message: v[n + 3] ?? '' };
    out.set(id, s);
  });
  return out;
}
