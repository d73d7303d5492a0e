/**
 * The Redis history's rules marks (EvaluatedMarks) for cluster mode. Several nodes evaluate events
 * of one home (its hubs on different nodes), so a mark is kept per node and home: hash
 * `<prefix>{n:<node>}:rules-marks`, home → "mark top": the node appended the home's events up to
 * offset `top` and its rules are done with its own events through `mark`. A home whose node is done
 * with all it appended has no field: the hash holds only what a death would lose. Written by the
 * history's append script (MARKS below), never by a call of its own per event: a mark past an event
 * a rule was evaluated on with the next append (or within NOTE_MS when none goes out), the others
 * (events no rule listens to: most reports) with the liveness renewal every ttl/3, so that a report
 * costs its home's field one write, not a delete and a write again. Zset `<prefix>rules-marks-nodes`
 * (node → alive until, on Redis' clock) tells a dead node: the first node to claim takes its fields
 * into its own hash as taken fields, `~<home>` → the dead nodes' spans (so its own death would
 * replay them again), and replays them (`claimOrphans`). A taken field is not its own mark: its live
 * events never move it, only the end of each claim's replay removes that claim's spans (`replayed`
 * with the claim's token; reviews "kill9b" F3, "diff28" F3-F5).
 */
import type { Redis } from 'ioredis';
import type { Logger } from '../../log/logger.js';
import { LuaScript, type RedisKeys } from '../redis.js';
import type { EvaluatedMarks, UnevaluatedEntry, UnevaluatedHome } from './history.js';

/** ms within which a mark past an event a rule was evaluated on goes to Redis when no append carries it */
const NOTE_MS = 100;

/** Redis' clock in ms, inside a script. */
const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/**
 * The marks noted: KEYS[1] the node's marks hash, KEYS[2] the nodes zset; ARGV[base] the node ('':
 * marks off), base+1 its ttl (ms), base+2 the count m, then m pairs home, mark. Renews the node's
 * liveness; a mark only moves forward, and a field whose mark reaches its top is dropped. Leaves
 * `a` at the ARGV index after the pairs. Needs `now`.
 */
export const MARKS = (base: number) => `
local a = ${base} + 3
local node = ARGV[${base}]
local function range(v)
  local m, top = string.match(v, '^(%d+) (%d+)$')
  return tonumber(m), tonumber(top)
end
if node ~= '' then
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[${base} + 1]), node)
  for j = 1, tonumber(ARGV[${base} + 2]) do
    local home, m = ARGV[a], tonumber(ARGV[a + 1])
    a = a + 2
    local v = redis.call('HGET', KEYS[1], home)
    if v then
      local old, top = range(v)
      if m >= top then redis.call('HDEL', KEYS[1], home)
      elseif m > old then redis.call('HSET', KEYS[1], home, m .. ' ' .. top) end
    end
  end
end`;

/**
 * For the append script, after a home's events are added: `first` the offset before them, `top` the
 * newest. The node's field of the home spans them, its mark kept (or just below them if none).
 */
export const SPAN = `if node ~= '' and top > first then
  local v = redis.call('HGET', KEYS[1], home)
  local m = first
  if v then m = range(v) end
  redis.call('HSET', KEYS[1], home, m .. ' ' .. top)
end`;

/** KEYS marks hash, nodes zset; ARGV node, ttl, m, pairs. */
const NOTE = new LuaScript(`${NOW}
${MARKS(1)}
return 1`);

/**
 * A clean stop owing a replay (`owe`): the marks noted, as NOTE, then the node's liveness lapsed at
 * once, so the node that claims its hash (itself restarted under its id, or another at its next
 * orphan check) replays past them.
 */
const LAPSE = new LuaScript(`${NOW}
${MARKS(1)}
if node ~= '' then redis.call('ZADD', KEYS[2], now - 1, node) end
return 1`);

/** A taken field's name: `~` is in no id (ID_PATTERN), so it never meets a home's own field. */
const TAKEN = '~';

