/**
 * The Redis history's index (history-redis.ts): every INDEX_EVERY-th offset's stream id, kept in the
 * home's meta hash as `i:<offset>` (the one a retention and two blocks back removed as it is added).
 * A read from far back starts there instead of walking from the newest entry, which made an app's
 * catch-up cost Redis the square of the events it missed (100,000 events: 29 s of Redis; one read at
 * 1,000,000 held it 4.8 s: review "cluster-cost").
 */

export const INDEX_EVERY = 256;

/** Lua, in the append script after each XADD: notes the id of every INDEX_EVERY-th offset. */
export const INDEX = (meta: string, offset: string, id: string, maxLen: string) => `if ${offset} % ${INDEX_EVERY} == 0 then
        redis.call('HSET', ${meta}, 'i:' .. ${offset}, ${id})
        redis.call('HDEL', ${meta}, 'i:' .. (${offset} - ${INDEX_EVERY} * (math.floor(tonumber(${maxLen}) / ${INDEX_EVERY}) + 2)))
      end`;

/**
 * Lua, in the read script once `since`, `upper`, `top` and `e` are known (KEYS: stream, meta; ARGV[6]
 * the max age): answers the page from the indexed entry when the offsets run on from it, or says
 * the entries from since + 1 are trimmed; falls through otherwise (the read from the newest back).
 * `now`: the Lua that sets `now` (Redis's clock, ms).
 */
export const READ_FROM_INDEX = (now: string) => `-- from the indexed entry at or before since + 1, when its offsets run on from it (checked): a page
-- costs about itself; else from the newest entry back, as it was
local base = math.floor((since + 1) / ${INDEX_EVERY}) * ${INDEX_EVERY}
local from = base == 0 and '-' or redis.call('HGET', KEYS[2], 'i:' .. base)
if from then
  local rows = redis.call('XRANGE', KEYS[1], from, '+', 'COUNT', since + 1 - base + upper - since)
  local j = rows[1] and since + 2 - tonumber(rows[1][2][2]) or 0
  if j >= 1 and rows[j + upper - since - 1] and tonumber(rows[j][2][2]) == since + 1 and tonumber(rows[j + upper - since - 1][2][2]) == upper then
    ${now}
    if tonumber(string.match(rows[j][1], '^(%d+)')) < now - tonumber(ARGV[6]) then return {'too_old', e, top} end
    local out = {'ok', e, top}
    for i = j, j + upper - since - 1 do out[#out + 1] = rows[i][2][4] end
    return out
  end
  if j < 1 and rows[1] and tonumber(rows[1][2][2]) > since + 1 and tonumber(rows[1][2][2]) <= top then
    -- the entries from since + 1 are trimmed (the stream runs on without holes up to top)
    return {'too_old', e, top}
  end
end`;
