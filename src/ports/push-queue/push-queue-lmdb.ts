/** The embedded default's push queue on LMDB. Over 400 lines: one adapter (its jobs, retries, dedup, erasures and dead letters share their state). */
import { randomUUID } from 'node:crypto';
import type { Database } from 'lmdb';
import type { DataStore } from '../lmdb.js';
import { TierError } from '../../errors.js';
import type { Logger } from '../../log/logger.js';
import {
  attemptDelivery,
  retryDelay, retryDueAt, timerDelayMs,
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
import { agingNowMs, dueNowMs } from '../../actors/clock.js';

export interface LmdbPushQueueOptions extends PushQueueOptions {
  sender: PushSender;
  /** a notification given up after its last attempt (also logged) */
  onFailed?: (delivery: PushDelivery, err: unknown) => void;
  log?: Logger;
  /**
   * the clock of retry instants and the dedup window (ms); @default times stored on the wall clock,
   * due times checked on dueNowMs and ages on agingNowMs: on the wall clock alone a step back held a
   * retry for as long as the step, and a step forward made the window forget keys (review "clock");
   * stored on the steady clock, the next process judged them a step off (review diff26)
   */
  now?: () => number;
  /** runs `fn` after `ms`, returns the cancel; @default an unref'd setTimeout */
  timer?: (fn: () => void, ms: number) => () => void;
  /** dead letters kept at most, the newest; @default 10_000 */
  maxFailed?: number;
}

/** A queued job as stored: `attempt` failed attempts so far, due at `dueAt` (ms; 0: now). */
interface StoredJob {
  notification: string;
  attempt: number;
  dueAt: number;
  enqueuedAt: number;
}

/** A notification given up after its last attempt, as kept in the failed set. */
export interface FailedPush {
  id: string;
  notification: PushNotification;
  attempts: number;
  error: string;
  failedAt: number;
}

type StoredFailure = Omit<FailedPush, 'notification'> & { notification: string };
type Key = Array<string | number>;

/** dead letters kept: the newest 10 000 (the BullMQ queue's bound), older ones dropped as new ones come */
const KEEP_FAILED = 10_000;
/** dead letters past `keepFailedMs` are looked for this often (and at open, and at each failure) */
const TRIM_FAILED_EVERY_MS = 3_600_000;
/** expired dedup keys removed per enqueue: the work of one call stays bounded */
const SWEEP_PER_CALL = 100;

/**
 * The push queue in the node's LMDB store (the embedded default), sub-database 'push': jobs
 * outlive the process and the next start of this node delivers them (`durable` = true). Keys:
 * `['job', id]` (queued and delayed jobs, the notification as JSON: msgpackr would rename a
 * `__proto__` data key), `['failed', failedAt, id]` (dead letters, oldest first), `['dedup', key]`,
 * `['count', name]` (totals).
 *
 * - `enqueue` resolves once the job and its dedup key are committed (one transaction).
 * - Dedup survives a restart: the window is measured on the stored instant.
 * - A failed attempt stores the retry instant with the attempt count; after a restart a delayed
 *   retry waits out what is left of its backoff. The last failed attempt moves the job to the
 *   failed set in one transaction (kept, newest 10 000) and counts it.
 * - Delivered: the job is deleted in a write committed right after the sender resolves; `drain`
 *   resolves only after that commit. A process that dies between the sender resolving and that
 *   commit (or during the attempt) delivers the job again at the next start, with the same id and
 *   attempt number (an interrupted attempt is not counted): at least once, senders de-dup by id.
 * - `stats`: `delivered` and `failed` are totals kept in the store (all runs of this node).
 * - `close` stops taking and starting deliveries, waits for those with the sender and for the
 *   writes issued; what is queued stays for the next start. The DataStore stays open.
 * - Timers: one unref'd timer, for the earliest retry due.
 */
/** How long a home's erasure is remembered once it ended, for the enqueues whose commit was out (ms). */
const ERASURE_KEPT_MS = 60_000;

export class LmdbPushQueue implements PushQueue {
  readonly durable = true;
  private readonly db: Database<unknown, Key>;
  private readonly settings: Required<PushQueueOptions>;
  private readonly sender: PushSender;
  private readonly onFailed: LmdbPushQueueOptions['onFailed'];
  private readonly log: Logger | undefined;
  private readonly now: () => number;
  private readonly dueNow: () => number;
  private readonly ageNow: () => number;
  private readonly timer: (fn: () => void, ms: number) => () => void;
  /** dedup keys by accepted instant, oldest first (a mirror of the stored ones, for sweeping) */
  private readonly dedup = new Map<string, { id: string; at: number }>();
  private readonly waiting: string[] = [];
  /** id → due instant (ms) */
  private readonly delayed = new Map<string, number>();
  private armed: { at: number; cancel: () => void } | null = null;
  private active = 0;
  private delivered = 0;
  private failed = 0;
  private closed = false;
  /** enqueues whose commit is out: counted against `maxQueued` */
  private enqueuing = 0;
  /**
   * Each home's latest erasure (its number, whether it ended, when): an enqueue whose commit was out
   * when it began, or that began while it ran, removes its job once committed, since `removeHome`
   * cannot see it (queued only then; until 2026-12-06 delivered after the erasure answered: a race
   * review, and one begun during the erasure's own commit: a review of that fix). Kept a minute
   * after it ends: an enqueue begun after it (the home created again) is not touched.
   */
  private erasures = 0;
  private readonly erased = new Map<string, { n: number; ended: number | null }>();
  private idleWaiters: Array<() => void> = [];
  private trimTimer: NodeJS.Timeout | undefined;
  private readonly maxFailed: number;

  private constructor(
    private readonly data: DataStore,
    options: LmdbPushQueueOptions,
  ) {
    this.db = data.db<unknown>('push') as Database<unknown, Key>;
    this.settings = pushQueueSettings(options);
    this.maxFailed = options.maxFailed ?? KEEP_FAILED;
    this.sender = options.sender;
    this.onFailed = options.onFailed;
    this.log = options.log;
    this.now = options.now ?? Date.now;
    this.dueNow = options.now ?? dueNowMs;
    this.ageNow = options.now ?? agingNowMs;
    this.timer =
      options.timer ??
      ((fn, ms) => {
        const t = setTimeout(fn, ms);
        t.unref();
        return () => clearTimeout(t);
      });
  }

  /** Opens the queue on `data` and starts delivering what an earlier run left queued. */
  static async open(data: DataStore, options: LmdbPushQueueOptions): Promise<LmdbPushQueue> {
    const q = new LmdbPushQueue(data, options);
    await q.load();
    await q.trimFailed();
    return q;
  }

  async enqueue(notification: PushNotification): Promise<EnqueueResult> {
    if (this.closed) throw new TierError('draining', 'push queue is closed');
    const n = validatePushNotification(notification);
    const age = this.ageNow();
    this.sweepDedup(age);
    const seen = this.dedup.get(n.dedupKey);
    if (seen && age - seen.at < this.settings.dedupTtlMs) return { id: seen.id, duplicate: true };
    // enqueues whose commit is out count too: a burst all passed the check before (review "diff25")
    if (this.waiting.length + this.delayed.size + this.active + this.enqueuing >= this.settings.maxQueued) throw queueFull(this.settings.maxQueued);
    this.enqueuing++;
    try {
      return await this.store(n, this.now());
    } finally {
      this.enqueuing--;
    }
  }

  private async store(n: PushNotification, now: number): Promise<EnqueueResult> {
    const id = randomUUID();
    // the mirror first: an enqueue of the same key in this turn is a duplicate already
    this.dedup.delete(n.dedupKey);
    this.dedup.set(n.dedupKey, { id, at: now });
    const job: StoredJob = { notification: JSON.stringify(n), attempt: 0, dueAt: 0, enqueuedAt: now };
    const before = this.erasures;
    const erasingAtStart = this.erased.get(n.homeId)?.ended === null;
    try {
      // puts of one turn commit as one transaction
      await this.data.written(Promise.all([this.db.put(['dedup', n.dedupKey], { id, at: now }), this.db.put(['job', id], job)]));
      const erasure = this.erased.get(n.homeId);
      if (erasure !== undefined && (erasure.n > before || erasingAtStart)) {
        await this.db.remove(['job', id]);
        return { id, duplicate: false };
      }
    } catch (err) {
      if (this.dedup.get(n.dedupKey)?.id === id) this.dedup.delete(n.dedupKey);
      throw new TierError('internal', `push notification not queued: ${(err as Error).message}`, { cause: err });
    }
    if (this.closed) return { id, duplicate: false }; // committed: the next start delivers it
    this.waiting.push(id);
    this.pump();
    return { id, duplicate: false };
  }

  async stats(): Promise<PushQueueStats> {
    return { waiting: this.waiting.length, delayed: this.delayed.size, active: this.active, delivered: this.delivered, failed: this.failed };
  }

  drain(): Promise<void> {
    if (this.idle() || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Queued and delayed jobs of the home (not one with the sender now: it is left to its outcome) and its dead letters, removed in one commit. */
  async removeHome(homeId: string): Promise<number> {
    const now = performance.now();
    for (const [home, e] of this.erased) if (e.ended !== null && now - e.ended > ERASURE_KEPT_MS) this.erased.delete(home);
    const erasure = { n: ++this.erasures, ended: null as number | null };
    this.erased.set(homeId, erasure);
    try {
      return await this.removeHomeJobs(homeId);
    } finally {
      erasure.ended = performance.now();
    }
  }

  private async removeHomeJobs(homeId: string): Promise<number> {
    const ofHome = (notification: string) => (JSON.parse(notification) as PushNotification).homeId === homeId;
    const ids = new Set<string>();
    for (const id of [...this.waiting, ...this.delayed.keys()]) {
      const job = this.db.get(['job', id]) as StoredJob | undefined;
      if (job && ofHome(job.notification)) ids.add(id);
    }
    const keys: Key[] = [...ids].map((id) => ['job', id]);
    for (const { key, value } of this.range('failed')) if (ofHome((value as StoredFailure).notification)) keys.push(key);
    if (keys.length === 0) return 0;
    keepOnly(this.waiting, (id) => !ids.has(id));
    for (const id of ids) this.delayed.delete(id);
    await this.data.written(Promise.all(keys.map((k) => this.db.remove(k))));
    this.settle();
    return keys.length;
  }

  /** The failed set (dead letters), oldest first; at most `limit`. */
  failedJobs(limit = 100): FailedPush[] {
    const out: FailedPush[] = [];
    for (const { value } of this.range('failed')) {
      if (out.length >= limit) break;
      const f = value as StoredFailure;
      out.push({ ...f, notification: JSON.parse(f.notification) as PushNotification });
    }
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.armed?.cancel();
    this.armed = null;
    clearInterval(this.trimTimer);
    this.settle();
    // deliveries with the sender finish and record their outcome; queued jobs stay stored
    while (this.active > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    await this.data.flushed();
  }

  // ---- delivery ---------------------------------------------------------------------------------

  private pump(): void {
    while (!this.closed && this.active < this.settings.concurrency && this.waiting.length > 0) {
      const id = this.waiting.shift()!;
      const job = this.db.get(['job', id]) as StoredJob | undefined;
      if (!job) continue;
      this.active++;
      const delivery: PushDelivery = { id, attempt: job.attempt + 1, notification: JSON.parse(job.notification) as PushNotification };
      attemptDelivery(this.sender, delivery)
        .then(
          () => this.recordDelivered(id),
          (err: unknown) => this.retryOrFail(id, job, delivery, err),
        )
        .catch((err: unknown) => {
          // not recorded: the job stays stored and the next start delivers it again
          this.log?.error({ err, pushId: id }, 'push queue: outcome of a delivery not stored');
        })
        .finally(() => {
          this.active--;
          this.pump();
          this.settle();
        });
    }
  }

  private async recordDelivered(id: string): Promise<void> {
    // counted first: outcomes of one turn each write a larger total, committed in order
    this.delivered++;
    await this.data.written(Promise.all([this.db.remove(['job', id]), this.db.put(['count', 'delivered'], this.delivered)]));
  }

  private async retryOrFail(id: string, job: StoredJob, delivery: PushDelivery, err: unknown): Promise<void> {
    const attempt = delivery.attempt;
    if (attempt >= this.settings.attempts) {
      const error = err instanceof Error ? err.message : String(err);
      const now = this.now();
      // failed keys sort by instant (ids after it), so the oldest are the first to go
      const kept: StoredFailure = { id, notification: job.notification, attempts: attempt, error, failedAt: now };
      this.failed++;
      const writes = [this.db.remove(['job', id]), this.db.put(['failed', now, id], kept), this.db.put(['count', 'failed'], this.failed)];
      // by the set's size, not the count of all failures: with dead letters gone by age or erasure
      // the count stayed past the cap and every failure removed the oldest, however young
      let over = this.db.getKeysCount({ start: ['failed'], end: ['failed', Number.MAX_SAFE_INTEGER] }) + 1 - this.maxFailed;
      for (const { key } of this.range('failed')) {
        if (over-- <= 0) break;
        writes.push(this.db.remove(key));
      }
      writes.push(...this.expiredFailures(this.ageNow()));
      await this.data.written(Promise.all(writes));
      this.log?.warn({ pushId: id, homeId: delivery.notification.homeId, attempts: attempt, err: error }, 'push notification failed: attempts used up (kept as failed)');
      this.onFailed?.(delivery, err);
      return;
    }
    // on the due clock: from the wall clock after a step back, each retry was due at once
    const dueAt = this.dueNow() + retryDelay(attempt, this.settings.backoffMs, this.settings.maxBackoffMs, err);
    await this.data.written(this.db.put(['job', id], { ...job, attempt, dueAt } satisfies StoredJob));
    this.delay(id, dueAt);
  }

  // ---- retries ----------------------------------------------------------------------------------

  private delay(id: string, dueAt: number): void {
    if (this.closed) return;
    this.delayed.set(id, dueAt);
    if (!this.armed || dueAt < this.armed.at) this.arm(dueAt);
  }

  /** One timer, for the earliest retry: it moves every due retry to the waiting list. */
  private arm(at: number): void {
    this.armed?.cancel();
    const cancel = this.timer(() => this.wake(), timerDelayMs(at, this.dueNow()));
    this.armed = { at, cancel };
  }

  private wake(): void {
    this.armed = null;
    if (this.closed) return;
    const now = this.dueNow();
    let next = Infinity;
    for (const [id, at] of this.delayed) {
      if (at <= now) {
        this.delayed.delete(id);
        this.waiting.push(id);
      } else next = Math.min(next, at);
    }
    if (next !== Infinity) this.arm(next);
    this.pump();
  }

  /** Removes the dead letters kept past `keepFailedMs` (oldest first: they sort by instant). */
  private expiredFailures(now: number): Array<Promise<boolean>> {
    const removed: Array<Promise<boolean>> = [];
    for (const { key } of this.range('failed')) {
      if ((key[1] as number) > now - this.settings.keepFailedMs) break;
      removed.push(this.db.remove(key));
    }
    return removed;
  }

  /** Removes the expired dead letters now and every TRIM_FAILED_EVERY_MS: a quiet queue keeps none past the age. */
  trimFailed(): Promise<unknown> {
    this.trimTimer ??= setInterval(() => void this.trimFailed(), TRIM_FAILED_EVERY_MS).unref();
    return Promise.all(this.expiredFailures(this.ageNow())).catch((err: unknown) => this.log?.warn({ err }, 'push dead letters past their age not removed; tried again later'));
  }

  // ---- state ------------------------------------------------------------------------------------

  /** Reads what an earlier run left: counters, dedup keys (expired ones removed), queued jobs. */
  private async load(): Promise<void> {
    const age = this.ageNow();
    const now = this.dueNow();
    this.delivered = (this.db.get(['count', 'delivered']) as number | undefined) ?? 0;
    this.failed = (this.db.get(['count', 'failed']) as number | undefined) ?? 0;
    const dedup: Array<[string, { id: string; at: number }]> = [];
    const expired: Key[] = [];
    for (const { key, value } of this.range('dedup')) {
      const d = value as { id: string; at: number };
      if (age - d.at < this.settings.dedupTtlMs) dedup.push([key[1] as string, d]);
      else expired.push(key);
    }
    for (const [k, d] of dedup.sort((a, b) => a[1].at - b[1].at)) this.dedup.set(k, d);
    const jobs: Array<[string, StoredJob]> = [];
    for (const { key, value } of this.range('job')) jobs.push([key[1] as string, value as StoredJob]);
    await Promise.all(expired.map((k) => this.db.remove(k)));
    // the oldest first, as enqueued
    for (const [id, job] of jobs.sort((a, b) => a[1].enqueuedAt - b[1].enqueuedAt)) {
      if (job.dueAt <= now) this.waiting.push(id);
      else this.delay(id, retryDueAt(job.dueAt, now, this.settings.maxBackoffMs));
    }
    this.pump();
  }

  private *range(kind: string): Generator<{ key: Key; value: unknown }> {
    for (const entry of this.db.getRange({ start: [kind] })) {
      if (entry.key[0] !== kind) return;
      yield entry;
    }
  }

  private sweepDedup(now: number): void {
    let swept = 0;
    // Map order is accepted order: the oldest keys come first
    for (const [key, v] of this.dedup) {
      if (now - v.at < this.settings.dedupTtlMs || swept++ >= SWEEP_PER_CALL) break;
      this.dedup.delete(key);
      // a key whose removal fails stays behind harmlessly: the next open sweeps it
      this.db.remove(['dedup', key]).catch(() => {});
    }
  }

  private idle(): boolean {
    return this.waiting.length === 0 && this.delayed.size === 0 && this.active === 0;
  }

  private settle(): void {
    if (!this.idle() && !this.closed) return;
    if (this.closed && this.active > 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}

/** One record of sub-database `push` as a backup holds it, decoded (see `decodePushRecord`). */
export type PushRecord =
  | { type: 'job'; id: string; notification: PushNotification; attempt: number; dueAt: number }
  | { type: 'failed'; failure: FailedPush }
  | { type: 'dedup' | 'count' };

/**
 * Decodes one record of sub-database `push` (a key and value as this adapter stores them, e.g.
 * read from a backup): a queued or delayed job, a dead letter, or bookkeeping (dedup keys,
 * totals). Throws a TypeError on anything else.
 */
export function decodePushRecord(key: unknown, value: unknown): PushRecord {
  const k = Array.isArray(key) ? (key as unknown[]) : [];
  if (k[0] === 'job' && typeof k[1] === 'string') {
    const job = value as StoredJob;
    return { type: 'job', id: k[1], notification: JSON.parse(job.notification) as PushNotification, attempt: job.attempt, dueAt: job.dueAt };
  }
  if (k[0] === 'failed') {
    const f = value as StoredFailure;
    return { type: 'failed', failure: { ...f, notification: JSON.parse(f.notification) as PushNotification } };
  }
  if (k[0] === 'dedup' || k[0] === 'count') return { type: k[0] };
  throw new TypeError(`not a push queue record: ${JSON.stringify(key)}`);
}
