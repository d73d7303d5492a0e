import type { Config } from '../config/config.js';
import { MemoryPushQueue, loggingPushSender } from '../events/push-queue-memory.js';
import { MemoryLease } from '../rules/lease-memory.js';
import { MemoryRuleStore } from '../rules/rule-store-memory.js';
import type { Logger } from '../log/logger.js';
import type { Ports } from '../server.js';
import { NatsBus } from './bus-nats.js';
import { RedisDirectory } from './directory-redis.js';
import { CachingHubRegistry } from './hub-registry-cache.js';
import { RedisHubRegistry, RedisNonceStore } from './hub-registry-redis.js';
import { closeRedis, connectRedis, RedisKeys } from './redis.js';
import { RedisShadowStore } from './shadow-store-redis.js';

/**
 * The ports of cluster mode: NATS for the bus, Redis for the rest. The shadow store's batches get
 * a connection of their own so a large pipeline never delays a handshake's directory claim;
 * directory, registry and nonces share one. A node does not start until both backends answer.
 */
export async function clusterPorts(config: Config, log: Logger): Promise<Ports> {
  if (!config.natsUrl || !config.redisUrl) throw new Error('cluster mode needs NATS_URL and REDIS_URL');
  const keys = new RedisKeys(config.redisPrefix);
  const node = config.nodeId;
  const opened: Array<() => Promise<void>> = [];
  let bus: NatsBus;
  let shared: Awaited<ReturnType<typeof connectRedis>>;
  let shadows: RedisShadowStore;
  try {
    bus = await NatsBus.connect(config.natsUrl, { name: node, log: log.child({ port: 'bus' }) });
    opened.push(() => bus.close());
    shared = await connectRedis(config.redisUrl, { name: `${config.redisPrefix}${node}:control`, log: log.child({ port: 'redis' }) });
    const client = shared;
    opened.push(() => closeRedis(client));
    shadows = await RedisShadowStore.connect(config.redisUrl, {
      name: `${config.redisPrefix}${node}:shadows`,
      log: log.child({ port: 'shadows' }),
      keys,
      batchWindowMs: config.shadowBatchMs,
    });
  } catch (err) {
    // a node that cannot reach a backend does not start; close what did open
    await Promise.allSettled(opened.map((close) => close()));
    throw err;
  }
  const directory = new RedisDirectory(shared, { keys, ttlMs: config.directoryTtlMs });
  const registry = new CachingHubRegistry(new RedisHubRegistry(shared, { keys }));
  const nonces = new RedisNonceStore(shared, { keys });
  return {
    bus,
    directory,
    shadows,
    registry,
    nonces,
    // TODO(issue 4, cluster): Redis rule store and lease, BullMQ push queue; until then per node
    rules: new MemoryRuleStore(),
    lease: new MemoryLease(),
    push: new MemoryPushQueue({ sender: loggingPushSender(log) }),
    health() {
      const nats = bus.status();
      const redisOk = shared.status === 'ready';
      const shadowsOk = shadows.healthy;
      return {
        ok: bus.connected && redisOk && shadowsOk,
        detail: {
          nats,
          redis: { status: shared.status },
          shadows: { healthy: shadowsOk, pendingWrites: shadows.pendingWrites },
        },
      };
    },
    async close() {
      await Promise.allSettled([bus.close(), shadows.close()]);
      await closeRedis(shared);
    },
  };
}
