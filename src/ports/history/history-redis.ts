import type { Redis } from 'ioredis';
import type { Logger } from '../../log/logger.js';
import { closeRedis, connectRedis, LuaScript, RedisKeys } from '../redis.js';
import type { EventHistory, HistoryRead, HistoryRetention, Position, RecoveryFailure } from './history.js';
import { newEpoch } from './history-read.js';

export interface RedisHistoryOptions {
  keys?: RedisKeys;
  log: Logger;
  /**
   * Entries kept in the services' stream `<prefix>events` (approximately, never fewer); 0: no
   * such stream. Every event of every home, for services that consume from a position.
   */
  eventStreamMaxLen: number;
}

/** Redis' clock in ms, inside a script. */
const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/** The home's epoch, created with the first look at the home so its position never changes epoch by itself. */
const EPOCH = `local e = redis.call('HGET', KEYS[2], 'e')
if not e then e = ARGV[1]; redis.call('HSET', KEYS[2], 'e', e) end`;

/**
 * KEYS: stream, meta. ARGV: new epoch, event bytes, max events, max age ms. Offset and entry in
 * one step: the stream holds every offset from its oldest entry to the newest, without holes.
 */
const APPEND = new LuaScript(`${EPOCH}
local o = redis.call('HINCRBY', KEYS[2], 'o', 1)
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'o', o, 'd', ARGV[2])
${NOW}
redis.call('XTRIM', KEYS[1], 'MINID', '~', now - tonumber(ARGV[4]))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {e, o}`);

/**
 * KEYS: stream, meta. ARGV: new epoch, since epoch, since offset, up to, limit, max age ms.
 * Answers {status, epoch, top, data...}: the entries since+1..min(upTo, top) are the newest
 * top-since of the stream, read from its end.
 */
const READ = new LuaScript(`${EPOCH}
local top = tonumber(redis.call('HGET', KEYS[2], 'o') or '0')
local since = tonumber(ARGV[3])
if e ~= ARGV[2] or since > top then return {'epoch_changed', e, top} end
local upper = math.min(tonumber(ARGV[4]), top)
if upper - since <= 0 then return {'ok', e, top} end
if upper - since > tonumber(ARGV[5]) then return {'too_old', e, top} end
local rows = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', top - since)
if #rows < top - since then return {'too_old', e, top} end
local oldest = rows[#rows]
if tonumber(oldest[2][2]) ~= since + 1 then return {'too_old', e, top} end
${NOW}
if tonumber(string.match(oldest[1], '^(%d+)')) < now - tonumber(ARGV[6]) then return {'too_old', e, top} end
local out = {'ok', e, top}
for i = #rows, #rows - (upper - since) + 1, -1 do out[#out + 1] = rows[i][2][4] end
return out`);

/** KEYS: stream, meta. ARGV: new epoch. */
const POSITION = new LuaScript(`${EPOCH}
return {e, tonumber(redis.call('HGET', KEYS[2], 'o') or '0')}`);

/**
 * Every home's history in Redis, shared by the nodes of a cluster (as Centrifugo keeps channel
 * history): per home a stream `<prefix>{home:<id>}:hist` (fields `o` offset, `d` event), trimmed
 * by count and age and expiring when idle past the age, and a hash `…:hist-meta` with the epoch
 * and the newest offset. The hash has no expiry: offsets stay comparable however long a home is
 * quiet. A Redis that lost the hash (flushed, replaced) starts a new epoch for the home.
 *
 * Each event is also added to the services' stream `<prefix>events` after its offset is known
 * (not atomically: that key lives in another Redis Cluster slot); a failure there is logged.
 */
export class RedisEventHistory implements EventHistory {
  private readonly keys: RedisKeys;
  private readonly eventsKey: string;
  private streamFailures = 0;

  /** Takes ownership of `client`: `close()` quits it. */
  constructor(
    private readonly client: Redis,
    readonly retention: HistoryRetention,
    private readonly options: RedisHistoryOptions,
  ) {
    this.keys = options.keys ?? new RedisKeys();
    this.eventsKey = this.keys.single('events');
  }

  static async connect(url: string, retention: HistoryRetention, options: RedisHistoryOptions & { name: string }): Promise<RedisEventHistory> {
    return new RedisEventHistory(await connectRedis(url, { name: options.name, log: options.log }), retention, options);
  }

  /** Events that reached a home's history but not the services' stream. */
  get eventStreamFailures(): number {
    return this.streamFailures;
  }

  async append(homeId: string, data: Uint8Array): Promise<Position> {
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const [epoch, offset] = (await APPEND.runBuffer(this.client, this.homeKeys(homeId), [newEpoch(), bytes, this.retention.maxEvents, this.retention.maxAgeMs])) as [Buffer, number];
    const pos = { epoch: epoch.toString(), offset };
    if (this.options.eventStreamMaxLen > 0) {
      this.client
        .xadd(this.eventsKey, 'MAXLEN', '~', this.options.eventStreamMaxLen, '*', 'home', homeId, 'epoch', pos.epoch, 'offset', offset, 'event', bytes)
        .catch((err: unknown) => {
          // the first of an outage is logged; the count tells the rest
          if (this.streamFailures++ === 0) this.options.log.warn({ err, homeId }, 'event stream append failed');
        });
    }
    return pos;
  }

  async read(homeId: string, since: Position, upTo: number, limit: number): Promise<HistoryRead> {
    const args = [newEpoch(), since.epoch, since.offset, upTo, limit, this.retention.maxAgeMs];
    const [status, epoch, top, ...data] = (await READ.runBuffer(this.client, this.homeKeys(homeId), args)) as [Buffer, Buffer, number, ...Buffer[]];
    const pos = { epoch: epoch.toString(), offset: top };
    const verdict = status.toString();
    if (verdict !== 'ok') return { ok: false, reason: verdict as RecoveryFailure, pos };
    return { ok: true, epoch: pos.epoch, entries: data.map((d, i) => ({ offset: since.offset + 1 + i, data: d })) };
  }

  async position(homeId: string): Promise<Position> {
    const [epoch, offset] = (await POSITION.runBuffer(this.client, this.homeKeys(homeId), [newEpoch()])) as [Buffer, number];
    return { epoch: epoch.toString(), offset };
  }

  async remove(homeId: string): Promise<void> {
    await this.client.del(this.keys.home(homeId, 'hist'));
  }

  async close(): Promise<void> {
    await closeRedis(this.client);
  }

  private homeKeys(homeId: string): string[] {
    return [this.keys.home(homeId, 'hist'), this.keys.home(homeId, 'hist-meta')];
  }
}
