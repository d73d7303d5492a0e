/**
 * The Redis layout of RedisRuleStore (the keys are described there): the Lua scripts that write
 * one home atomically with its version bump and change notice, and the stored items' fixed header.
 */
import { LuaScript } from '../redis.js';
import type { Rule, RuleSpec, Scene, SceneSpec } from '../../rules/model.js';

/** Lua: Redis's clock in ms, the one clock every node shares (stamps, cursor bound, version floor). */
const NOW_LUA = `
local function nowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`;

/**
 * Lua prelude of every write: moves the home's version to max(version + 1, Redis clock in ms) and
 * publishes `<version>:<homeId>` on the change channel, in the same script as the write. The
 * clock floor keeps versions growing should Redis lose the counter (as the directory's epochs);
 * workers key compiled rules by (home, version), so a version must never be reused.
 * KEYS[1] is the home hash; ARGV[1] the channel, ARGV[2] the home id.
 */
const BUMP = `${NOW_LUA}
local function bump()
  local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0') + 1
  local floor = nowMs()
  if v < floor then v = floor end
  local s = string.format('%d', v)
  redis.call('HSET', KEYS[1], 'v', s)
  redis.call('PUBLISH', ARGV[1], s .. ':' .. ARGV[2])
  return s
end
`;

/**
 * Stored items are JSON that starts with a fixed header, `{"version":N,"createdAt":N,
 * "updatedAt":N,"enabled":B,` then `"id":…,"homeId":…` and the spec's other fields, so scripts can
 * read and restamp the header with a pattern and never re-encode the spec (Lua's cjson would turn
 * `[]` into `{}` and round large numbers).
 */
const HEADER = `^{"version":(%d+),"createdAt":(%d+),"updatedAt":(%d+),"enabled":(%a+),(.*)$`;
const HEADER_LUA = `
local function stampOf(given)
  if given == '' then return string.format('%d', nowMs()) end
  return given
end
local function header(version, createdAt, updatedAt, enabled)
  return '{"version":' .. version .. ',"createdAt":' .. createdAt .. ',"updatedAt":' .. updatedAt .. ',"enabled":' .. enabled .. ','
end
`;

/**
 * KEYS: home, items, cron set. ARGV: channel, homeId, id, stored json, cron ('1', '0' or '' for
 * scenes), the home's maximum of such items ('' for none), createdAt/updatedAt ('' for Redis's
 * clock, else the header's are kept). Returns [home version, cron rules of the home, stored json],
 * nil if the id exists (never overwritten: the caller draws a new id), or -1 (CREATE_FULL) when
 * the home holds its maximum.
 */
export const CREATE_FULL = -1;
export const CREATE = new LuaScript(`${BUMP}${HEADER_LUA}
if ARGV[6] ~= '' and redis.call('HLEN', KEYS[2]) >= tonumber(ARGV[6]) then return -1 end
local json = ARGV[4]
if ARGV[7] == '' then
  local v, c, u, e, rest = string.match(json, '${HEADER}')
  if not v then return redis.error_reply('corrupt item ' .. ARGV[3]) end
  local now = stampOf('')
  json = header(v, now, now, e) .. rest
end
if redis.call('HSETNX', KEYS[2], ARGV[3], json) == 0 then return false end
if ARGV[5] == '1' then redis.call('SADD', KEYS[3], ARGV[3]) end
return {bump(), redis.call('SCARD', KEYS[3]), json}`);

/**
 * KEYS: home, items, cron set. ARGV: channel, homeId, id, updatedAt ('' for Redis's clock), enabled,
 * body (the JSON after the header), cron ('1', '0', ''). The version moves by one, createdAt stays. Returns [stored json,
 * home version, cron rules of the home], or nil when the item does not exist.
 */
