/**
 * `npm run push-worker`: a process that only delivers the cluster's push queue (BullMQ in the
 * Redis at REDIS_URL, keys under TIER_REDIS_PREFIX), for deployments that keep push delivery
 * (and, later, the push services' credentials) apart from the connection nodes. Any number may
 * run beside the nodes' own workers: BullMQ hands each job to one of them. It reads the same
 * configuration as a node; NATS is not used. At start it waits for Redis as a node waits for its
 * backends (TIER_BACKEND_START_WAIT_MS, src/compose/until-reachable.ts); once started it rides out
 * a Redis restart (BullMQ's worker reconnects). SIGTERM/SIGINT: deliveries in progress finish
 * (within TIER_PUSH_WEBHOOK_TIMEOUT_MS, then 2 s to record them: the pod's grace period must cover
 * it), queued jobs stay in Redis for the other workers.
 */
import { RedisKeys, redisTlsOf } from './ports/redis.js';
import { BackendStartError, startOrExit, untilReachable } from './compose/until-reachable.js';
import { TierError } from './errors.js';
import { closeOnSignals, keepDebuggerShut, loadConfigOrExit, runMain } from './config/process.js';
import { addLogFields, createLogger } from './log/logger.js';
import { BullMqPushQueue } from './ports/push-queue/push-queue-bullmq.js';
import { traceFields } from './trace/active-span.js';
import { startTracing, stopTracing } from './trace/tracing.js';
import { configuredPushSender, pushQueueOptions } from './compose/push-sender.js';

async function main(): Promise<void> {
  const { config, warnings } = loadConfigOrExit();
  if (!config.redisUrl) {
    process.stderr.write('configuration error: REDIS_URL: the push worker delivers the cluster queue in Redis\n');
    process.exit(2);
  }
  const log = createLogger(config.logLevel, { node: config.nodeId, part: 'push-worker' });
  keepDebuggerShut(log);
  for (const w of warnings) log.warn(w);
  // as a node's: on only with an OTLP endpoint; each delivery's span joins the rule run that queued it
  const tracer = await startTracing(config, config.nodeId);
  if (tracer) {
    addLogFields(log, traceFields);
    log.info({ ratio: tracer.ratio }, 'tracing on');
  }

  const url = config.redisUrl;
  // to TIER_PUSH_WEBHOOK_URL, else the log (as a node's)
  const { sender, probe } = configuredPushSender(config, log);
  const connect = () =>
    BullMqPushQueue.connect(url, {
      name: `${config.redisPrefix}${config.nodeId}:push-worker`,
      log,
      keys: new RedisKeys(config.redisPrefix),
      sender,
      logsOnly: !probe.delivers,
      ...pushQueueOptions(config),
      ...redisTlsOf(config),
    }).catch((err: unknown) => {
      throw err instanceof TierError && err.code === 'unavailable' ? new BackendStartError('redis', err) : err;
    });
  const { value: push, stopped } = await startOrExit(log, (signal) => untilReachable(connect, { maxWaitMs: config.backendStartWaitMs, log, signal }));
  const stop = async () => {
    await push.close();
    // the last deliveries' spans are exported
    if (tracer) await stopTracing(tracer, log);
  };
  closeOnSignals(log, 'push worker stopping', stop);
  // a signal right as the wait ended: stop what started
  if (stopped) process.emit('SIGTERM');
  else log.info(await push.stats().catch(() => ({})), 'push worker ready');
}

runMain(main);
