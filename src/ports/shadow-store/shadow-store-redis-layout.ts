/**
 * The Redis hash layout of a hub's shadow (see RedisShadowStore for the fields): the queued-write
 * entries, the Lua scripts that write the hash, and the conversions between fields and devices.
 */
import type { Attrs } from '../../../proto/frames.js';
import { LuaScript } from '../redis.js';
import { emptyDevice, newShadow, type CursorListener, type DeviceShadow, type HubShadow, type SeqCursor } from './shadow-store.js';

/** The reported side of one device as queued: a copy taken at `writeReported`. */
export interface ReportedEntry {
  readonly a: Attrs;
  readonly v: number;
  readonly at: number;
  readonly k: string | undefined;
  /** write number of the oldest write this entry stands for (for `flush`) */
  readonly order: number;
}

export interface CursorEntry {
  readonly boot: string;
  readonly seq: number;
  readonly tag?: string;
  readonly order: number;
  /** told when this cursor is written */
  readonly stored: CursorListener | undefined;
}

/** What is queued for one hub: the latest write per device, the latest cursor. */
export interface HubBatch {
  readonly devices: Map<string, ReportedEntry>;
  cursor: CursorEntry | undefined;
  /** the largest session epoch among the writes (0: unfenced) */
  epoch: number;
}

/**
 * Writes one hub's batch unless a newer session already wrote: the hash's `ep` field holds the
 * largest epoch written. ARGV[1] is the batch's epoch (0: unfenced), the rest field/value pairs.
 */
export const FENCED_HSET = `
local ep = tonumber(ARGV[1])
if ep > 0 then
  local cur = tonumber(redis.call('HGET', KEYS[1], 'ep') or '0')
  if cur > ep then return 0 end
  redis.call('HSET', KEYS[1], 'ep', ARGV[1])
end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
return 1`;
/** The script as an ioredis command: pipelines then load it themselves after a NOSCRIPT. */
export const FENCED_HSET_COMMAND = 'tierFencedHset';
export type FencedPipeline = { [FENCED_HSET_COMMAND]: (key: string, ...args: string[]) => unknown };

/**
 * A session opens: raises the hub's fence `ep` to its epoch (ARGV[1], 0: unfenced) and reads the
 * hash, in one step, so a batch of an older session lands before the read (and is in it) or is
 * refused after it.
 */
export const LOAD_SESSION = new LuaScript(`
local ep = tonumber(ARGV[1])
if ep > 0 and tonumber(redis.call('HGET', KEYS[1], 'ep') or '0') < ep then
  redis.call('HSET', KEYS[1], 'ep', ARGV[1])
end
return redis.call('HGETALL', KEYS[1])`);

/** A flat HGETALL reply of a script as the fields it holds. */
export function fieldsOfReply(reply: unknown): Record<string, string> {
  const out = Object.create(null) as Record<string, string>;
  const flat = reply as string[];
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]!] = flat[i + 1]!;
  return out;
}

/** Empties a hub's shadow hash but for its fence, `ep`, which rises by one. */
export const REMOVE_SHADOW = new LuaScript(`
local ep = tonumber(redis.call('HGET', KEYS[1], 'ep') or '0')
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'ep', tostring(ep + 1))
return 1`);

/**
 * The hash field counting the hub's desired writes: a write checked against the hub's limits
 * compares it, so another desired write of the hub in between (from any node) makes it read again.
 */
export const DESIRED_REVISION = 'dr';

/**
 * Writes a device's desired field (ARGV[3] = ARGV[4]) only if field ARGV[1] still holds the value
 * read before (ARGV[2], `''` = absent), and counts the write in DESIRED_REVISION: optimistic
 * read-modify-write of one device (ARGV[1] its own field) or of the hub (ARGV[1] the revision).
 */
export const SET_DESIRED = new LuaScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur == false then cur = '' end
if cur ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
redis.call('HINCRBY', KEYS[1], '${DESIRED_REVISION}', 1)
return 1`);

/**
 * Empties every device's desired field that holds attributes (its version + 1) and counts the
 * change in DESIRED_REVISION, so a desired write that read before retries. Answers how many.
 */
export const CLEAR_DESIRED = new LuaScript(`
local fields = redis.call('HGETALL', KEYS[1])
local cleared = 0
for i = 1, #fields, 2 do
  local f = fields[i]
  if string.sub(f, 1, 2) == 'd:' then
    local d = cjson.decode(fields[i + 1])
    if next(d.a) ~= nil then
      redis.call('HSET', KEYS[1], f, '{"a":{},"v":' .. string.format('%d', d.v + 1) .. '}')
      cleared = cleared + 1
    end
  end
