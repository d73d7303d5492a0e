import type { Redis } from 'ioredis';
import type { Logger } from '../../log/logger.js';
import { LuaScript, RedisKeys } from '../redis.js';
import { AUDIT_SCAN_MAX, entryOf, matches, type AuditEntry, type AuditLog, type AuditPage, type AuditQuery, type AuditRetention } from './audit.js';

/**
 * The entries of one turn. KEYS: the trail, then the home indexes. ARGV: max entries, max age ms,
 * count, then per entry the index of its home key in KEYS (0: none) and the entry as JSON. A home
 * index gets the trail's id for the entry (ids grow in the trail, so in every index too). The
 * MINID stays a number: `tostring` would write 1.7e+12, not a stream id.
 */
const APPEND = new LuaScript(`local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local maxLen, maxAge, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local minId = math.max(0, now - maxAge)
local homes = {}
for i = 1, n do
  local h, e = tonumber(ARGV[2 + 2 * i]), ARGV[3 + 2 * i]
  local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxLen, '*', 'e', e)
  if h > 0 then
    redis.pcall('XADD', KEYS[h], 'MAXLEN', '~', maxLen, id, 'x', '')
    homes[h] = true
  end
end
redis.call('XTRIM', KEYS[1], 'MINID', '~', minId)
for h in pairs(homes) do
  redis.call('XTRIM', KEYS[h], 'MINID', '~', minId)
  redis.call('PEXPIRE', KEYS[h], maxAge)
end
return n`);

/** Entries per script call: a turn with more is split, so one call never holds Redis long. */
const BATCH = 256;
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
 * field `e`, the entry as JSON), capped at about `maxEntries` and trimmed by age, and per home a
 * stream `<prefix>{home:<id>}:audit` of the trail's ids (a reference, so the trail alone bounds
 * storage), expiring when idle past the age. Listing reads backwards from the cursor (a stream
 * id) with XREVRANGE; a home's listing reads its index and then each entry (one pipeline per
 * chunk; an entry trimmed meanwhile is skipped). One script call per WRITE_MS of entries (a call
 * per command turn had cost a command about 120 µs of the node's CPU at 1,000/s): it touches
 * the trail and several homes' keys, so it needs one Redis (standalone or one primary).
 */
/** ms entries wait to be written together; another node reads them that much later at most */
const WRITE_MS = 100;

export class RedisAuditLog implements AuditLog {
  private readonly keys: RedisKeys;
  private readonly trail: string;
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
    const keys = [this.trail];
    const slot = new Map<string, number>();
    const args: Array<string | number> = [this.retention.maxEntries, this.retention.maxAgeMs, batch.length];
    for (const e of batch) {
      let h = 0;
      if (e.homeId !== undefined) {
        h = slot.get(e.homeId) ?? 0;
        if (h === 0) {
          keys.push(this.keys.home(e.homeId, 'audit'));
          h = keys.length;
          slot.set(e.homeId, h);
        }
      }
      args.push(h, JSON.stringify(e));
    }
    const done: Promise<void> = APPEND.run(this.client, keys, args).then(
      () => undefined,
      (err: unknown) => {
        this.#lost += batch.length;
        this.options.log?.warn({ err, entries: batch.length }, 'audit entries not written');
      },
    );
    this.inFlight.add(done);
    void done.finally(() => this.inFlight.delete(done));
  }

  async list(q: AuditQuery): Promise<AuditPage> {
    // this node's entries still queued first: a caller reads its own last action on the node it used
    await this.flushed();
    const out: AuditEntry[] = [];
    const since = Math.max(q.since ?? 0, Date.now() - this.retention.maxAgeMs);
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
