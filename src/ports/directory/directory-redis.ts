import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from '../../log/logger.js';
import type { Directory, HubClaim, HubLocation, OrphanSession } from './directory.js';
import { closeRedis, connectRedis, LuaScript, RedisKeys, type RedisTlsFiles } from '../redis.js';

export interface RedisDirectoryOptions {
  /** key names and their prefix */
  keys?: RedisKeys;
  /** @default 15_000 (ms): a node's entries vanish this long after its last `refreshNode` */
  ttlMs?: number;
}

/**
 * INCR the hub's epoch counter, floored by Redis' clock in ms, and write the entry with it,
 * atomically (one slot: `{h:<hubId>}`). The floor keeps epochs growing when Redis lost the counter
 * (a restart without persistence, a failover to a replica that missed the last writes). Answers
 * the epoch and 1 when an entry was there (displaced), else 0.
 */
const CLAIM = new LuaScript(`
local epoch = redis.call('INCR', KEYS[1])
local t = redis.call('TIME')
local floor = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if epoch < floor then
  epoch = floor
  redis.call('SET', KEYS[1], epoch)
end
local displaced = redis.call('EXISTS', KEYS[2])
redis.call('HSET', KEYS[2], 'node', ARGV[1], 'epoch', epoch, 'since', ARGV[2])
return {epoch, displaced}`);

/**
 * Deletes the entry only if it still names this node and epoch: 2 when it did, 1 when there was
 * none or an older one, 0 when a later claim holds it.
 */
const RELEASE = new LuaScript(`
local cur = redis.call('HMGET', KEYS[1], 'node', 'epoch')
if cur[1] == ARGV[1] and cur[2] == ARGV[2] then
  redis.call('DEL', KEYS[1])
  return 2
end
if cur[2] and tonumber(cur[2]) > tonumber(ARGV[2]) then return 0 end
return 1`);

/** Forgets a session of the node's list (KEYS[1]) if the list still has that epoch for the hub. */
const FORGET = new LuaScript(`
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 1`);

/**
 * Takes a node's list of sessions (KEYS[2]) unless its liveness (KEYS[1]) is there: answers the
 * list (hub, epoch, …) and deletes it, in one step, so one caller gets it; false while the node is
 * alive. Leaves a mark (KEYS[3], a day) that the node's next refresh finds, should it be alive after all.
 */
