import type { CallObserver } from '../ports.js';
import { INDEX, READ_FROM_INDEX } from './history-redis-index.js';
import type { Redis } from 'ioredis';
import type { Logger } from '../../log/logger.js';
import { closeRedis, connectRedis, LuaScript, RedisKeys, type RedisTlsFiles } from '../redis.js';
import { KnownPositions } from './known-positions.js';
import { NotedLostError, StaleSessionError, type EventHistory, type HistoryPosition, type EventSource, type HistoryRead, type HistoryRetention, type Position, type RecoveryFailure } from './history.js';
import { newEpoch } from './history-read.js';
import { eraseFromStream } from './history-redis-erase.js';
import { MARKS, RedisEvaluatedMarks, SPAN } from './history-redis-marks.js';

export interface RedisHistoryOptions {
  keys?: RedisKeys;
  log: Logger;
  /**
   * Entries kept in the services' stream `<prefix>events` (approximately, never fewer); 0: no
   * such stream. Every event of every home, for services that consume from a position.
   */
  eventStreamMaxLen: number;
  /**
   * Entries of the services' stream older than this are trimmed (exactly, by stream id: Redis'
   * clock) at every append call and every `eventStreamTrimMs`, so a quiet fleet does not keep
   * device events for weeks under a count that is never reached.
   * @default 86_400_000 (ms)
   */
  eventStreamMaxAgeMs?: number;
  /** ms between trims of the services' stream by age while no append comes; 0: none. @default 60_000 (ms) */
  eventStreamTrimMs?: number;
  /**
   * An append that reaches Redis this long after it was sent is not stored, so one the node gave
   * up on (the client's command timeout, 2 s) is not stored late, at positions no event carried
   * (a hung Redis resumed: apps would get the event live and again from the history). Half the
   * command timeout: a refused append answers before the node would give up.
   * @default 1_000 (ms)
   */
  lateMs?: number;
  /**
   * This node's name: with it, the history keeps how far the node's rules evaluated the events it
   * appended (`marks`, history-redis-marks.ts), and the nodes replay a dead node's. Absent: no marks.
   */
  nodeId?: string;
  /** a node whose marks were not renewed for this long is dead; @default 15_000 (ms) */
  marksTtlMs?: number;
}

/** A call's round trip under this (ms) gives a reading of Redis' clock against this node's. */
const CLOCK_READING_MS = 100;

/** Redis' clock in ms, inside a script. */
const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/**
 * The home's epoch, created at the first look at the home so its position never changes epoch by
 * itself. A hash made by a look alone expires after the max age (ARGV[n]): a `sub` to a home that
 * never has an event (a mistyped id) left a key for good; an append keeps it (PERSIST). An
 * app holding offset 0 of an expired one is told `epoch_changed` and reloads an empty home.
 */
const epoch = (maxAgeArg: number) => `local e = redis.call('HGET', KEYS[2], 'e')
if not e then e = ARGV[1]; redis.call('HSET', KEYS[2], 'e', e); redis.call('PEXPIRE', KEYS[2], ARGV[${maxAgeArg}]) end`;

/**
 * Notes that events of the home went out without a position, at its newest offset now (`lost` in
 * the meta hash; see HistoryPosition): only for a home with an epoch, where an app may hold a position.
 * With the services' stream (`events`, a Lua variable: nil without one), a `lost` entry goes there
 * too: those events have no offset, so a service would see no gap where they are missing.
 */
const LOST = (meta: string, home: string, maxLen: string) => `if redis.call('HEXISTS', ${meta}, 'e') == 1 then
  local lo = redis.call('HGET', ${meta}, 'o') or '0'
  -- noted once per offset: a hung Redis resumed runs every late call at once (76 equal entries in 3 ms)
  if redis.call('HGET', ${meta}, 'l') ~= lo then
    redis.call('HSET', ${meta}, 'l', lo)
    if events then redis.call('XADD', events, 'MAXLEN', '~', ${maxLen}, '*', 'home', ${home}, 'epoch', redis.call('HGET', ${meta}, 'e'), 'offset', lo, 'lost', '1') end
  end
end`;