/** Spans a taken field keeps apart before it folds them into one (from the lowest mark to the highest top). */
const MAX_SPANS = 32;

/**
 * KEYS nodes zset, own marks hash; ARGV node, ttl, own ('1': also this node's fields), and the
 * marks key of a node as the text before and after its id. Takes the fields of every node whose
 * liveness lapsed (their own and those they had taken) into the node's hash as taken fields, each
 * dead node's spans added to the home's list (`m t,m t`: an event one of them owes, not one
 * evaluated live between them, is replayed; review "diff28" F3), forgets those nodes, and answers
 * field, spans: the ones taken (and its own when asked).
 */
const CLAIM = new LuaScript(`${NOW}
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local out = {}
if ARGV[3] == '1' then out = redis.call('HGETALL', KEYS[2]) end
for _, n in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
  if n ~= ARGV[1] then
    local key = ARGV[4] .. n .. ARGV[5]
    local theirs = redis.call('HGETALL', key)
    for i = 1, #theirs, 2 do
      local field, v = theirs[i], theirs[i + 1]
      if string.sub(field, 1, 1) ~= '${TAKEN}' then field = '${TAKEN}' .. field end
      local mine = redis.call('HGET', KEYS[2], field)
      local list = v
      if mine then list = mine .. ',' .. v end
      local _, commas = string.gsub(list, ',', ',')
      if commas >= ${MAX_SPANS} then
        local lo, hi
        for m, t in string.gmatch(list, '(%d+) (%d+)') do
          m, t = tonumber(m), tonumber(t)
          if not lo or m < lo then lo = m end
          if not hi or t > hi then hi = t end
        end
        list = lo .. ' ' .. hi
      end
      redis.call('HSET', KEYS[2], field, list)
      out[#out + 1] = field
      out[#out + 1] = v
    end
    redis.call('DEL', key)
    redis.call('ZREM', KEYS[1], n)
  end
end
return out`);

/**
 * KEYS marks hash; ARGV a taken field, then the spans replayed: each removed from the field's list
 * once (a claim since added its own), the field gone once none is left. A list folded since
 * (MAX_SPANS) no longer has them: kept, for the next owner to replay again.
 */
const REPLAYED = new LuaScript(`local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return 1 end
local left = {}
for span in string.gmatch(v, '[^,]+') do left[#left + 1] = span end
for j = 2, #ARGV do
  for k = 1, #left do
    if left[k] == ARGV[j] then
      table.remove(left, k)
      break
    end
  end
end
if #left == 0 then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], table.concat(left, ',')) end
return 1`);

/**
 * KEYS stream, meta of a home; ARGV mark, top. Answers offset, stored at (ms, from the entry's id),
 * bytes for each entry still held with mark < offset ≤ top, oldest first.
 */
const STORED = new LuaScript(`local newest = tonumber(redis.call('HGET', KEYS[2], 'o') or '0')
local since = tonumber(ARGV[1])
local upper = math.min(tonumber(ARGV[2]), newest)
if upper <= since then return {} end
local rows = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', newest - since)
local out = {}
for i = #rows, 1, -1 do
  local o = tonumber(rows[i][2][2])
  if o > since and o <= upper then
    out[#out + 1] = o
    out[#out + 1] = tonumber(string.match(rows[i][1], '^(%d+)'))
    out[#out + 1] = rows[i][2][4]
  end
end
return out`);

export interface RedisMarksOptions {
  /** this node's name: whose marks these are */
  nodeId: string;
  /** a node that has not renewed its liveness for this long is dead: its marks are claimed (ms) */
  ttlMs: number;
  log: Logger;
}

