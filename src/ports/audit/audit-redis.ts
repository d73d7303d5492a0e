import type { Redis } from 'ioredis';
import type { Logger } from '../../log/logger.js';
import { LuaScript, RedisKeys } from '../redis.js';
import { bucketOf } from './audit-buckets.js';
import { AUDIT_SCAN_MAX, entryOf, erasureOf, matches, type AuditEntry, type AuditLog, type AuditPage, type AuditQuery, type AuditRetention } from './audit.js';

/**
 * The keys both scripts start with: the trail, the buckets' counts (a sorted set of the buckets'
 * stream keys), their last writes (ditto, by time), and the sum of the counts (the entries the
 * buckets hold: an entry written before buckets is in none, trimmed by age and the backstop
 * alone). `setCount` keeps the sum with each count.
 */
const BUCKET_COUNTS = `local function setCount(k, n)
  local old = tonumber(redis.call('ZSCORE', KEYS[2], k) or 0)
  if n > 0 then redis.call('ZADD', KEYS[2], n, k) else redis.call('ZREM', KEYS[2], k) end
  redis.call('INCRBY', KEYS[4], n - old)
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`;

/**
 * The entries of one turn. KEYS: as BUCKET_COUNTS, then the home indexes and bucket streams.
 * ARGV: the trail's backstop length, max age ms, count, then per entry the index of its home key
 * in KEYS (0: none), of its bucket key, and the entry as JSON. The home index and the bucket get
 * the trail's id for the entry (ids grow in the trail, so in every index too). The MINID stays a
 * number: `tostring` would write 1.7e+12, not a stream id. Answers the buckets' sum.
 */
const APPEND = new LuaScript(`${BUCKET_COUNTS}local backstop, maxAge, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local minId = math.max(0, now - maxAge)
local homes, buckets = {}, {}
for i = 1, n do
  local h, b, e = tonumber(ARGV[1 + 3 * i]), tonumber(ARGV[2 + 3 * i]), ARGV[3 + 3 * i]
  local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', backstop, '*', 'e', e)
  if h > 0 then
    redis.pcall('XADD', KEYS[h], 'MAXLEN', '~', backstop, id, 'x', '')
    homes[h] = true
  end
  redis.call('XADD', KEYS[b], id, 'x', '')
  buckets[b] = true
end
redis.call('XTRIM', KEYS[1], 'MINID', minId)
for h in pairs(homes) do
  redis.call('XTRIM', KEYS[h], 'MINID', minId)
  redis.call('PEXPIRE', KEYS[h], maxAge)
end
for b in pairs(buckets) do
  redis.call('XTRIM', KEYS[b], 'MINID', minId)
  redis.call('PEXPIRE', KEYS[b], maxAge)
  setCount(KEYS[b], redis.call('XLEN', KEYS[b]))
  redis.call('ZADD', KEYS[3], now, KEYS[b])
end
-- a bucket idle past the age has expired with its entries: forgotten, a few a call
for _, k in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', minId, 'LIMIT', 0, 32)) do
  setCount(k, 0)
  redis.call('ZREM', KEYS[3], k)
end
return tonumber(redis.call('GET', KEYS[4]) or 0)`);

/**
 * Fair eviction (audit-buckets.ts) from the buckets the node read as the largest. KEYS: as
 * BUCKET_COUNTS, then those buckets' streams. ARGV: max entries, max age ms, the count of the next
 * largest bucket not given (0: none), most entries to remove. The given buckets' counts are first
 * read again (entries past the age leave a stream unseen); then each step removes the oldest
 * entry of the largest given bucket, while it holds at least as many as that next one, until the
 * sum is within max entries. Answers how many are still to remove (the node reads the largest
 * again).
 */
const EVICT = new LuaScript(`${BUCKET_COUNTS}local maxLen, minId, floor, budget = tonumber(ARGV[1]), math.max(0, now - tonumber(ARGV[2])), tonumber(ARGV[3]), tonumber(ARGV[4])
local size = {}
for i = 5, #KEYS do
  redis.call('XTRIM', KEYS[i], 'MINID', minId)
  size[i] = redis.call('XLEN', KEYS[i])
  setCount(KEYS[i], size[i])
end
local over = math.min(tonumber(redis.call('GET', KEYS[4]) or 0) - maxLen, budget)
while over > 0 do
  local top, most = nil, math.max(floor, 1) - 1
  for i = 5, #KEYS do
    if size[i] > most then top, most = i, size[i] end
  end
  if not top then break end
  local id = redis.call('XRANGE', KEYS[top], '-', '+', 'COUNT', 1)[1][1]
  redis.call('XDEL', KEYS[top], id)
  redis.call('XDEL', KEYS[1], id)
  size[top] = size[top] - 1
  over = over - 1
end
for i = 5, #KEYS do setCount(KEYS[i], size[i]) end
return math.max(over, 0)`);