/**
 * The appends of one turn, for several homes. KEYS: the node's rules marks hash and the marks'
 * nodes zset (history-redis-marks.ts), stream and meta of each home, then the services' stream when
 * there is one. ARGV: new epoch, max events, max age ms, services' stream length and max age ms,
 * homes, deadline on Redis' clock (0: none), the marks noted (MARKS: node, ttl, count, pairs; node '' when off), then
 * per home its id, the epoch and offset this node last had of it ('' and 0: none), its count k and k events, each as its hub, its session's epoch (0: none) and its
 * bytes. The marks go first, also in a call past the deadline (they only move forward). Per home,
 * the offsets and the entries in one step (the stream holds every offset from its oldest entry to
 * the newest, without holes), its marks field spanning them, one trim and one expiry. An event of a session older than the newest of its hub
 * in the home (meta field `s:<hub>`) is left out. Answers Redis' clock, then per home its epoch,
 * newest offset and the events left out (their 1-based indexes, comma-separated); past the
 * deadline only the clock: nothing is added, and each home's events are noted lost (`LOST`, with a
 * `lost` entry in the services' stream). The services' stream is trimmed by count as each entry is added (`MAXLEN ~`, cheap) and once per call by age, exactly: `MINID ~` removes only
 * whole radix-tree nodes (up to 100 entries), so in a quiet fleet old events sharing the newest
 * node would stay until it filled; the exact trim walks at most that one node besides what it removes
 * (calls of 16 appends on a 100,000-entry stream: no difference in Redis' time; 100,000 trimmed in 3 ms).
 */
const APPEND = new LuaScript(`${NOW}
${MARKS(8)}
local deadline = tonumber(ARGV[7])
local homes = tonumber(ARGV[6])
local events = KEYS[2 * homes + 3]
if deadline > 0 and now > deadline then
  for i = 1, homes do
    local home, k = ARGV[a], tonumber(ARGV[a + 3])
    a = a + 4 + 3 * k
    ${LOST('KEYS[2 * i + 2]', 'home', 'ARGV[4]')}
  end
  return {now}
end
local maxAge = tonumber(ARGV[3])
local out = {now}
for i = 1, homes do
  local stream, meta, home, k = KEYS[2 * i + 1], KEYS[2 * i + 2], ARGV[a], tonumber(ARGV[a + 3])
  local knownEpoch, knownTop = ARGV[a + 1], tonumber(ARGV[a + 2])
  a = a + 4
  local e = redis.call('HGET', meta, 'e')
  if e and e == knownEpoch and tonumber(redis.call('HGET', meta, 'o') or '0') < knownTop then
    -- behind an offset this node was given in this epoch: Redis came back without its last writes
    -- (a snapshot, an AOF fsynced each second, a replica behind), and the offsets after what it
    -- holds were handed out already: a new epoch, never an offset given twice
    e = nil
    redis.call('HDEL', meta, 'o', 'l')
    redis.call('DEL', stream)
    if node ~= '' then redis.call('HDEL', KEYS[1], home) end
  end
  if not e then e = ARGV[1]; redis.call('HSET', meta, 'e', e) end
  local o = redis.call('HGET', meta, 'o')
  -- at every append, not only the first: a hash a look made that an older release appended to kept its expiry
  redis.call('PERSIST', meta)
  local top = tonumber(o or '0')
  local first = top
  local stale = {}
  local newestOf = {}
  for j = 1, k do
    local fresh = true
    local ep = tonumber(ARGV[a + 1])
    if ep > 0 then
      local f = 's:' .. ARGV[a]
      local newest = newestOf[f] or tonumber(redis.call('HGET', meta, f) or '0')
      if ep < newest then fresh = false elseif ep > newest then redis.call('HSET', meta, f, ARGV[a + 1]); newest = ep end
      newestOf[f] = newest
    end
    if fresh then
      top = top + 1
      local id = redis.call('XADD', stream, 'MAXLEN', '~', ARGV[2], '*', 'o', top, 'd', ARGV[a + 2])
      ${INDEX('meta', 'top', 'id', 'ARGV[2]')}
      if events then redis.call('XADD', events, 'MAXLEN', '~', ARGV[4], '*', 'home', home, 'epoch', e, 'offset', top, 'event', ARGV[a + 2]) end
    else stale[#stale + 1] = j end
    a = a + 3
  end
  redis.call('HSET', meta, 'o', top)
  ${SPAN}
  redis.call('XTRIM', stream, 'MINID', '~', now - maxAge)
  redis.call('PEXPIRE', stream, maxAge)
  out[#out + 1] = e
  out[#out + 1] = top
  out[#out + 1] = table.concat(stale, ',')
end
if events then redis.call('XTRIM', events, 'MINID', now - tonumber(ARGV[5])) end
return out`);