export class RedisEvaluatedMarks implements EvaluatedMarks {
  /** the newest mark noted per home past an event a rule was evaluated on, for the next script call */
  #noted = new Map<string, number>();
  /** the newest mark noted per home past events no rule listens to, for the next renewal */
  #lazy = new Map<string, number>();
  readonly #hash: string;
  readonly #nodes: string;
  readonly #ttl: number;
  readonly #renew: NodeJS.Timeout;
  #soon: NodeJS.Timeout | null = null;
  #started = false;
  /** the rules stop with events they are not done with (`owe`): the hash is kept at close */
  #owed = false;
  /** what each claim took (by the token its homes carry, `taken`): the home and its spans, until the replay of them is through */
  #taken = new Map<string, { homeId: string; spans: string[] }>();
  /** tokens whose spans the last removal did not reach Redis with: sent again with the renewal */
  #unremoved = new Set<string>();
  #claims = 0;

  constructor(
    private readonly client: Redis,
    private readonly keys: RedisKeys,
    private readonly options: RedisMarksOptions,
  ) {
    this.#hash = keys.node(options.nodeId, 'rules-marks');
    this.#nodes = keys.single('rules-marks-nodes');
    this.#ttl = Math.ceil(options.ttlMs);
    // one timer per node: liveness through quiet stretches, and the marks past events no rule listens to
    this.#renew = setInterval(() => this.#send(true), Math.max(1, Math.floor(this.#ttl / 3)));
    this.#renew.unref();
  }