/** Entries per script call: a turn with more is split, so one call never holds Redis long. */
const BATCH = 256;
/** Largest buckets one eviction call is given, entries it removes at most, calls after one write. */
const EVICT_BUCKETS = 8;
const EVICT_BUDGET = 1_024;
const EVICT_ROUNDS = 16;
/** The backstop's room past twice `maxEntries`: writes in flight are appended before their evictions run. */
const BACKSTOP_SLACK = 16 * BATCH;
/** Stream entries read per round trip while listing. */
const CHUNK = 200;
/** How far the node clocks (an entry's `at`) may be from Redis' (its stream id) for time bounds. */
const SKEW_MS = 5 * 60_000;
const STREAM_ID = /^\d{1,20}-\d{1,20}$/;

export interface RedisAuditOptions {
  keys?: RedisKeys;
  log?: Logger;
}

/**
 * The audit trail in Redis, shared by every node of a cluster: the stream `<prefix>audit` (one
 * field `e`, the entry as JSON), trimmed by age, and per home a stream `<prefix>{home:<id>}:audit`
 * of the trail's ids (a reference, so the trail alone bounds storage), expiring when idle past the
 * age. Past `maxEntries` the oldest entries of the largest buckets go (audit-buckets.ts): each
 * bucket is a stream of ids `<prefix>audit:b:<bucket>`, counted in the sorted set
 * `<prefix>audit:buckets`; the node reads the largest and a second script removes from them (it
 * names the keys it touches; the counts are a stream's length when the node last touched it, so
 * entries aged out of an idle bucket count until it expires). The trail's MAXLEN at twice
 * `maxEntries` (and some) is a backstop for evictions that failed and entries written before
 * buckets. Listing reads backwards from the cursor (a stream
 * id) with XREVRANGE; a home's listing reads its index and then each entry (one pipeline per
 * chunk; an entry trimmed meanwhile is skipped). One script call per WRITE_MS of entries (a call
 * per command turn had cost a command about 120 µs of the node's CPU at 1,000/s): it touches
 * the trail and several homes' and buckets' keys, so it needs one Redis (standalone or one primary).
 */
/** ms entries wait to be written together; another node reads them that much later at most */
const WRITE_MS = 100;

export class RedisAuditLog implements AuditLog {
  private readonly keys: RedisKeys;
  private readonly trail: string;
  private readonly counts: string;
  private readonly seen: string;
  private readonly sum: string;
  private queue: AuditEntry[] = [];
  private timer: NodeJS.Timeout | null = null;
  private inFlight = new Set<Promise<void>>();
  #lost = 0;

  /** Does not own `client`: the composition root closes the connection it shares. */
  constructor(
    private readonly client: Redis,
    readonly retention: AuditRetention,
    private readonly options: RedisAuditOptions = {},
  ) {
    this.keys = options.keys ?? new RedisKeys();
    this.trail = this.keys.single('audit');
    this.counts = this.keys.single('audit:buckets');
    this.seen = this.keys.single('audit:buckets-seen');
    this.sum = this.keys.single('audit:buckets-sum');
  }

  get lost(): number {
    return this.#lost;
  }

  record(entry: AuditEntry): void {
    if (this.queue.push(entry) >= BATCH) this.flush();
    else this.timer ??= setTimeout(this.flush, WRITE_MS).unref();
  }

  private readonly flush = (): void => {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const all = this.queue;
    this.queue = [];
    for (let i = 0; i < all.length; i += BATCH) this.write(all.slice(i, i + BATCH));
  };

  private write(batch: AuditEntry[]): void {
    const keys = [this.trail, this.counts, this.seen, this.sum];
    const slot = new Map<string, number>();
    /** the index of a key in KEYS, added once */
    const at = (key: string): number => {
      let i = slot.get(key);
      if (i === undefined) slot.set(key, (i = keys.push(key)));
      return i;
    };
    const args: Array<string | number> = [2 * this.retention.maxEntries + BACKSTOP_SLACK, this.retention.maxAgeMs, batch.length];
    for (const e of batch) {
      const h = e.homeId !== undefined ? at(this.keys.home(e.homeId, 'audit')) : 0;
      args.push(h, at(this.keys.single(`audit:b:${bucketOf(e)}`)), JSON.stringify(e));
    }
    // a home's last erasure, kept as long as the entries before it (`afterErasure`)
    for (const e of batch) {
      const erased = erasureOf(e);
      // no expiry: a retention raised later would bring the earlier household's entries back
      if (erased !== undefined) void this.client.set(this.keys.home(erased, 'audit-erased'), e.at).catch((err: unknown) => this.options.log?.warn({ err, homeId: erased }, 'audit: a home\'s erasure time not recorded; found again from its entries when read'));
    }
    const done: Promise<void> = APPEND.run(this.client, keys, args).then(
      (sum) =>
        Number(sum) > this.retention.maxEntries
          ? this.evict().catch((err: unknown) => this.options.log?.warn({ err }, 'audit eviction failed; the next write tries again'))
          : undefined,
      (err: unknown) => {
        this.#lost += batch.length;
        this.options.log?.warn({ err, entries: batch.length }, 'audit entries not written');
      },
    );
    this.inFlight.add(done);
    void done.finally(() => this.inFlight.delete(done));
  }