/** KEYS: the services' stream. ARGV: its max age ms. Trims it by age when no append has (a quiet fleet). */
const TRIM_EVENTS = new LuaScript(`${NOW}
return redis.call('XTRIM', KEYS[1], 'MINID', now - tonumber(ARGV[1]))`);

/** ms between tries of the lost notes owed while Redis is away (besides one as it is back) */
const LOST_RETRY_MS = 500;

/** Events per script call: a turn with more is split, so one call never holds Redis long. */
const BATCH_EVENTS = 256;

interface Pending {
  data: Buffer;
  source: EventSource | undefined;
  resolve(pos: Position): void;
  reject(err: unknown): void;
}

/**
 * KEYS: stream, meta. ARGV: new epoch, since epoch, since offset, up to, limit, max age ms.
 * Answers {status, epoch, top, data...}: the entries since+1..min(upTo, top) are the newest
 * top-since of the stream, read from its end.
 */
const READ = new LuaScript(`${epoch(6)}
local top = tonumber(redis.call('HGET', KEYS[2], 'o') or '0')
local since = tonumber(ARGV[3])
if e ~= ARGV[2] or since > top then return {'epoch_changed', e, top} end
local upper = math.min(tonumber(ARGV[4]), top)
if upper - since <= 0 then return {'ok', e, top} end
if upper - since > tonumber(ARGV[5]) then return {'too_old', e, top} end
${READ_FROM_INDEX(NOW)}
local rows = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', top - since)
if #rows < top - since then return {'too_old', e, top} end
local oldest = rows[#rows]
if tonumber(oldest[2][2]) ~= since + 1 then return {'too_old', e, top} end
${NOW}
if tonumber(string.match(oldest[1], '^(%d+)')) < now - tonumber(ARGV[6]) then return {'too_old', e, top} end
local out = {'ok', e, top}
for i = #rows, #rows - (upper - since) + 1, -1 do out[#out + 1] = rows[i][2][4] end
return out`);

/** KEYS: stream, meta. ARGV: new epoch, max age ms. Answers epoch, newest offset, lost offset (-1: none). */
const POSITION = new LuaScript(`${epoch(2)}
local o = tonumber(redis.call('HGET', KEYS[2], 'o') or '0')
return {e, o, tonumber(redis.call('HGET', KEYS[2], 'l') or '-1')}`);

/** KEYS: meta. */
/** KEYS: the home's meta hash, then the services' stream when there is one. ARGV: the home, the stream's length. */
const NOTE_LOST = new LuaScript(`local events = KEYS[2]
${LOST('KEYS[1]', 'ARGV[1]', 'ARGV[2]')}`);

/**
 * Every home's history in Redis, shared by the nodes of a cluster (as Centrifugo keeps channel
 * history): per home a stream `<prefix>{home:<id>}:hist` (fields `o` offset, `d` event), trimmed
 * by count and age and expiring when idle past the age, and a hash `…:hist-meta` with the epoch,
 * the newest offset and, per hub, the newest session epoch that put an event there (`s:<hub>`:
 * an older session's events are refused, `EventSource`). Once a home has had an event the hash
 * has no expiry: offsets stay comparable however long a home is quiet (before, see `epoch`). A Redis that lost the hash (flushed, replaced) starts
 * a new epoch for the home, and so does a Redis found behind an offset this node was given for the
 * home in the same epoch (`known`: the newest position of each home it appended to lately, sent
 * with each append, KnownPositions): it came back from an AOF or a replica without its last writes,
 * and would hand their offsets out again to new events.
 *
 * The appends of one event-loop turn go to Redis as one script call (a few for a large turn), each
 * event added to its home's stream and to the services' stream `<prefix>events` in the same step.
 * That call touches several homes' keys and the services' stream: it needs one Redis (standalone or
 * a single primary), not Redis Cluster. A call that reaches Redis `lateMs` after it was sent (a hung
 * Redis, resumed) stores nothing and is refused (`NotedLostError`): its events go out without a
 * position, and the same call notes the homes' events lost (`noteLost`, `HistoryPosition.lost`).
 * With `nodeId`, the same call carries the node's rules marks (history-redis-marks.ts).
 */
