/** The push queue on BullMQ and Redis. Over 400 lines: one adapter (queue, worker, dedup, erasure, cleanup, the deliverer's mark). */
import type { CallObserver } from '../ports.js';
import { randomUUID } from 'node:crypto';
import { MetricsTime, Queue, UnrecoverableError, Worker, type Job, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import { closeRedis, connectRedis, RedisKeys, type RedisTlsFiles } from '../redis.js';
import { InvalidPushJob, notificationOf, PushWorker } from './push-worker-bullmq.js';
import { DelivererMark, GiveWay } from './push-deliverers.js';
import { isRedisRefusal, isUnreachable, TierError } from '../../errors.js';
import type { Logger } from '../../log/logger.js';
import { failureLog, type SampledLog } from '../../log/sampler.js';
import {
  retryDelay,
  pushQueueSettings,
  queueFull,
  validatePushNotification,
  type EnqueueResult,
  type PushDelivery,
  type PushNotification,
  type PushQueue,
  type PushQueueOptions,
  type PushQueueStats,
  type PushSender,
} from './push-queue.js';
import { monotonicMs } from '../../actors/clock.js';

export interface BullMqPushQueueOptions extends PushQueueOptions {
  log: Logger;
  /** the key prefix: the queue's keys are `<prefix>{bull}:<queueName>:…` */
  keys?: RedisKeys;
  /** @default 'push' */
  queueName?: string;
  /**
   * Given: this process also runs a BullMQ worker that delivers to it (`concurrency` at once).
   * Absent: it only enqueues; a worker elsewhere (`src/push-worker.ts`) delivers.
   */
  sender?: PushSender;
  /**
   * The sender only logs (no push service here): while a worker that delivers is running on the
   * queue (its mark in Redis, push-deliverers.ts), this worker is paused, and a job it took before
   * it saw the mark goes back to the queue untried. Otherwise this process marks the queue as delivered.
   */
  logsOnly?: boolean;
  /** @default 30_000 (ms): how long a delivering worker's mark outlives its last refresh */
  delivererTtlMs?: number;
  /**
   * a notification given up (also logged): its attempts used up, or stalled more often than
   * `attempts`; not a job that holds no valid notification (logged and counted, kept as failed)
   */
  onFailed?: (delivery: PushDelivery, err: unknown) => void;
  /** @default 25 (ms): how often `drain` looks at the queue's counts */
  drainPollMs?: number;
  /** @default CLEAN_EVERY_MS, the first after a random part of it (nodes started together clean apart) */
  cleanEveryMs?: number;
}

/** The connections a queue runs on; `close()` quits them. */
export interface BullMqConnections {
  /** commands of the producer side ('fail' profile: an enqueue fails at once while Redis is down) */
  queue: Redis;
  /** the worker's ('wait' profile: `maxRetriesPerRequest: null`); BullMQ duplicates it for its blocking reads */
  worker?: Redis;
}

/** the custom backoff type of our jobs: exponential, capped by the worker's `maxBackoffMs` */
const BACKOFF_TYPE = 'push-exponential';
/** delivered jobs kept for inspection (bull-board): an hour, at most 1 000 */
const KEEP_COMPLETED = { age: 3_600, count: 1_000 };
/** dead letters kept: `keepFailedMs` (a week by default), at most 10 000 */
const KEEP_FAILED_COUNT = 10_000;
/** BullMQ applies both only as another job finishes (a quiet queue kept them, words and all): a worker's node also cleans this often */
const [CLEAN_EVERY_MS, CLEAN_LIMIT] = [300_000, 1_000];
const JOB_NAME = 'push';

/**
 * The push queue on BullMQ (cluster mode): jobs are durable in Redis and delivered by whichever
 * worker takes them, on any node or in a push-worker process.
 *
 * - Dedup: BullMQ's deduplication in throttle mode (`deduplication: { id: dedupKey, ttl:
 *   dedupTtlMs }`), checked and set in the same script that adds the job: the first enqueue of a
 *   key within the ttl wins across all nodes; a duplicate gets the first job's id. The job id
 *   itself is a fresh UUID, not the dedup key: a key enqueued again after the ttl must be a new
 *   job (BullMQ would keep ignoring a job id that is still kept as completed), and BullMQ refuses
 *   `:` in job ids, which dedup keys have (`rule:<id>:<event>`).
 * - Retries: `attempts` per job; the delay after attempt n is `min(backoffMs × 2^(n-1),
 *   maxBackoffMs)`: `backoffMs` travels with the job, the cap is the delivering worker's
 *   `maxBackoffMs` (a BullMQ custom backoff strategy runs in the worker).
 * - At least once: a worker that dies mid-delivery leaves the job to BullMQ's stalled-job check
 *   (30 s), which hands it to another worker (logged); that redelivery counts no attempt. A job
 *   that stalls more often than the worker's `attempts` (its `maxStalledCount`: every worker that
 *   took it died) is failed, logged and counted as one whose attempts are used up: a poison
 *   notification cannot take down every worker forever, and a few rolling restarts fail nothing.
 * - `close` lets the deliveries in progress finish (each ends by the sender's `timeoutMs`), then gives
 *   BullMQ CLOSE_WAIT_MS to record them (its Redis may be down) before dropping the connections: a
 *   graceful stop leaves no stalled job behind.
 * - A job that holds no valid notification (its data or options not JSON, or not one `validatePushNotification`
 *   accepts: someone with Redis access, an older producer) is failed at once, without a retry or a
 *   call to the sender; logged and counted.
 * - Dead letters: jobs that used up their attempts stay in BullMQ's failed set for a week (at
 *   most 10 000), visible and retryable in bull-board; delivered ones stay an hour (at most 1 000).
 * - `concurrency` is per worker process; the cluster-wide bound is the sum over workers.
 * - `stats`: `delivered` and `failed` are BullMQ's metrics counters (queue totals, every worker);
 *   the rest are the queue's current counts. `drain` waits for the whole queue, not only this
 *   node's jobs, and stops waiting at `close`.
 */
export class BullMqPushQueue implements PushQueue {
  readonly durable = true;
  /** the BullMQ queue (bull-board shows it) */
  readonly queue: Queue<PushNotification, void, string>;
  private readonly worker: Worker<PushNotification, void, string> | null = null;
  private readonly log: Logger;
  private readonly jobOptions: { attempts: number; backoffMs: number; dedupTtlMs: number; keepFailed: { age: number; count: number } };
  private cleaner: NodeJS.Timeout | undefined;
  /** how long `close` waits for the deliveries in progress: the sender's `timeoutMs` */
  private readonly deliveryTimeoutMs: number;
  /** the sender's attempts in progress: `close` waits for them */
  private readonly delivering = new Set<Promise<void>>();
  private readonly drainPollMs: number;
  /** BullMQ's `error` events other than a lost connection, sampled: 10 per side and 10 s */
  private readonly errors: SampledLog;
  private closed = false;
  private readonly maxQueued: number;
  /** the queue's jobs as Redis last counted them (every node's), when, and what this node added since */
  private queued = { n: 0, at: -Infinity, added: 0, counting: null as Promise<void> | null };
  /** this worker's side of push-deliverers.ts (null: no worker here), and a logging worker's look at it */
  private mark: DelivererMark | null = null;
  private giveWay: NodeJS.Timeout | null = null;

  /** Takes ownership of the connections: `close()` quits them. */
  constructor(
    private readonly connections: BullMqConnections,
    options: BullMqPushQueueOptions,
  ) {
    this.log = options.log;
    const { attempts, backoffMs, maxBackoffMs, dedupTtlMs, concurrency, keepFailedMs, maxQueued } = pushQueueSettings(options);
    this.maxQueued = maxQueued;
    this.jobOptions = { attempts, backoffMs, dedupTtlMs, keepFailed: { age: Math.ceil(keepFailedMs / 1000), count: KEEP_FAILED_COUNT } };
    this.deliveryTimeoutMs = options.sender?.timeoutMs ?? DELIVERY_WAIT_MS;
    this.drainPollMs = options.drainPollMs ?? 25;
    const keys = options.keys ?? new RedisKeys();
    const name = options.queueName ?? 'push';
    // one hash tag for all of the queue's keys (BullMQ's scripts touch many of them at once)
    const prefix = `${keys.prefix}{bull}`;
    this.queue = new Queue<PushNotification, void, string>(name, { connection: connections.queue, prefix });
    this.errors = failureLog(this.log, 'push queue: redis errors not logged', 'warn');
    this.queue.on('error', (err: Error) => this.redisError('queue', err));
    const sender = options.sender;
    if (!sender) return;
    if (!connections.worker) throw new TypeError('a push queue with a sender needs a worker connection');
    const mark = new DelivererMark(connections.queue, `${prefix}:${name}:deliverer`, options.delivererTtlMs);
    this.mark = mark;
    const worker: PushWorker = new PushWorker(
      name,
      async (job: Job<PushNotification, void, string>) => {
        const notification = notificationOf(job, worker);
        if (await this.erasedSince(notification.homeId, job.timestamp)) throw new HomeErased('its home was erased after it was queued');
        if (options.logsOnly && (await mark.alive()) === true) {
          // back to the queue without an attempt counted; this worker takes none for a while
          await worker.rateLimit(GIVE_WAY_MS);
          throw Worker.RateLimitError();
        }
        const attempt = sender({ ...delivery(job), notification });
        this.delivering.add(attempt);
        try {
          await attempt;
        } finally {
          this.delivering.delete(attempt);
        }
      },
      {
        connection: connections.worker,
        prefix,
        concurrency,
        // a stall (a worker stopped mid-delivery) fails a job only once it stalled more often than it may be tried
        maxStalledCount: attempts,
        metrics: { maxDataPoints: MetricsTime.ONE_WEEK },
        settings: {
          backoffStrategy: (attemptsMade, _type, err, job) => {
            const backoff = job?.opts.backoff;
            const base = typeof backoff === 'object' && backoff.delay !== undefined ? backoff.delay : backoffMs;
            return retryDelay(attemptsMade, base, maxBackoffMs, err);
          },
        },
      },
    );
    worker.redis = connections.worker;
    const every = options.cleanEveryMs ?? CLEAN_EVERY_MS;
    const again = () => void (this.closed || (this.cleaner = setTimeout(clean, every).unref()));
    const clean = () => void this.cleanKept().catch((err: Error) => this.redisError('queue', err)).finally(again);
    this.cleaner = setTimeout(clean, Math.random() * every).unref();
    worker.on('error', (err: Error) => this.redisError('worker', err));
    worker.on('stalled', (jobId: string) => this.log.warn({ pushId: jobId }, 'push notification stalled (its worker stopped mid-delivery): queued again'));
    // after every failed attempt; only one that moved the job to failed is the notification's failure
    worker.on('failed', (job, err) => {
      if (!job || !(err instanceof UnrecoverableError || job.attemptsMade >= (job.opts.attempts ?? 1))) return;
      const data: unknown = job.data;
      const homeId = typeof data === 'object' && data !== null && 'homeId' in data && typeof data.homeId === 'string' ? data.homeId : undefined;
      if (err instanceof HomeErased) {
        // removed, not kept as failed: an erased home's notification keeps none of its words
        void job.remove().catch(() => {});
        this.log.info({ pushId: job.id, homeId }, 'push notification of an erased home dropped');
        return;
      }
      if (err instanceof InvalidPushJob) {
        this.log.warn({ pushId: job.id, homeId, err: err.message }, 'push job invalid: failed without delivery (kept as failed)');
        return;
      }
      this.log.warn({ pushId: job.id, homeId, attempts: job.attemptsMade, err: err.message }, 'push notification failed: attempts used up (kept as failed)');
      let notification: PushNotification;
      try {
        notification = validatePushNotification(job.data);
      } catch {
        return; // failed by stalls before the processor could refuse its data: logged above, no notification to report
      }
      options.onFailed?.({ ...delivery(job), attempt: job.attemptsMade, notification }, err);
    });
    this.worker = worker;
    if (options.logsOnly) this.pauseWhileDelivered(worker, new DelivererMark(connections.queue, mark.key, options.delivererTtlMs), options.delivererTtlMs);
  }

  /**
   * A worker that only logs takes no job at all while a delivering worker's mark stands (paused,
   * looked at each second with a look-up of its own). Giving jobs back alone, its blocking fetch took
   * the wake-up each give-back left for the delivering worker, which then slept 5–10 s (a review of
   * the day's fixes, 2026-12-06); the give-back stays for the second before a look sees a new mark.
   */
  private pauseWhileDelivered(worker: PushWorker, watch: DelivererMark, ttlMs?: number): void {
    const giveWay = new GiveWay(ttlMs);
    const look = async () => {
      const alive = await watch.alive();
      if (this.closed) return;
      const step = giveWay.next(alive, worker.isPaused(), performance.now());
      if (step === 'pause') await worker.pause(true);
      else if (step === 'resume') worker.resume();
    };
    void look().catch(() => {});
    this.giveWay = setInterval(() => void look().catch(() => {}), 1_000).unref();
  }

  /** A delivering worker marks the queue before it takes jobs (see `logsOnly`). */
  private async markDelivering(logsOnly: boolean): Promise<void> {
    if (this.mark && !logsOnly) await this.mark.hold((err) => this.redisError('queue', err as Error));
  }

  /**
   * Opens its own connections to `url` ('fail' profile for the queue, 'wait' for a worker) and
   * resolves once BullMQ is ready on them.
   */
  static async connect(url: string, options: BullMqPushQueueOptions & { name: string; observe?: CallObserver; tls?: RedisTlsFiles }): Promise<BullMqPushQueue> {
    // the worker's connection blocks on purpose (waiting for jobs): only the queue's calls are timed
    const queue = await connectRedis(url, { name: `${options.name}:queue`, log: options.log, observe: options.observe, needsInfo: true, tls: options.tls });
    let worker: Redis | undefined;
    try {
      if (options.sender) worker = await connectRedis(url, { name: `${options.name}:worker`, log: options.log, offline: 'wait', needsInfo: true, tls: options.tls });
      const push = new BullMqPushQueue({ queue, worker }, options);
      await push.ready();
      await push.markDelivering(options.logsOnly === true);
      return push;
    } catch (err) {
      await Promise.allSettled([closeRedis(queue), worker ? closeRedis(worker) : Promise.resolve()]);
      throw err;
    }
  }

  /**
   * BullMQ forwards every failed reconnect of its connections (one per retry, for as long as Redis is
   * away): those are left to the connections' own lines, once per outage (connectRedis). The rest is sampled.
   */
  private redisError(side: 'queue' | 'worker', err: Error): void {
    if (isUnreachable(err) && !isRedisRefusal(err)) return; // a lost connection is told by its watch; a refusal by nothing else
    this.errors.write(side, { err: err.message }, side === 'queue' ? 'push queue: redis error' : 'push worker: redis error');
  }

  /** Resolves once the queue (and the worker, if any) can work. */
  async ready(): Promise<void> {
    await Promise.all([this.queue.waitUntilReady(), this.worker?.waitUntilReady()]);
  }

  /** true while the connections are up */
  get healthy(): boolean {
    return this.connections.queue.status === 'ready' && (this.connections.worker?.status ?? 'ready') === 'ready';
  }

  /** Removes delivered jobs past an hour and dead letters past `keepFailedMs`; answers how many. */
  async cleanKept(): Promise<number> {
    const done = (await this.queue.clean(KEEP_COMPLETED.age * 1000, CLEAN_LIMIT, 'completed')).length;
    return done + (await this.queue.clean(this.jobOptions.keepFailed.age * 1000, CLEAN_LIMIT, 'failed')).length;
  }

  async enqueue(notification: PushNotification): Promise<EnqueueResult> {
    if (this.closed) throw new TierError('draining', 'push queue is closed');
    const n = validatePushNotification(notification);
    const id = randomUUID();
    const opts: JobsOptions = {
      jobId: id,
      attempts: this.jobOptions.attempts,
      backoff: { type: BACKOFF_TYPE, delay: this.jobOptions.backoffMs },
      deduplication: { id: n.dedupKey, ttl: this.jobOptions.dedupTtlMs },
      removeOnComplete: KEEP_COMPLETED,
      removeOnFail: this.jobOptions.keepFailed,
    };
    let job: Job<PushNotification, void, string>;
    let counted: { added: number } | null = null;
    try {
      counted = await this.reserve();
      if (!counted) {
        // a duplicate is answered as it would be with room (Redis holds the key: the add would take nothing)
        const held = await this.queue.getDeduplicationJobId(n.dedupKey);
        if (held) return { id: held, duplicate: true };
        throw queueFull(this.maxQueued);
      }
      job = await this.queue.add(JOB_NAME, n, opts);
      if (job.id !== undefined && job.id !== id) counted.added--;
    } catch (err) {
      if (counted) counted.added--;
      if (err instanceof TierError) throw err;
      // a Redis full or away is a wait (the rules retry it), not a bug
      throw new TierError(isUnreachable(err) ? 'unavailable' : 'internal', `push notification not queued: ${(err as Error).message}`, { cause: err });
    }
    // a duplicate: BullMQ answers with the job that holds the dedup key
    return { id: job.id ?? id, duplicate: job.id !== undefined && job.id !== id };
  }

  /**
   * A place for one more job, counted as added (null: the queue is full): the jobs queued (every
   * node's), counted by Redis at most once a second (a round trip an enqueue waits for then), plus
   * what this node added since, adds still out included (checked and counted in one step: a burst
   * all passed the check while their adds were out, review "diff25"). The bound holds within the
   * other nodes' adds of that second.
   */
  private async reserve(): Promise<{ added: number } | null> {
    const stale = this.queued;
    if (performance.now() - stale.at >= 1_000) {
      stale.counting ??= this.queue.getJobCounts('waiting', 'prioritized', 'delayed', 'active').then((c) => {
        this.queued = { n: (c.waiting ?? 0) + (c.prioritized ?? 0) + (c.delayed ?? 0) + (c.active ?? 0), at: performance.now(), added: 0, counting: null };
      }, (err: unknown) => {
        stale.counting = null;
        throw err;
      });
      await stale.counting;
    }
    const q = this.queued;
    if (q.n + q.added >= this.maxQueued) return null;
    q.added++;
    return q;
  }

  async stats(): Promise<PushQueueStats> {
    const [counts, delivered, failed] = await Promise.all([
      this.queue.getJobCounts('waiting', 'prioritized', 'delayed', 'active'),
      this.queue.getMetrics('completed', 0, 0),
      this.queue.getMetrics('failed', 0, 0),
    ]);
    return {
      waiting: (counts.waiting ?? 0) + (counts.prioritized ?? 0),
      delayed: counts.delayed ?? 0,
      active: counts.active ?? 0,
      delivered: delivered.meta.count,
      failed: failed.meta.count,
    };
  }

  /**
   * Looks through every job BullMQ keeps (queued, delayed, failed, delivered: bounded by
   * KEEP_COMPLETED and KEEP_FAILED), a page at a time, and removes the home's. A job a worker
   * holds (active) cannot be removed and is left to its outcome (a retry included); delivered,
   * it is kept an hour.
   */
  async removeHome(homeId: string): Promise<number> {
    // first: a job this scan cannot see (an enqueue in flight, a job moving between states) is
    // dropped by the worker that takes it (until 2026-12-06 it was delivered: a race review)
    await this.connections.queue.set(this.erasedKey(homeId), String(Date.now()), 'PX', ERASED_KEEP_MS);
    const ids = new Set<string>();
    for (const state of ['waiting', 'prioritized', 'delayed', 'failed', 'completed'] as const) {
      for (let start = 0; ; start += REMOVE_PAGE) {
        const page = await this.queue.getJobs([state], start, start + REMOVE_PAGE - 1, true);
        for (const job of page) if (job?.id !== undefined && job.data?.homeId === homeId) ids.add(job.id);
        if (page.length < REMOVE_PAGE) break;
      }
    }
    let removed = 0;
    for (const id of ids) {
      // 0: gone meanwhile or held by a worker (an active job finishes)
      removed += await this.queue.remove(id).catch(() => 0);
    }
    return removed;
  }

  /** Whether the home was erased after a job queued at `queuedAt` (ms, the queuing node's clock); false if Redis cannot say. */
  private async erasedSince(homeId: string, queuedAt: number): Promise<boolean> {
    const at = await this.connections.queue.get(this.erasedKey(homeId)).catch(() => null);
    return at !== null && queuedAt <= Number(at) + ERASED_SKEW_MS;
  }

  private erasedKey(homeId: string): string {
    return `${this.queue.opts.prefix}:${this.queue.name}:erased:${homeId}`;
  }

  async drain(): Promise<void> {
    while (!this.closed) {
      const s = await this.stats();
      if (s.waiting + s.delayed + s.active === 0) return;
      await new Promise((r) => setTimeout(r, this.drainPollMs));
    }
  }

  /**
   * Stops taking and delivering: waits for the deliveries in progress (each ends by its own
   * timeout, the sender's `timeoutMs`), then up to CLOSE_WAIT_MS for BullMQ to record them and
   * close (it waits for its Redis, which may be down: a drain must end); at most the sender's
   * `timeoutMs` + CLOSE_WAIT_MS in all, then the connections are dropped. Queued jobs stay in Redis.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.mark?.close();
    if (this.giveWay) clearInterval(this.giveWay);
    clearTimeout(this.cleaner);
    const closing = (async () => {
      // stops taking jobs at once; resolves once the jobs it holds are recorded
      await this.worker?.close().catch((err: unknown) => this.log.warn({ err }, 'push worker close failed'));
      await this.queue.close().catch((err: unknown) => this.log.warn({ err }, 'push queue close failed'));
      return true;
    })();
    const deadline = monotonicMs() + this.deliveryTimeoutMs + CLOSE_WAIT_MS;
    let closed: boolean | undefined;
    // again while a job BullMQ was taking as the close began is being delivered
    do {
      while (this.delivering.size > 0 && monotonicMs() < deadline) await within(Promise.allSettled([...this.delivering]), deadline - monotonicMs());
      closed = await within(closing, Math.max(0, Math.min(CLOSE_WAIT_MS, deadline - monotonicMs())));
    } while (closed === undefined && this.delivering.size > 0 && monotonicMs() < deadline);
    // dropping the connections ends a close still waiting for Redis; after one, a QUIT would only wait too
    const quitWithinMs = closed ? undefined : 0;
    const { queue, worker } = this.connections;
    await Promise.allSettled([closeRedis(queue, quitWithinMs), worker ? closeRedis(worker, quitWithinMs) : Promise.resolve()]);
    this.errors.close();
  }
}

/** Jobs read per call while looking for a home's (each comes with its data). */
const REMOVE_PAGE = 500;

/**
 * How long `close` waits for BullMQ's own close (ms), once the deliveries in progress ended, before
 * it drops the connections. A node's drain and a push worker's stop take up to the sender's
 * `timeoutMs` plus this: Kubernetes' grace period must cover it (README, "Push notifications: the webhook").
 */
const CLOSE_WAIT_MS = 2_000;

/** How long `close` waits for the deliveries in progress of a sender that names no `timeoutMs` (ms): the webhook's default. */
const DELIVERY_WAIT_MS = 10_000;
/** A home's erasure mark: jobs of the home queued before it (give or take the nodes' clock skew) are dropped, not delivered. */
class HomeErased extends UnrecoverableError {}
const ERASED_KEEP_MS = 3_600_000;
const ERASED_SKEW_MS = 5_000;
/** how long a worker that only logs takes no job after giving one back to a delivering worker */
const GIVE_WAY_MS = 5_000;

/** `p`'s value, or undefined once `ms` passed. */
async function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

function delivery(job: Job<PushNotification, void, string>): PushDelivery {
  // attemptsMade counts the failed attempts before this one
  return { id: job.id ?? '', attempt: job.attemptsMade + 1, notification: job.data };
}