const TAKE = new LuaScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local all = redis.call('HGETALL', KEYS[2])
redis.call('DEL', KEYS[2])
if #all > 0 then redis.call('SET', KEYS[3], '1', 'PX', 86400000) end
return all`);

/**
 * A node's last refresh in the set of nodes (KEYS[1], node ARGV[1]), and the nodes not refreshed for
 * ARGV[1] ms, both on Redis's clock: on each node's own (until 2026-12-06), a dead node whose clock
 * ran an hour ahead had its hubs said offline an hour late.
 */
const MARK_REFRESHED = new LuaScript(`local t = redis.call('TIME')
redis.call('ZADD', KEYS[1], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), ARGV[1])`);
const LAPSED = new LuaScript(`local t = redis.call('TIME')
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[1]))`);

/**
 * Renews a node's liveness (KEYS[1], ARGV[1] ms) and writes this process's id (ARGV[2]) as the one
 * that refreshed it (KEYS[3], for 3 ttls); answers 1 when its sessions were taken since (the mark
 * KEYS[2], removed) and the process id that refreshed it before (false: none within 3 ttls).
 */
const REFRESH = new LuaScript(`
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
local before = redis.call('GET', KEYS[3])
redis.call('SET', KEYS[3], ARGV[2], 'PX', tonumber(ARGV[1]) * 3)
local t = redis.call('TIME')
return {redis.call('DEL', KEYS[2]), before, tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)}`);

/** a refresh slower than this (ms) says too little of Redis's clock to take its reading */
const CLOCK_READ_MAX_RTT_MS = 250;

/** refreshes without another process's id before a shared NODE_ID counts as over */
const SHARED_HOLD = 4;
/** leftovers released per round of calls (pipelined on the connection) */
const LEFTOVERS_AT_ONCE = 500;
/** releases that failed (Redis away at a session's close), kept to try again at each refresh; past it the oldest are dropped */
const UNRELEASED_MAX = 100_000;

/**
 * The directory in Redis, for many nodes. Keys (prefix `tier:` by default):
 *
 * - `{h:<hubId>}:epoch`: the hub's epoch counter (INCR). It never expires, so epochs are never
 *   reused, also after the entry expired; one small key per hub ever seen. Each claim takes at
 *   least Redis' clock in ms (so an epoch is max(previous + 1, now)): should Redis lose the counter
 *   (no persistence, eviction, an asynchronous replica promoted) epochs still grow, unless
 *   a hub was claimed more than once per ms on average, or Redis' clock jumped back.
 *   Epochs are therefore large (~1.7e12), still safe integers.
 * - `{h:<hubId>}:loc`: the entry, a hash `node`, `epoch`, `since`. It has no TTL of its own.
 * - `{n:<nodeId>}:alive`: the node's liveness, `SET … PX ttlMs` by `refreshNode` (and by `claim`).
 *   An entry whose node's liveness key is gone counts as absent: one key per node keeps tens of
 *   thousands of hubs alive, instead of a TTL refresh per hub.
 * - `{n:<nodeId>}:process`: the process that refreshed the liveness last (a random id per process,
 *   3 ttls): a refresh that finds another's since its own previous one tells of two live processes
 *   given one NODE_ID (`nodeIdShared`), which share every per-node key, and keep each other's
 *   hubs "online" after one of them dies.
 * - `{n:<nodeId>}:held`: the node's sessions, a hash hub → epoch (set after a claim, removed after
 *   its release, neither waited for), and `nodes`: a sorted set node → its last refresh (ms, Redis's
 *   clock): `takeOrphans` looks for nodes not refreshed for a ttl, takes the list of each whose
 *   liveness key is gone, and keeps the sessions whose entry still names them.
 *
 * Claim and release are Lua scripts over the hub's two keys (one Redis Cluster slot). The liveness
 * key lives in another slot, so neither touches it: `lookup` and `holds` read it with a separate
 * command, and `claim` refreshes it with a separate SET (the node's own scripts, REFRESH and TAKE,
 * touch it with the node's other keys, in the node's slot). A Redis error rejects the call; nothing is
 * retried here (a refused hello is retried by the hub).
 */
export class RedisDirectory implements Directory {
  readonly ttlMs: number;
  private readonly keys: RedisKeys;
  /** this process, among those that may refresh one node id's liveness */
  private readonly instance = randomUUID();
  private refreshed = false;
  /** this process's refreshes since one found another's id (Infinity: none yet) */
  private sinceOther = Infinity;
  /** this process's successful refreshes */
  private refreshes = 0;
  /** Redis's clock minus this process's at the last refresh fast enough to tell (ms) */
  private offset: number | undefined;
  /** the epoch of this process's first claim: the sessions listed before it are an earlier process's */
  private firstEpoch: number | undefined;
  /** hub → the release of its closed session that failed (node, epoch), tried again at each refresh */
  private readonly unreleased = new Map<string, { node: string; epoch: number }>();
  /** a pass of `releaseAgain` is under way */
  private releasing = false;

  /** Takes ownership of `client`: `close()` quits it. */
  constructor(
    private readonly client: Redis,
    options: RedisDirectoryOptions = {},
  ) {
    this.keys = options.keys ?? new RedisKeys();
    this.ttlMs = options.ttlMs ?? 15_000;
    if (!Number.isInteger(this.ttlMs) || this.ttlMs < 1) throw new RangeError(`directory ttlMs must be a positive integer, got ${this.ttlMs}`);
  }

  static async connect(url: string, options: RedisDirectoryOptions & { name: string; log: Logger; tls?: RedisTlsFiles }): Promise<RedisDirectory> {
    return new RedisDirectory(await connectRedis(url, { name: options.name, log: options.log, tls: options.tls }), options);
  }

  async claim(hubId: string, node: string, now = Date.now()): Promise<HubClaim> {
    // sent back to back on one connection: the liveness is written before the entry appears
    const [, answer] = await Promise.all([
      this.client.set(this.aliveKey(node), '1', 'PX', this.ttlMs),
      CLAIM.run(this.client, [this.keys.hub(hubId, 'epoch'), this.keys.hub(hubId, 'loc')], [node, now]),
    ]);
    const [epoch, displaced] = answer as [number, number];
    this.firstEpoch ??= Number(epoch);
    // not waited for: the list only tells who said nothing when a node died (takeOrphans)
    this.client.hset(this.heldKey(node), hubId, String(epoch)).catch(() => {});
    return { node, epoch: Number(epoch), since: now, displaced: displaced === 1 };
  }

  async release(hubId: string, node: string, epoch: number): Promise<boolean> {
    FORGET.run(this.client, [this.heldKey(node)], [hubId, epoch]).catch(() => {});
    try {
      return (await RELEASE.run(this.client, [this.keys.hub(hubId, 'loc')], [node, epoch])) !== 0;
    } catch (err) {
      // left as it was, the entry read "online" for as long as this node lives (review "presence"):
      // tried again at each refresh; conditional on node and epoch, so a later claim is never undone
      this.unreleased.delete(hubId);
      this.unreleased.set(hubId, { node, epoch });
      if (this.unreleased.size > UNRELEASED_MAX) this.unreleased.delete(this.unreleased.keys().next().value!);
      throw err;
    }
  }

  /** The releases that failed, tried again (after a refresh: Redis answers again); one pass at a time. */
  private async releaseAgain(): Promise<void> {
    if (this.releasing) return;
    this.releasing = true;
    try {
      for (const [hubId, { node, epoch }] of [...this.unreleased]) {
        await RELEASE.run(this.client, [this.keys.hub(hubId, 'loc')], [node, epoch]);
        await FORGET.run(this.client, [this.heldKey(node)], [hubId, epoch]);
        if (this.unreleased.get(hubId)?.epoch === epoch) this.unreleased.delete(hubId);
      }
    } catch {
      // Redis away again: the next refresh goes on
    } finally {
      this.releasing = false;
    }
  }

  async takeOwnLeftovers(node: string, open: ReadonlySet<string>): Promise<OrphanSession[] | null> {
    // a twin (another live process given this id) refreshes between any two of this one's: over
    // SHARED_HOLD + 1 of them, one late or failed refresh of either cannot hide it (review diff18)
    if (this.refreshes <= SHARED_HOLD || this.nodeIdShared()) return null;
    const listed = await this.client.hgetall(this.heldKey(node));
    // read after the list: a claim of this process listed in it had set it before its entry went in
    const before = this.firstEpoch;
    // epochs follow Redis's clock: one below this process's first claim is an earlier process's
    const left = Object.entries(listed).filter(([hubId, value]) => !open.has(hubId) && (before === undefined || Number(value) < before) && !this.unreleased.has(hubId));
    const out: OrphanSession[] = [];
    for (let i = 0; i < left.length; i += LEFTOVERS_AT_ONCE) {
      const chunk = left.slice(i, i + LEFTOVERS_AT_ONCE);
      const released = await Promise.all(
        chunk.map(async ([hubId, value]) => {
          await FORGET.run(this.client, [this.heldKey(node)], [hubId, value]);
          // said offline only when its entry still named it: the hub's, no later claim's
          return (await RELEASE.run(this.client, [this.keys.hub(hubId, 'loc')], [node, value])) === 2;
        }),
      );
      chunk.forEach(([hubId, value], k) => released[k] && out.push({ hubId, node, epoch: Number(value) }));
    }
    return out;
  }

  async lookup(hubId: string): Promise<HubLocation | null> {
    const [node, epoch, since] = await this.client.hmget(this.keys.hub(hubId, 'loc'), 'node', 'epoch', 'since');
    if (node == null || epoch == null || since == null) return null;
    if ((await this.client.exists(this.aliveKey(node))) === 0) return null;
    return { node, epoch: Number(epoch), since: Number(since) };
  }

  async holds(hubId: string, node: string, epoch: number): Promise<boolean> {
    // both reads in one round trip; they are in different slots, so not one atomic read: a
    // `true` means the node held the hub with this epoch at some moment during the call
    const [[holder, held], alive] = await Promise.all([
      this.client.hmget(this.keys.hub(hubId, 'loc'), 'node', 'epoch'),
      this.client.exists(this.aliveKey(node)),
    ]);
    return holder === node && held === String(epoch) && alive === 1;
  }

  async refreshNode(node: string): Promise<boolean> {
    const sent = Date.now();
    const sentAt = performance.now();
    const [answer] = await Promise.all([
      REFRESH.run(this.client, [this.aliveKey(node), this.takenKey(node), this.keys.node(node, 'process')], [this.ttlMs, this.instance]),
      MARK_REFRESHED.run(this.client, [this.nodesKey], [node]),
    ]);
    const [taken, before, redisMs] = answer as [number, string | null, number];
    const back = Date.now();
    const rtt = performance.now() - sentAt;
    // Redis's clock read at about the middle of the round trip, timed on the monotonic clock; not
    // when the wall clock stepped during it (the middle would be off by the step)
    if (typeof redisMs === 'number' && rtt <= CLOCK_READ_MAX_RTT_MS && Math.abs(back - sent - rtt) <= CLOCK_READ_MAX_RTT_MS) this.offset = redisMs - (sent + back) / 2;
    // another process refreshed it since this one last did: two live processes with one NODE_ID
    // (a process restarted finds its predecessor's id once, before it has refreshed at all)
    this.sinceOther = this.refreshed && before !== null && before !== this.instance ? 0 : this.sinceOther + 1;
    this.refreshed = true;
    this.refreshes++;
    if (this.unreleased.size > 0) void this.releaseAgain();
    return taken === 1;
  }

  /**
   * Held for SHARED_HOLD refreshes after the other's id was last found: two twins whose timers
   * run close together find each other's id in some rounds and their own in others, and a flag
   * that followed each round flipped (and logged) every few refreshes (review diff9).
   */
  clockOffsetMs(): number | undefined {
    return this.offset;
  }

  nodeIdShared(): boolean {
    return this.sinceOther <= SHARED_HOLD;
  }

  async relist(node: string, sessions: ReadonlyArray<{ hubId: string; epoch: number }>): Promise<void> {
    if (sessions.length === 0) return;
    // a node that left the set (its sessions taken, put back by a sweep that failed) goes back in as lapsed; a live one keeps its score
    await Promise.all([this.client.hset(this.heldKey(node), Object.fromEntries(sessions.map((s) => [s.hubId, String(s.epoch)]))), this.client.zadd(this.nodesKey, 'NX', 0, node)]);
  }

  async takeOrphans(node: string, own = false): Promise<OrphanSession[]> {
    const lapsed = (await LAPSED.run(this.client, [this.nodesKey], [this.ttlMs])) as string[];
    const candidates = own ? [node, ...lapsed.filter((n) => n !== node)] : lapsed.filter((n) => n !== node);
    const out: OrphanSession[] = [];
    for (const dead of candidates) {
      const list = (await TAKE.run(this.client, [this.aliveKey(dead), this.heldKey(dead), this.takenKey(dead)], [])) as string[] | null;
      if (list === null) continue;
      // a node come back refreshes its score: only a lapsed one leaves the set
      if (dead !== node) await this.client.zrem(this.nodesKey, dead);
      const sessions: OrphanSession[] = [];
      for (let i = 0; i < list.length; i += 2) sessions.push({ hubId: list[i]!, node: dead, epoch: Number(list[i + 1]) });
      // those a later claim has not taken since
      const entries = await Promise.all(sessions.map((s) => this.client.hmget(this.keys.hub(s.hubId, 'loc'), 'node', 'epoch')));
      sessions.forEach((s, i) => entries[i]![0] === s.node && entries[i]![1] === String(s.epoch) && out.push(s));
    }
    return out;
  }

  async close(): Promise<void> {
    await closeRedis(this.client);
  }

  private aliveKey(node: string): string {
    return this.keys.node(node, 'alive');
  }

  private heldKey(node: string): string {
    return this.keys.node(node, 'held');
  }

  private takenKey(node: string): string {
    return this.keys.node(node, 'taken');
  }

  private get nodesKey(): string {
    return this.keys.single('nodes');
  }
}