export class RedisEventHistory implements EventHistory {
  private readonly keys: RedisKeys;
  private readonly eventsKey: string;
  private readonly batch = new Map<string, Pending[]>();
  private scheduled = false;
  private readonly lateMs: number;
  private readonly eventStreamMaxAgeMs: number;
  private readonly trimTimer: NodeJS.Timeout | undefined;
  /**
   * Redis' clock minus this node's monotonic one (ms), from the last quick round trip; undefined
   * before the first, when appends go without a deadline. Off by at most half that round trip.
   * Monotonic, not the wall clock: a node's wall clock stepped back (an NTP correction) put every
   * deadline in the past until the next reading, and the batch sent meanwhile was refused as late.
   */
  private clockOffset: number | undefined;
  /** how far this node's rules evaluated the events it appended (options.nodeId) */
  readonly marks?: RedisEvaluatedMarks;
  /** homes whose lost note failed (Redis away): noted again as it comes back, and every `LOST_RETRY_MS` */
  private readonly owedLost = new Set<string>();
  /** the newest position Redis gave each home this node appended to lately: sent with its next append */
  private readonly known = new KnownPositions();
  private owedTimer: NodeJS.Timeout | undefined;

  /** Takes ownership of `client`: `close()` quits it. */
  constructor(
    private readonly client: Redis,
    readonly retention: HistoryRetention,
    private readonly options: RedisHistoryOptions,
  ) {
    this.keys = options.keys ?? new RedisKeys();
    this.eventsKey = this.keys.single('events');
    this.lateMs = options.lateMs ?? 1_000;
    this.eventStreamMaxAgeMs = options.eventStreamMaxAgeMs ?? 86_400_000;
    const trimMs = options.eventStreamTrimMs ?? 60_000;
    // a failed trim (Redis away) is the next one's, or the next append's, work
    if (options.eventStreamMaxLen > 0 && trimMs > 0) this.trimTimer = setInterval(() => void this.trimEvents().catch(() => undefined), trimMs).unref();
    client.on('ready', () => this.noteOwed());
    if (options.nodeId !== undefined) this.marks = new RedisEvaluatedMarks(client, this.keys, { nodeId: options.nodeId, ttlMs: options.marksTtlMs ?? 15_000, log: options.log });
  }

  static async connect(url: string, retention: HistoryRetention, options: RedisHistoryOptions & { name: string; observe?: CallObserver; tls?: RedisTlsFiles }): Promise<RedisEventHistory> {
    return new RedisEventHistory(await connectRedis(url, { name: options.name, log: options.log, observe: options.observe, tls: options.tls }), retention, options);
  }

