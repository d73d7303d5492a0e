import type { Config } from '../config/config.js';
import { webhookTarget } from '../config/shown-url.js';
import type { Logger } from '../log/logger.js';
import { failureLog } from '../log/sampler.js';
import type { DiagnoseProbes } from '../ports/ports.js';
import type { PushQueueOptions, PushSender } from '../ports/push-queue/push-queue.js';
import { loggingPushSender } from '../ports/push-queue/push-queue-memory.js';
import { webhookPushSender, WebhookError } from '../ports/push-queue/push-webhook.js';
import { tracedPushSender } from '../trace/traced-push.js';

export interface ConfiguredPushSender {
  sender: PushSender;
  /** what self-diagnosis reports (`push-sender`) */
  probe: NonNullable<DiagnoseProbes['pushSender']>;
}

/** The retries and concurrency of the configuration, for every queue (embedded, cluster, push worker). */
export function pushQueueOptions(config: Config): PushQueueOptions {
  return { concurrency: config.pushConcurrency, attempts: config.pushAttempts, maxBackoffMs: config.pushMaxBackoffMs, keepFailedMs: config.pushKeepFailedS * 1000, maxQueued: config.pushMaxQueued };
}

/**
 * The push sender of the configuration, for every queue (embedded, cluster, push worker): the
 * webhook when `TIER_PUSH_WEBHOOK_URL` is set, else the log. A failed webhook attempt is logged
 * (10 lines per 10 s, then a count: a receiver away fails every attempt alike); the queue retries it.
 */
export function configuredPushSender(config: Config, log: Logger): ConfiguredPushSender {
  if (config.pushWebhookUrl === undefined) return { sender: tracedPushSender(loggingPushSender(log)), probe: { name: 'log', delivers: false } };
  // the URL as shown: its password and query values masked (here, in every error it causes and in diagnose)
  const target = webhookTarget(config.pushWebhookUrl).shown;
  const post = webhookPushSender({ url: config.pushWebhookUrl, secret: config.pushWebhookSecret!, timeoutMs: config.pushWebhookTimeoutMs });
  const failures = failureLog(log, 'push webhook attempts failed, not logged', 'warn');
  const sender: PushSender = async (delivery) => {
    try {
      await post(delivery);
    } catch (err) {
      const { status, retryAfterMs } = err instanceof WebhookError ? err : {};
      failures.write('webhook', { pushId: delivery.id, attempt: delivery.attempt, homeId: delivery.notification.homeId, status, retryAfterMs, err: (err as Error).message, url: target }, 'push webhook attempt failed (retried while attempts remain)');
      throw err;
    }
  };
  // the tracing wrapper is a new function: it says again how long an attempt takes (a queue's close waits that long)
  return { sender: Object.assign(tracedPushSender(sender), { timeoutMs: post.timeoutMs }), probe: { name: `webhook ${target}`, delivers: true } };
}
