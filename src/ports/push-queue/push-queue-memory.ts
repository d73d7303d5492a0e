import { randomUUID } from 'node:crypto';
import { TierError } from '../../errors.js';
import {
  attemptDelivery,
  retryDelay,
  keepOnly,
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

interface Job {
  id: string;
  notification: PushNotification;
  attempt: number;
}

export interface MemoryPushQueueOptions extends PushQueueOptions {
  sender: PushSender;
  /** a notification given up after its last attempt */
  onFailed?: (delivery: PushDelivery, err: unknown) => void;
  now?: () => number;
}

/**
 * The push queue in this process (embedded default, tests): jobs live in memory and are lost at
 * exit. Retries wait on an unref'd timer each (a retry is rare; this is not a hot path).
 */
export class MemoryPushQueue implements PushQueue {
  readonly durable = false;
  private readonly sender: PushSender;
  private readonly attempts: number;
  private readonly backoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly dedupTtlMs: number;
  private readonly concurrency: number;
  private readonly maxQueued: number;
  private readonly now: () => number;
  private readonly onFailed: ((delivery: PushDelivery, err: unknown) => void) | undefined;
  private readonly dedup = new Map<string, { id: string; at: number }>();
  private readonly waiting: Job[] = [];
  private readonly delayed = new Map<Job, NodeJS.Timeout>();
  private active = 0;
  private delivered = 0;
  private failed = 0;
  private closed = false;
  private drainWaiters: Array<() => void> = [];
  /** the jobs given up, newest last (bounded) */
  readonly deadLetters: Array<{ id: string; notification: PushNotification; error: string }> = [];

  constructor(options: MemoryPushQueueOptions) {
    this.sender = options.sender;
    ({ attempts: this.attempts, backoffMs: this.backoffMs, maxBackoffMs: this.maxBackoffMs, dedupTtlMs: this.dedupTtlMs, concurrency: this.concurrency, maxQueued: this.maxQueued } = pushQueueSettings(options));
    this.now = options.now ?? Date.now;
    this.onFailed = options.onFailed;
  }

  async enqueue(notification: PushNotification): Promise<EnqueueResult> {
    if (this.closed) throw new TierError('draining', 'push queue is closed');
    const n = validatePushNotification(notification);
    const now = this.now();
    this.sweepDedup(now);
    const seen = this.dedup.get(n.dedupKey);
    if (seen && now - seen.at < this.dedupTtlMs) return { id: seen.id, duplicate: true };
    if (this.waiting.length + this.delayed.size + this.active >= this.maxQueued) throw queueFull(this.maxQueued);
    const id = randomUUID();
    this.dedup.set(n.dedupKey, { id, at: now });
    this.waiting.push({ id, notification: n, attempt: 0 });
    this.pump();
    return { id, duplicate: false };
  }

  async stats(): Promise<PushQueueStats> {
    return { waiting: this.waiting.length, delayed: this.delayed.size, active: this.active, delivered: this.delivered, failed: this.failed };
  }

  async removeHome(homeId: string): Promise<number> {
    const before = this.waiting.length + this.delayed.size + this.deadLetters.length;
    const keep = (j: { notification: PushNotification }) => j.notification.homeId !== homeId;
    keepOnly(this.waiting, keep);
    for (const [job, timer] of this.delayed) {
      if (keep(job)) continue;
      clearTimeout(timer);
      this.delayed.delete(job);
    }
    keepOnly(this.deadLetters, keep);
    this.settle();
    return before - (this.waiting.length + this.delayed.size + this.deadLetters.length);
  }

  drain(): Promise<void> {
    if (this.idle()) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.delayed.values()) clearTimeout(t);
    this.delayed.clear();
    this.waiting.length = 0;
    this.settle();
  }

  private pump(): void {
    while (!this.closed && this.active < this.concurrency && this.waiting.length > 0) {
      const job = this.waiting.shift()!;
      job.attempt++;
      this.active++;
      const delivery: PushDelivery = { id: job.id, attempt: job.attempt, notification: job.notification };
      attemptDelivery(this.sender, delivery).then(
        () => {
          this.active--;
          this.delivered++;
          this.pump();
          this.settle();
        },
        (err: unknown) => {
          this.active--;
          this.retryOrFail(job, delivery, err);
          this.pump();
          this.settle();
        },
      );
    }
  }

  private retryOrFail(job: Job, delivery: PushDelivery, err: unknown): void {
    if (this.closed) return;
    if (job.attempt >= this.attempts) {
      this.failed++;
      this.deadLetters.push({ id: job.id, notification: job.notification, error: err instanceof Error ? err.message : String(err) });
      if (this.deadLetters.length > 1_000) this.deadLetters.shift();
      this.onFailed?.(delivery, err);
      return;
    }
    const timer = setTimeout(() => {
      this.delayed.delete(job);
      this.waiting.push(job);
      this.pump();
    }, retryDelay(job.attempt, this.backoffMs, this.maxBackoffMs, err));
    timer.unref();
    this.delayed.set(job, timer);
  }

  private idle(): boolean {
    return this.waiting.length === 0 && this.delayed.size === 0 && this.active === 0;
  }

  private settle(): void {
    if (!this.idle() && !this.closed) return;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }

  private sweepDedup(now: number): void {
    // Map order is insertion order: the oldest keys come first
    for (const [key, v] of this.dedup) {
      if (now - v.at < this.dedupTtlMs) break;
      this.dedup.delete(key);
    }
  }
}

/**
 * The sender without TIER_PUSH_WEBHOOK_URL (compose/push-sender.ts): no push service is
 * configured, so a notification is written to the log (one info line) and counts as delivered.
 */
export function loggingPushSender(log: { info(obj: object, msg: string): void }): PushSender {
  return async (d) => {
    log.info({ pushId: d.id, attempt: d.attempt, homeId: d.notification.homeId, title: d.notification.title, body: d.notification.body }, 'push notification (no push service configured: logged)');
  };
}