end
if cleared > 0 then redis.call('HINCRBY', KEYS[1], '${DESIRED_REVISION}', 1) end
return cleared`);

/**
 * Replaces a hub's device list in one step. ARGV: the session's epoch (fenced as a batch, '0':
 * unfenced), full ('1'/'0'), n, then n × (id, kind, has-model '1'/'0', model), then the ids that
 * left. Removing a device removes its four fields. Answers the fields it changed: removed, or set
 * to another value (0: the list was stored as it is); -1, changing nothing, for a stale epoch.
 */
export const WRITE_DEVICES = new LuaScript(`
local key = KEYS[1]
local ep = tonumber(ARGV[1])
if ep > 0 then
  local fence = tonumber(redis.call('HGET', key, 'ep') or '0')
  if fence > ep then return -1 end
  if fence < ep then redis.call('HSET', key, 'ep', ARGV[1]) end
end
local n = tonumber(ARGV[3])
local keep = {}
for i = 0, n - 1 do keep[ARGV[4 + i * 4]] = true end
local del = {}
if ARGV[2] == '1' then
  for _, f in ipairs(redis.call('HKEYS', key)) do
    if string.sub(f, 2, 2) == ':' and not keep[string.sub(f, 3)] then del[#del + 1] = f end
  end
end
for i = 4 + n * 4, #ARGV do
  local id = ARGV[i]
  del[#del + 1] = 'r:' .. id
  del[#del + 1] = 'd:' .. id
  del[#del + 1] = 'k:' .. id
  del[#del + 1] = 'm:' .. id
end
local changed = 0
for i = 1, #del, 500 do changed = changed + redis.call('HDEL', key, unpack(del, i, math.min(i + 499, #del))) end
for i = 0, n - 1 do
  local b = 4 + i * 4
  if redis.call('HGET', key, 'k:' .. ARGV[b]) ~= ARGV[b + 1] then
    redis.call('HSET', key, 'k:' .. ARGV[b], ARGV[b + 1])
    changed = changed + 1
  end
  if ARGV[b + 2] == '1' and redis.call('HGET', key, 'm:' .. ARGV[b]) ~= ARGV[b + 3] then
    redis.call('HSET', key, 'm:' .. ARGV[b], ARGV[b + 3])
    changed = changed + 1
  end
end
return changed`);

/** The HSET fields of one hub batch. */
export function fieldsOf(batch: HubBatch): Map<string, string> {
  const fields = new Map<string, string>();
  for (const [id, e] of batch.devices) {
    fields.set(`r:${id}`, JSON.stringify({ a: e.a, v: e.v, at: e.at }));
    if (e.k !== undefined) fields.set(`k:${id}`, e.k);
  }
  if (batch.cursor) fields.set('cursor', JSON.stringify(plainCursor(batch.cursor)));
  return fields;
}

export function applyField(device: DeviceShadow, type: string, raw: string): void {
  switch (type) {
    case 'r': {
      const r = JSON.parse(raw) as { a: Attrs; v: number; at: number };
      device.reported = r.a;
      device.reportedVersion = r.v;
      device.reportedAt = r.at;
      return;
    }
    case 'd': {
      const d = JSON.parse(raw) as { a: Attrs; v: number };
      device.desired = d.a;
      device.desiredVersion = d.v;
      return;
    }
    case 'k':
      device.kind = raw;
      return;
    case 'm':
      device.model = raw;
      return;
  }
}

export function applyReported(device: DeviceShadow, e: ReportedEntry): void {
  device.reported = { ...e.a };
  device.reportedVersion = e.v;
  device.reportedAt = e.at;
  if (e.k !== undefined) device.kind = e.k;
}

/** Writes waiting in a set of hub batches: one per device plus one per cursor. */
export function countWrites(m: Map<string, HubBatch>): number {
  let n = 0;
  for (const b of m.values()) n += b.devices.size + (b.cursor ? 1 : 0);
  return n;
}

/** A hub's shadow from its hash's fields, this process's queued reports over them. */
export function shadowOf(fields: Record<string, string>, overlay: Array<[string, ReportedEntry]>): HubShadow {
  const out = newShadow();
  for (const field in fields) {
    if (field.charAt(1) !== ':') continue; // the cursor and the fencing epoch `ep`
    const device = (out[field.slice(2)] ??= emptyDevice());
    applyField(device, field.charAt(0), fields[field]!);
  }
  for (const [id, e] of overlay) applyReported((out[id] ??= emptyDevice()), e);
  return out;
}

/** The cursor field's value, or null. */
export function cursorOf(raw: string | null): SeqCursor | null {
  if (raw === null) return null;
  return plainCursor(JSON.parse(raw) as SeqCursor);
}

/** A cursor's stored fields alone (a queued one carries its listener and order besides). */
export function plainCursor(c: SeqCursor): SeqCursor {
  return typeof c.tag === 'string' ? { boot: c.boot, seq: c.seq, tag: c.tag } : { boot: c.boot, seq: c.seq };
}
