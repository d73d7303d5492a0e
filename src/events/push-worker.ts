/**
 * `npm run push-worker`: a process that only delivers the cluster's push queue (BullMQ in the
 * Redis at REDIS_URL, keys under TIER_REDIS_PREFIX), for deployments that keep push delivery
 * (and, later, the push services' credentials) apart from the connection nodes. Any number may
 * run beside the nodes' own workers: BullMQ hands each job to one of them. It reads the same
 * configuration as a node; NATS is not used. SIGTERM/SIGINT: deliveries in progress finish, queued
 * jobs stay in Redis for the other workers.
 */
import { RedisKeys } from '../cluster/redis.js';
import { ConfigError, loadConfig } from '../config/config.js';
import { createLogger } from '../log/logger.js';
import { BullMqPushQueue } from './push-queue-bullmq.js';
import { loggingPushSender } from './push-queue-memory.js';

async function main(): Promise<void> {
  let loaded;
  try {
    loaded = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`configuration error: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const { config, warnings } = loaded;
  if (!config.redisUrl) {
    process.stderr.write('configuration error: REDIS_URL: the push worker delivers the cluster queue in Redis\n');
    process.exit(2);
  }
  const log = createLogger(config.logLevel, { node: config.nodeId, part: 'push-worker' });
  for (const w of warnings) log.warn(w);

  // no push service is wired yet: notifications are logged (the embedded default's sender)
  const push = await BullMqPushQueue.connect(config.redisUrl, {
    name: `${config.redisPrefix}${config.nodeId}:push-worker`,
    log,
    keys: new RedisKeys(config.redisPrefix),
    sender: loggingPushSender(log),
  });
  log.info(await push.stats(), 'push worker ready');

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'push worker stopping');
    push.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'push worker shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(`fatal: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
