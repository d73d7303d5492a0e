import type { Redis } from 'ioredis';
import type { NodeRelease } from '../ports.js';
import { LuaScript, type RedisKeys } from '../redis.js';


/** HSET node → "<Redis's now in ms> <release>" (its own slot: the releases hash is used alone). */
const ADVERTISE = new LuaScript(`local t = redis.call('TIME')
redis.call('HSET', KEYS[1], ARGV[1], (tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)) .. ' ' .. ARGV[2])`);

/** Redis's now in ms and the whole hash (or the members of a sorted set scored since ARGV[1] ms ago). */
const READ_RELEASES = new LuaScript(`local t = redis.call('TIME')
return {tostring(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)), redis.call('HGETALL', KEYS[1])}`);
const LIVE_NODES = new LuaScript(`local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[1]), '+inf')`);

/** An entry not refreshed for a day belongs to a node long gone: removed when read. */
const FORGET_AFTER_MS = 86_400_000;
/** writes between two reads that forget them: about an hour at the default ttl (one write every 5 s) */
const FORGET_EVERY_WRITES = 720;

/**
 * Which release each live node runs, for a rolling update's diagnosis: a node writes its release
 * into the hash `releases` at start and every ttl/3. A node is live while the directory's `nodes`
 * set (src/ports/directory/directory-redis.ts) says it refreshed within `ttlMs`, or its entry here
 * was written within `ttlMs`; one live there without an entry here runs a release from before
 * this one. Both are read on Redis's clock, in two calls (their keys lie in different Redis
 * Cluster slots).
 */
export class RedisNodeReleases {
  readonly #releasesKey: string;
  readonly #nodesKey: string;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly client: Redis,
    private readonly options: { keys: RedisKeys; nodeId: string; release: string; ttlMs: number; forgetEveryWrites?: number },
  ) {
    this.#releasesKey = options.keys.single('releases');
    this.#nodesKey = options.keys.single('nodes');
  }

  /** Writes this node's entry now and every ttl/3 (a failed write waits for the next), and forgets long-gone nodes' about hourly. */
  start(): void {
    let writes = 0;
    // pod names as node ids: every rollout brings new ones, and only a read forgets the old
    const write = () => void this.advertise().then(() => (++writes % (this.options.forgetEveryWrites ?? FORGET_EVERY_WRITES) === 0 ? this.live() : undefined)).catch(() => {});
    write();
    this.#timer = setInterval(write, Math.max(1, Math.floor(this.options.ttlMs / 3)));
    this.#timer.unref();
  }

  advertise(): Promise<unknown> {
    return ADVERTISE.run(this.client, [this.#releasesKey], [this.options.nodeId, this.options.release]);
  }

  /** Stops writing; the entry lapses with the node's liveness (removed now, the node would read as an older release until then). */
  stop(): void {
    clearInterval(this.#timer);
  }

  /** Every live node with its release, sorted by node. */
  async live(): Promise<NodeRelease[]> {
    const [nodes, read] = await Promise.all([
      LIVE_NODES.run(this.client, [this.#nodesKey], [this.options.ttlMs]) as Promise<string[]>,
      READ_RELEASES.run(this.client, [this.#releasesKey], []) as Promise<[string, string[]]>,
    ]);
    const nowMs = Number(read[0]);
    const fields = read[1];
    const releases = new Map<string, string>();
    const forgotten: string[] = [];
    for (let i = 0; i + 1 < fields.length; i += 2) {
      const node = fields[i]!;
      const value = fields[i + 1]!;
      const space = value.indexOf(' ');
      const at = Number(value.slice(0, space));
      if (nowMs - at <= this.options.ttlMs) releases.set(node, value.slice(space + 1));
      else if (nowMs - at > FORGET_AFTER_MS) forgotten.push(node);
    }
    if (forgotten.length > 0) await this.client.hdel(this.#releasesKey, ...forgotten);
    const all = new Set([...nodes, ...releases.keys()]);
    return [...all].sort().map((node) => ({ node, release: releases.get(node) ?? null }));
  }
}
