import type { BackendObserver } from '../ports/ports.js';
import type { Config } from '../config/config.js';
import { BullMqPushQueue } from '../ports/push-queue/push-queue-bullmq.js';
import { RedisPendingRuns } from '../ports/pending-runs/pending-runs-redis.js';
import { RedisLease } from '../ports/lease/lease-redis.js';
import { RedisRuleStore } from '../ports/rule-store/rule-store-redis.js';
import type { Logger } from '../log/logger.js';
import { mountBullBoard } from '../admin/bull-board.js';
import type { Ports } from '../ports/ports.js';
import { NatsBus, type NatsBusOptions } from '../ports/bus/bus-nats.js';
import type { StartHold } from './start-hold.js';
import { RedisDirectory } from '../ports/directory/directory-redis.js';
import { RedisNodeReleases } from '../ports/directory/node-releases-redis.js';
import { CachingHubRegistry } from '../ports/hub-registry/hub-registry-cache.js';
import { RedisHubRegistry, RedisNonceStore } from '../ports/hub-registry/hub-registry-redis.js';
import { closeRedis, connectRedis, RedisKeys, redisTlsOf } from '../ports/redis.js';
import { RedisShadowStore } from '../ports/shadow-store/shadow-store-redis.js';
import { redisProbe } from '../ports/redis-probe.js';
import { RedisPing } from '../ports/redis-ping.js';
import { RedisEventHistory } from '../ports/history/history-redis.js';
import { auditRetention, historyRetention, homeLimits } from './history-retention.js';
import { RedisAuditLog } from '../ports/audit/audit-redis.js';
import { RedisRevocationStore } from '../ports/revocations/revocations-redis.js';
import { RedisSecretRecord } from '../ports/secret-record/secret-record-redis.js';
import { TierError } from '../errors.js';
import { BackendStartError } from './until-reachable.js';
import { configuredPushSender, pushQueueOptions, type ConfiguredPushSender } from './push-sender.js';

/** NATS_CREDS_FILE and the NATS_TLS_* files, as NatsBus takes them. */
function natsAuth(config: Config): Pick<NatsBusOptions, 'credsFile' | 'tls'> {
  const tls = { caFile: config.natsTlsCaFile, certFile: config.natsTlsCertFile, keyFile: config.natsTlsKeyFile };
  const given = Object.fromEntries(Object.entries(tls).filter(([, v]) => v !== undefined));
  return { ...(config.natsCredsFile ? { credsFile: config.natsCredsFile } : {}), ...(Object.keys(given).length > 0 ? { tls: given } : {}) };
}

/**
 * The ports of cluster mode: NATS for the bus, Redis for the rest. The shadow store's batches get
 * a connection of their own so a large pipeline never delays a handshake's directory claim;
 * directory, registry, nonces, rules and lease share one; BullMQ has its own. Rejects with a
 * BackendStartError naming the backend that did not answer (src/compose/until-reachable.ts retries);
 * with `hold`, a bus that connected is kept there for the next attempt instead of closed.
 */