  /** Removes the oldest entries of the largest buckets until they hold `maxEntries` at most. */
  private async evict(): Promise<void> {
    for (let round = 0; round < EVICT_ROUNDS; round++) {
      const top = await this.client.zrevrange(this.counts, 0, EVICT_BUCKETS, 'WITHSCORES');
      const given: string[] = [];
      for (let i = 0; i + 1 < top.length && given.length < EVICT_BUCKETS; i += 2) given.push(top[i]!);
      if (given.length === 0) return;
      const floor = Number(top[2 * EVICT_BUCKETS + 1] ?? 0);
      const left = await EVICT.run(this.client, [this.trail, this.counts, this.seen, this.sum, ...given], [this.retention.maxEntries, this.retention.maxAgeMs, floor, EVICT_BUDGET]);
      if (Number(left) <= 0) return;
    }
  }

  async list(q: AuditQuery): Promise<AuditPage> {
    // this node's entries still queued first: a caller reads its own last action on the node it used
    await this.flushed();
    const out: AuditEntry[] = [];
    const erasedAt = q.afterErasure && q.homeId !== undefined ? await this.erasedAt(q.homeId) : 0;
    // the age on Redis's clock, as the trim judges it: a node's clock ahead hid the oldest entries (review "clock")
    const [s, us] = await this.client.time();
    const redisNow = Number(s) * 1000 + Math.floor(Number(us) / 1000);
    const since = Math.max(q.since ?? 0, redisNow - this.retention.maxAgeMs, erasedAt > 0 ? erasedAt + 1 : 0);
    const query = { ...q, since };
    let start = q.cursor !== undefined && STREAM_ID.test(q.cursor) ? `(${q.cursor}` : q.until !== undefined ? `${q.until + SKEW_MS}` : '+';
    const end = `${Math.max(0, since - SKEW_MS)}`;
    const index = q.homeId !== undefined ? this.keys.home(q.homeId, 'audit') : null;
    let scanned = 0;
    for (;;) {
      const rows = (await this.client.xrevrange(index ?? this.trail, start, end, 'COUNT', CHUNK)) as Array<[string, string[]]>;
      const entries = index ? await this.resolve(rows.map(([id]) => id)) : rows.map(([, fields]) => parse(fields));
      for (let i = 0; i < rows.length; i++) {
        scanned++;
        const e = entries[i];
        if (e && matches(e, query)) out.push(e);
        if (out.length >= q.limit || scanned >= AUDIT_SCAN_MAX) return { entries: out, next: rows[i]![0] };
      }
      if (rows.length < CHUNK) return { entries: out, next: null };
      start = `(${rows[rows.length - 1]![0]}`;
    }
  }

  /**
   * The home's last erasure, 0 for none. A home without the key (its erasures, if any, written by a
   * release before 2026-12-06, or the key's write failed) is looked for in its index once, newest
   * first, and the answer recorded.
   */
  private async erasedAt(homeId: string): Promise<number> {
    const key = this.keys.home(homeId, 'audit-erased');
    const known = await this.client.get(key);
    if (known !== null) return Number(known);
    let found = 0;
    let start = '+';
    for (;;) {
      const rows = (await this.client.xrevrange(this.keys.home(homeId, 'audit'), start, '-', 'COUNT', CHUNK)) as Array<[string, string[]]>;
      const entries = await this.resolve(rows.map(([id]) => id));
      const erasure = entries.find((e) => e !== null && erasureOf(e) === homeId);
      if (erasure) {
        found = erasure.at;
        break;
      }
      if (rows.length < CHUNK) break;
      start = `(${rows[rows.length - 1]![0]}`;
    }
    // NX: an erasure recorded meanwhile stays
    await this.client.set(key, found, 'NX');
    return Number((await this.client.get(key)) ?? found);
  }

  /** The trail's entries of these ids, null for those trimmed since. */
  private async resolve(ids: string[]): Promise<Array<AuditEntry | null>> {
    if (ids.length === 0) return [];
    const pipe = this.client.pipeline();
    for (const id of ids) pipe.xrange(this.trail, id, id);
    const replies = (await pipe.exec()) ?? [];
    return replies.map(([err, rows]) => {
      const row = err ? undefined : (rows as Array<[string, string[]]>)[0];
      return row ? parse(row[1]) : null;
    });
  }

  async flushed(): Promise<void> {
    this.flush();
    await Promise.all([...this.inFlight]);
  }

  async close(): Promise<void> {
    await this.flushed();
  }
}

function parse(fields: string[]): AuditEntry | null {
  if (fields[0] !== 'e' || fields[1] === undefined) return null;
  try {
    return entryOf(JSON.parse(fields[1]));
  } catch {
    return null;
  }
}