  append(homeId: string, data: Uint8Array, source?: EventSource): Promise<Position> {
    return new Promise((resolve, reject) => {
      let queue = this.batch.get(homeId);
      if (!queue) {
        queue = [];
        this.batch.set(homeId, queue);
      }
      queue.push({ data: Buffer.from(data.buffer, data.byteOffset, data.byteLength), source, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(this.flush);
      }
    });
  }

  /** One script call per BATCH_EVENTS appends of the turn; a home's appends stay in one call, in order. */
  private readonly flush = (): void => {
    this.scheduled = false;
    const homes = [...this.batch];
    this.batch.clear();
    for (let i = 0; i < homes.length; ) {
      const part: Array<[string, Pending[]]> = [];
      for (let n = 0; i < homes.length && (n === 0 || n + homes[i]![1].length <= BATCH_EVENTS); i++) {
        part.push(homes[i]!);
        n += homes[i]![1].length;
      }
      this.run(part);
    }
  };

  private run(part: Array<[string, Pending[]]>): void {
    // without marks the script touches neither key: any will do
    const keys = [...(this.marks?.scriptKeys ?? [this.eventsKey, this.eventsKey]), ...part.flatMap(([home]) => this.homeKeys(home))];
    if (this.options.eventStreamMaxLen > 0) keys.push(this.eventsKey);
    const sent = performance.now();
    const deadline = this.clockOffset === undefined ? 0 : Math.round(sent + this.clockOffset + this.lateMs);
    const marks = this.marks?.take() ?? { args: ['', 0, 0], failed() {} };
    const args: Array<string | number | Buffer> = [newEpoch(), this.retention.maxEvents, this.retention.maxAgeMs, this.options.eventStreamMaxLen, this.eventStreamMaxAgeMs, part.length, deadline, ...marks.args];
    for (const [home, queue] of part) {
      const known = this.known.get(home);
      args.push(home, known?.epoch ?? '', known?.offset ?? 0, queue.length);
      for (const p of queue) args.push(p.source?.hub ?? '', p.source?.epoch ?? 0, p.data);
    }
    APPEND.runBuffer(this.client, keys, args).then(
      (reply) => {
        const r = reply as Array<Buffer | number>;
        const back = performance.now();
        if (back - sent < CLOCK_READING_MS) this.clockOffset = (r[0] as number) - (sent + back) / 2;
        if (r.length === 1) {
          const late = new NotedLostError(`history append reached redis ${Math.round(back - sent)} ms after it was sent: not stored`);
          part.forEach(([, queue]) => queue.forEach((p) => p.reject(late)));
          return;
        }
        part.forEach(([, queue], i) => {
          const epoch = r[3 * i + 1]!.toString();
          const top = r[3 * i + 2] as number;
          const left = r[3 * i + 3]!.toString();
          const stale = left === '' ? null : new Set(left.split(',').map((j) => Number(j) - 1));
          this.known.remember(part[i]![0], epoch, top);
          let offset = top - queue.length + (stale?.size ?? 0);
          queue.forEach((p, j) => (stale?.has(j) ? p.reject(new StaleSessionError(p.source!)) : p.resolve({ epoch, offset: ++offset })));
        });
      },
      (err: unknown) => {
        marks.failed();
        part.forEach(([, queue]) => queue.forEach((p) => p.reject(err)));
      },
    );
  }

  async read(homeId: string, since: Position, upTo: number, limit: number): Promise<HistoryRead> {
    const args = [newEpoch(), since.epoch, since.offset, upTo, limit, this.retention.maxAgeMs];
    const [status, epoch, top, ...data] = (await READ.runBuffer(this.client, this.homeKeys(homeId), args)) as [Buffer, Buffer, number, ...Buffer[]];
    const pos = { epoch: epoch.toString(), offset: top };
    const verdict = status.toString();
    if (verdict !== 'ok') return { ok: false, reason: verdict as RecoveryFailure, pos };
    return { ok: true, epoch: pos.epoch, entries: data.map((d, i) => ({ offset: since.offset + 1 + i, data: d })) };
  }

  async position(homeId: string): Promise<HistoryPosition> {
    const [epoch, offset, lost] = (await POSITION.runBuffer(this.client, this.homeKeys(homeId), [newEpoch(), this.retention.maxAgeMs])) as [Buffer, number, number];
    return lost >= 0 ? { epoch: epoch.toString(), offset, lost } : { epoch: epoch.toString(), offset };
  }

  /**
   * Rejects when Redis did not take the note; the home is then owed one, noted once Redis is back
   * (an app recovering in between, from before the event, may be told it recovered everything).
   */
  noteLost(homeId: string): Promise<void> {
    // calls for one home are shared by the publisher (EventPublisher.noteLost), not here
    const keys = [this.keys.home(homeId, 'hist-meta'), ...(this.options.eventStreamMaxLen > 0 ? [this.eventsKey] : [])];
    return NOTE_LOST.run(this.client, keys, [homeId, this.options.eventStreamMaxLen]).then(
      () => void this.owedLost.delete(homeId),
      (err: unknown) => {
        this.owedLost.add(homeId);
        this.owedTimer ??= setTimeout(() => this.noteOwed(), LOST_RETRY_MS).unref();
        throw err;
      },
    );
  }

  /** Notes again the homes whose note failed; those failing again stay owed. */
  private noteOwed(): void {
    clearTimeout(this.owedTimer);
    this.owedTimer = undefined;
    for (const homeId of this.owedLost) void this.noteLost(homeId).catch(() => undefined);
  }

  /** Trims the services' stream of entries past its age; answers how many went. */
  async trimEvents(): Promise<number> {
    return (await TRIM_EVENTS.run(this.client, [this.eventsKey], [this.eventStreamMaxAgeMs])) as number;
  }

  /** The home's entries in the services' stream stay (they go with its age): `forget` erases them. */
  async remove(homeId: string): Promise<void> {
    await this.client.del(this.keys.home(homeId, 'hist'));
  }

  async forget(homeId: string): Promise<number> {
    if (this.options.eventStreamMaxLen <= 0) return 0;
    return eraseFromStream(this.client, { events: this.eventsKey, meta: this.keys.home(homeId, 'hist-meta') }, homeId, this.options.eventStreamMaxLen);
  }

  async close(): Promise<void> {
    clearInterval(this.trimTimer);
    this.known.close();
    clearTimeout(this.owedTimer);
    let answered = false;
    try {
      await this.marks?.close();
      answered = true;
    } finally {
      // a farewell that timed out (a hung Redis) is not followed by a QUIT that would wait as long
      await closeRedis(this.client, answered ? undefined : 0);
    }
  }

  private homeKeys(homeId: string): string[] {
    return [this.keys.home(homeId, 'hist'), this.keys.home(homeId, 'hist-meta')];
  }
}