  /** The keys the append script's MARKS and SPAN use: the node's hash, the nodes zset. */
  get scriptKeys(): [string, string] {
    return [this.#hash, this.#nodes];
  }

  note(homeId: string, offset: number, evaluated: boolean): void {
    const into = evaluated ? this.#noted : this.#lazy;
    if (!((into.get(homeId) ?? -1) >= offset)) into.set(homeId, offset);
    if (evaluated && !this.#soon) {
      this.#soon = setTimeout(() => {
        this.#soon = null;
        this.#send(false);
      }, NOTE_MS);
      this.#soon.unref();
    }
  }

  /**
   * The ARGV of MARKS for a script call, taking the marks noted past events a rule was evaluated on
   * (with `all`, the others too; a home's lazy mark goes with its other one anyway, the higher);
   * `failed` puts them back when the call did not reach Redis.
   */
  take(all = false): { args: Array<string | number>; failed(): void } {
    const noted = this.#noted;
    this.#noted = new Map();
    if (all) {
      for (const [homeId, offset] of this.#lazy) if (!((noted.get(homeId) ?? -1) >= offset)) noted.set(homeId, offset);
      this.#lazy = new Map();
    } else {
      for (const [homeId, mark] of noted) {
        const offset = this.#lazy.get(homeId);
        if (offset === undefined) continue;
        this.#lazy.delete(homeId);
        if (offset > mark) noted.set(homeId, offset);
      }
    }
    const args: Array<string | number> = [this.options.nodeId, this.#ttl, noted.size];
    for (const [homeId, offset] of noted) args.push(homeId, offset);
    return { args, failed: () => noted.forEach((offset, homeId) => this.note(homeId, offset, false)) };
  }

  /** At start: this node's own marks left by its last process (none after a clean stop) and those of dead nodes. */
  async unevaluated(): Promise<UnevaluatedHome[]> {
    if (this.#started) return [];
    this.#started = true;
    return this.#claim(true);
  }

  /** The marks of nodes whose liveness lapsed, taken by this node (at most one node gets each): their events past them. */
  claimOrphans(): Promise<UnevaluatedHome[]> {
    return this.#claim(false);
  }

  /**
   * The replay of what a claim took for the home (`taken`, its token) is through, the marks of its
   * runs noted: its spans leave the home's taken field (the field with them once none is left).
   * Until Redis says so they stay this node's to remove (again with the renewal) and its close
   * leaves its marks lapsed, so a death before then replays them again, never loses them.
   */
  replayed(_homeId: string, taken: string): void {
    const entry = this.#taken.get(taken);
    if (!entry) return;
    REPLAYED.run(this.client, [this.#hash], [TAKEN + entry.homeId, ...entry.spans]).then(
      () => {
        this.#taken.delete(taken);
        this.#unremoved.delete(taken);
      },
      (err: unknown) => {
        if (!this.#unremoved.has(taken)) this.options.log.warn({ err, homeId: entry.homeId }, 'rules marks: a replayed field not removed; tried again with the renewal');
        this.#unremoved.add(taken);
      },
    );
  }

  owe(): Promise<void> {
    this.#owed = true;
    return Promise.resolve();
  }

  /**
   * A clean stop: the node's rules are done with what it appended, so it leaves no marks to replay;
   * owing (`owe`), or with a dead node's events taken and not replayed, it leaves them lapsed, for
   * the first node to claim them.
   */
  async close(): Promise<void> {
    clearInterval(this.#renew);
    if (this.#soon) clearTimeout(this.#soon);
    if (this.client.status !== 'ready') return;
    if (this.#owed || this.#taken.size > 0) await LAPSE.run(this.client, this.scriptKeys, this.take(true).args);
    else await this.client.multi().del(this.#hash).zrem(this.#nodes, this.options.nodeId).exec();
  }

  #send(all: boolean): void {
    if (all) for (const taken of this.#unremoved) this.replayed('', taken);
    const { args, failed } = this.take(all);
    NOTE.run(this.client, this.scriptKeys, args).catch((err: unknown) => {
      failed();
      this.options.log.warn({ err }, 'rules marks: not written; retried');
    });
  }

  async #claim(own: boolean): Promise<UnevaluatedHome[]> {
    const [before, after] = this.keys.node('\u0000', 'rules-marks').split('\u0000') as [string, string];
    const found = (await CLAIM.run(this.client, [this.#nodes, this.#hash], [this.options.nodeId, this.#ttl, own ? '1' : '0', before, after])) as string[];
    // a home in several of them: the events in any of its spans, each once
    const ranges = new Map<string, Array<[number, number]>>();
    const takenSpans = new Map<string, string[]>();
    for (let i = 0; i < found.length; i += 2) {
      const field = found[i]!;
      const homeId = field.startsWith(TAKEN) ? field.slice(TAKEN.length) : field;
      const spans = found[i + 1]!.split(',');
      if (homeId !== field) takenSpans.set(homeId, [...(takenSpans.get(homeId) ?? []), ...spans]);
      const list = ranges.get(homeId) ?? [];
      for (const span of spans) list.push(span.split(' ').map(Number) as [number, number]);
      ranges.set(homeId, list);
    }
    const out: UnevaluatedHome[] = [];
    for (const [homeId, spans] of ranges) {
      const spansTaken = takenSpans.get(homeId);
      // the claim's token, set before the read below: a close meanwhile leaves the marks lapsed
      const taken = spansTaken === undefined ? undefined : `${++this.#claims}`;
      if (taken !== undefined) this.#taken.set(taken, { homeId, spans: spansTaken! });
      const top = Math.max(...spans.map((r) => r[1]));
      const all = await this.#stored(homeId, Math.min(...spans.map((r) => r[0])), top);
      const entries = spans.length === 1 ? all : all.filter((e) => spans.some(([m, t]) => e.offset > m && e.offset <= t));
      if (entries.length > 0) {
        out.push(taken === undefined ? { homeId, entries } : { homeId, entries, taken });
        continue;
      }
      // none left (trimmed, expired): nothing to replay, the fields go
      this.note(homeId, top, false);
      if (taken !== undefined) this.replayed(homeId, taken);
    }
    return out;
  }

  async #stored(homeId: string, mark: number, top: number): Promise<UnevaluatedEntry[]> {
    const reply = (await STORED.runBuffer(this.client, [this.keys.home(homeId, 'hist'), this.keys.home(homeId, 'hist-meta')], [mark, top])) as Array<number | Buffer>;
    const entries: UnevaluatedEntry[] = [];
    for (let i = 0; i < reply.length; i += 3) entries.push({ offset: reply[i] as number, at: reply[i + 1] as number, data: reply[i + 2] as Buffer });
    return entries;
  }
}