export async function clusterPorts(config: Config, log: Logger, observe?: BackendObserver, hold?: StartHold): Promise<Ports> {
  if (!config.natsUrl || !config.redisUrl) throw new Error('cluster mode needs NATS_URL and REDIS_URL');
  const keys = new RedisKeys(config.redisPrefix);
  const node = config.nodeId;
  const opened: Array<() => Promise<void>> = [];
  let bus: NatsBus | undefined;
  let shared: Awaited<ReturnType<typeof connectRedis>>;
  let shadows: RedisShadowStore;
  let push: BullMqPushQueue;
  let pushSender: ConfiguredPushSender;
  let pendingRuns: RedisPendingRuns;
  let history: RedisEventHistory | undefined;
  let connecting: BackendStartError['backend'] = 'nats';
  try {
    // each connection role is its own `client` label: a slow shadow pipeline shows apart from the control calls
    const calls = (role: string) => ({ ...redisTlsOf(config), ...(observe ? { observe: observe.redis(role) } : {}) });
    bus = (await hold?.take()) ?? (await NatsBus.connect(config.natsUrl, { name: node, log: log.child({ port: 'bus' }), pingIntervalMs: config.natsPingMs, ...natsAuth(config), ...(observe ? { observe: observe.bus } : {}) }));
    connecting = 'redis';
    shared = await connectRedis(config.redisUrl, { name: `${config.redisPrefix}${node}:control`, log: log.child({ port: 'redis' }), ...calls('control') });
    const client = shared;
    opened.push(() => closeRedis(client));
    shadows = await RedisShadowStore.connect(config.redisUrl, {
      name: `${config.redisPrefix}${node}:shadows`,
      log: log.child({ port: 'shadows' }),
      keys,
      batchWindowMs: config.shadowBatchMs,
      ...calls('shadows'),
      ...(observe ? { batches: observe.store('shadows') } : {}),
    });
    const batches = shadows;
    opened.push(() => batches.close());
    // every node also delivers (to TIER_PUSH_WEBHOOK_URL, else the log, giving way to nodes that post);
    // `npm run push-worker` adds delivery-only processes
    const pushLog = log.child({ port: 'push' });
    pushSender = configuredPushSender(config, pushLog);
    push = await BullMqPushQueue.connect(config.redisUrl, { name: `${config.redisPrefix}${node}:push`, log: pushLog, keys, sender: pushSender.sender, logsOnly: !pushSender.probe.delivers, ...pushQueueOptions(config), ...calls('push') });
    const queue = push;
    opened.push(() => queue.close());
    // rules waiting in a delay: owned by this node, taken over by another if it dies
    pendingRuns = await RedisPendingRuns.connect(config.redisUrl, { name: `${config.redisPrefix}${node}:delays`, nodeId: node, log: log.child({ port: 'delays' }), keys, ...calls('delays') });
    const runs = pendingRuns;
    opened.push(() => runs.close());
    // every event makes one script call: a connection of its own, like the shadow batches
    if (config.historySize > 0) {
      history = await RedisEventHistory.connect(config.redisUrl, historyRetention(config), {
        name: `${config.redisPrefix}${node}:history`,
        log: log.child({ port: 'history' }),
        keys,
        eventStreamMaxLen: config.eventStreamMaxLen,
        eventStreamMaxAgeMs: config.eventStreamMaxAgeS * 1000,
        // the node's rules marks: dead as the directory counts it, so its events are claimed well within the catch-up window
        nodeId: node,
        marksTtlMs: config.directoryTtlMs,
        ...calls('history'),
      });
    }
  } catch (err) {
    // a node that cannot reach a backend does not start; close what did open
    await Promise.allSettled(opened.map((close) => close()));
    if (bus) await (hold ? hold.keep(bus) : bus.close());
    throw err instanceof TierError && err.code === 'unavailable' ? new BackendStartError(connecting, err) : err;
  }
  // a hung Redis keeps its connections open and ready: only an unanswered PING on the control connection tells
  const ping = new RedisPing(shared, { intervalMs: config.redisPingMs, log: log.child({ port: 'redis' }) });
  const releases = new RedisNodeReleases(shared, { keys, nodeId: config.nodeId, release: config.release, ttlMs: config.directoryTtlMs });
  releases.start();
  const directory = new RedisDirectory(shared, { keys, ttlMs: config.directoryTtlMs });
  const registry = new CachingHubRegistry(new RedisHubRegistry(shared, { keys }), undefined, undefined, undefined, undefined, () => ping.answering);
  const nonces = new RedisNonceStore(shared, { keys });
  // rule writes are rare: on the control connection; the store opens its own subscriber for `watch`
  const rules = new RedisRuleStore(shared, { log: log.child({ port: 'rules' }), keys, limits: homeLimits(config) });
  const lease = new RedisLease(shared, { keys });
  // a few writes per control action, batched per turn: on the control connection
  const audit = new RedisAuditLog(shared, auditRetention(config), { keys, log: log.child({ port: 'audit' }) });
  // the services' stream is written with the history: without history there is none
  const historyOn = history !== undefined;
  return {
    bus,
    link: bus,
    directory,
    shadows,
    registry,
    nonces,
    rules,
    lease,
    push,
    pendingRuns,
    ...(history ? { history } : {}),
    revocations: new RedisRevocationStore(shared, { keys }),
    secretRecord: new RedisSecretRecord(shared, { keys }),
    audit,
    adminPages: [(admin, context) => mountBullBoard(admin, { queues: [push.queue], ...context, log: context.log.child({ part: 'bull-board' }) })],
    // shared by every node: reported, never a reason for readiness to drop this node (PortsHealth)
    health() {
      const nats = bus.status();
      const shadowsOk = shadows.healthy;
      return {
        // a hung Redis keeps its connections open: an unanswered PING or failing shadow writes show it
        backends: { nats: bus.connected, redis: shared.status === 'ready' && ping.answering && shadowsOk },
        detail: {
          nats,
          redis: { status: shared.status, answering: ping.answering },
          shadows: { healthy: shadowsOk, pendingWrites: shadows.pendingWrites },
          rules: { watching: rules.watching, resubscribes: rules.resubscribes },
          push: { healthy: push.healthy },
          audit: { lost: audit.lost },
        },
      };
    },
    diagnose: {
      natsRtt: () => bus.rtt(),
      redis: redisProbe(shared, { keys, eventStreamMaxLen: historyOn ? config.eventStreamMaxLen : 0 }),
      pushSender: pushSender.probe,
      releases: () => releases.live(),
    },
    async close() {
      ping.stop();
      releases.stop();
      await Promise.allSettled([bus.close(), shadows.close(), push.close(), pendingRuns.close(), history?.close(), audit.close()]);
      // the rule store quits its subscriber and the control connection (the lease shares it)
      await rules.close();
      await closeRedis(shared);
    },
  };
}