export const UPDATE = new LuaScript(`${BUMP}${HEADER_LUA}
local old = redis.call('HGET', KEYS[2], ARGV[3])
if not old then return false end
local v, c = string.match(old, '${HEADER}')
if not v then return redis.error_reply('corrupt item ' .. ARGV[3]) end
local json = header(string.format('%d', tonumber(v) + 1), c, stampOf(ARGV[4]), ARGV[5]) .. ARGV[6]
redis.call('HSET', KEYS[2], ARGV[3], json)
if ARGV[7] == '1' then redis.call('SADD', KEYS[3], ARGV[3]) elseif ARGV[7] == '0' then redis.call('SREM', KEYS[3], ARGV[3]) end
return {json, bump(), redis.call('SCARD', KEYS[3])}`);

/**
 * KEYS: home, items. ARGV: channel, homeId, id, updatedAt ('' for Redis's clock), enabled. Returns [stored json] when nothing
 * changed, [stored json, home version] when it did, nil when the item does not exist.
 */
export const SET_ENABLED = new LuaScript(`${BUMP}${HEADER_LUA}
local old = redis.call('HGET', KEYS[2], ARGV[3])
if not old then return false end
local v, c, u, e, rest = string.match(old, '${HEADER}')
if not v then return redis.error_reply('corrupt item ' .. ARGV[3]) end
if e == ARGV[5] then return {old} end
local json = header(string.format('%d', tonumber(v) + 1), c, stampOf(ARGV[4]), ARGV[5]) .. rest
redis.call('HSET', KEYS[2], ARGV[3], json)
return {json, bump()}`);

/** KEYS: home, items, cron set. ARGV: channel, homeId, id. Returns [home version, was a cron rule, cron rules left], or nil. */
export const DELETE = new LuaScript(`${BUMP}
if redis.call('HDEL', KEYS[2], ARGV[3]) == 0 then return false end
local was = redis.call('SREM', KEYS[3], ARGV[3])
return {bump(), was, redis.call('SCARD', KEYS[3])}`);

/** KEYS: home. ARGV: channel, homeId, settings json. Returns the home version. */
export const PUT_SETTINGS = new LuaScript(`${BUMP}
redis.call('HSET', KEYS[1], 'settings', ARGV[3])
return bump()`);

/** KEYS: home, rules, cron set. Returns [settings json or '', the stored cron rules…]: one home's consistent view. */
export const SCHEDULED = new LuaScript(`
local out = {redis.call('HGET', KEYS[1], 'settings') or ''}
local ids = redis.call('SMEMBERS', KEYS[3])
for i = 1, #ids, 500 do
  local got = redis.call('HMGET', KEYS[2], unpack(ids, i, math.min(i + 499, #ids)))
  for _, r in ipairs(got) do if r then out[#out + 1] = r end end
end
return out`);

/**
 * KEYS: cursor. ARGV: at, slack (ms). Compare-and-set to a larger instant; a deleted rule's
 * tombstone refuses, and so does an instant later than Redis's clock + slack: a node whose clock
 * runs ahead can neither fire early nor move the shared cursor into the future.
 */
export const ADVANCE = new LuaScript(`${NOW_LUA}
if tonumber(ARGV[1]) > nowMs() + tonumber(ARGV[2]) then return 0 end
local cur = redis.call('GET', KEYS[1])
if cur == 'deleted' then return 0 end
if cur and tonumber(cur) >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
return 1`);

/** The stored header (see HEADER). */
export function stamp(version: number, createdAt: string, updatedAt: string, enabled: boolean): string {
  return `{"version":${version},"createdAt":${createdAt},"updatedAt":${updatedAt},"enabled":${enabled},`;
}

/** The JSON after the header: id, home and the spec without the fields the store owns. */
export function body(id: string, homeId: string, spec: RuleSpec | SceneSpec): string {
  const { version: _v, createdAt: _c, updatedAt: _u, enabled: _e, id: _i, homeId: _h, ...rest } = spec as (RuleSpec | SceneSpec) & Partial<Rule | Scene>;
  return JSON.stringify({ id, homeId, ...rest }).slice(1);
}
