import { isValidId } from '../../../proto/subjects.js';
import { MAX_TIMEOUT_MS } from '../../actors/timer-wheel.js';
import { TierError } from '../../errors.js';
import { isValidTraceparent } from '../../trace/tracing.js';

/** A push notification for the people of a home (rule actions, loop-guard reports). */
export interface PushNotification {
  homeId: string;
  title: string;
  body: string;
  /**
   * Two enqueues with the same key within the dedup window deliver once: retries of one rule
   * firing (`rule:<ruleId>:<event>`) do not notify twice.
   */
  dedupKey: string;
  /** who: everyone in the home (the sender resolves the people and their devices) */
  audience?: 'home';
  /** small string map passed to the app (rule id, device) */
  data?: Record<string, string>;
  /**
   * W3C `traceparent` of the rule run that enqueued it (tracing on): each delivery attempt's span
   * joins that trace, on whichever process delivers it. Kept in the job; an invalid one is dropped.
   */
  tp?: string;
}

/** One delivery attempt as the sender sees it. */
export interface PushDelivery {
  /** job id, the same across retries of one notification */
  id: string;
  /** 1 on the first try */
  attempt: number;
  notification: PushNotification;
}

/**
 * Delivers to the push services; a rejection (or throw) asks for a retry. A rejection carrying a
 * numeric `retryAfterMs` (a receiver's `Retry-After`) asks the retry to wait at least that long,
 * at most `MAX_RETRY_AFTER_MS` (see `retryDelay`).
 */
export type PushSender = ((delivery: PushDelivery) => Promise<void>) & {
  /**
   * the longest one attempt takes (ms), for a sender that bounds it (the webhook: its timeout); a
   * queue whose `close` bounds its wait (BullMQ) waits that long for the deliveries in progress
   */
  readonly timeoutMs?: number;
};

/**
 * The longest wait a sender's `retryAfterMs` can ask for: a notification later than this ("the
 * door opened") is worth little, and a receiver's typo must not park the queue's retries for days.
 */
export const MAX_RETRY_AFTER_MS = 600_000;

export interface EnqueueResult {
  id: string;
  /** true: a notification with this dedup key was accepted within the window; nothing new queued */
  duplicate: boolean;
}

export interface PushQueueStats {
  /** waiting for a free sender slot */
  waiting: number;
  /** waiting for the backoff of a retry */
  delayed: number;
  /** with the sender now */
  active: number;
  delivered: number;
  /** attempts used up */
  failed: number;
}

/**
 * The push-event queue (BullMQ in cluster mode): enqueue here, a push worker delivers.
 *
 * - `enqueue` resolves once the notification is accepted (durable in a durable backend) or
 *   rejects with `invalid_field` naming the bad field. It never waits for delivery.
 * - Dedup: an enqueue whose `dedupKey` was accepted less than `dedupTtlMs` ago resolves with the
 *   first id and `duplicate: true` and queues nothing.
 * - At least once: a notification is handed to the sender until one attempt resolves, at most
 *   `attempts` times; after a failed attempt n it waits `min(backoffMs × 2^(n-1), maxBackoffMs)`
 *   before attempt n+1 (exponential backoff), or longer where the sender's error asks for it
 *   (`retryAfterMs`, at most 10 minutes). After the last failed attempt it is kept as failed
 *   (dead letter) and counted; nothing is dropped silently. A dead letter is kept `keepFailedMs`
 *   (a durable queue removes it then by a timer too, the queue quiet or not; the newest 10,000 at
 *   most), the memory queue keeps none. A sender that succeeds but whose
 *   answer is lost, or whose process dies before the queue recorded the success, may see the
 *   same id again: senders de-duplicate by `id` when they must.
 * - No order is promised between notifications; at most `concurrency` are with the sender at once.
 * - `removeHome` drops the home's notifications still queued, waiting for a retry or kept (failed,
 *   and delivered where the backend keeps those) and answers how many; one with the sender at that
 *   moment is left to its outcome (embedded: a retry of it included; BullMQ: a retry of it is
 *   dropped as below). One it cannot see, queued before it (an enqueue not yet committed, a job
 *   moving between states), is dropped, never delivered: the embedded queue's enqueue removes it
 *   as it commits; BullMQ's worker drops a job queued up to 5 s (the nodes' clock skew) after the
 *   erasure began, for an hour. A home's erasure calls it.
 * - `drain` resolves when nothing is waiting, delayed or active; `close` stops taking and
 *   delivering (memory: what is still queued is lost; durable backends keep it for the next worker,
 *   or, on local disk, for the node's next start).
 */
export interface PushQueue {
  /**
   * true: what is queued outlives this process and another worker (or this node's next start)
   * delivers it, so a stopping node need not drain it; false: what is still queued at `close` is
   * lost, so a stopping node drains.
   */
  readonly durable: boolean;
  /**
   * Queues a notification (a duplicate of its dedup key within the window: the first one's id).
   * While its store refuses for now (Redis full or away, a commit the disk refused) it rejects with
   * an error `isUnreachable` knows (errors.ts; BullMQ's: `unavailable`): the caller may try again,
   * the dedup key keeping a second add from queuing twice.
   */
  enqueue(notification: PushNotification): Promise<EnqueueResult>;
  stats(): Promise<PushQueueStats>;
  removeHome(homeId: string): Promise<number>;
  drain(): Promise<void>;
  close(): Promise<void>;
}

export interface PushQueueOptions {
  /**
   * tries per notification, the first included; @default 10: with the default backoff the last
   * comes about 4 minutes after the first, so a receiver's restart or rolling update loses nothing
   */
  attempts?: number;
  /** wait after the first failure; doubles each time; @default 1_000 (ms) */
  backoffMs?: number;
  /** @default 60_000 (ms) */
  maxBackoffMs?: number;
  /** @default 600_000 (ms) */
  dedupTtlMs?: number;
  /** notifications with the sender at once; @default 8 */
  concurrency?: number;
  /** dead letters (attempts used up) kept this long, by a timer too (they hold the notification's words); @default 604_800_000 (ms: a week) */
  keepFailedMs?: number;
  /**
   * notifications queued at most (waiting, waiting for a retry, with the sender): past it an
   * enqueue is refused `unavailable` (`queueFull`), as while the store is away; @default 100_000
   */
  maxQueued?: number;
}

/**
 * An enqueue past `maxQueued`: the receiver has not taken the notifications for long (down, or
 * slower than the homes' notifications), and a queue that only grows holds the node's memory and
 * disk, or Redis's (review "rulesdos2": nothing bounded it). `unavailable`: callers treat it as a
 * backend away (rules sample their lines).
 */
export function queueFull(maxQueued: number): QueueFullError {
  return new QueueFullError(`push queue full: ${maxQueued} notifications queued (TIER_PUSH_MAX_QUEUED); the push receiver is not taking them`);
}

/** `queueFull`'s refusal: not one to wait out in seconds, as a Redis failover is (push-retry.ts tries it once). */
export class QueueFullError extends TierError {
  override name = 'QueueFullError';
  constructor(message: string) {
    super('unavailable', message);
  }
}

/**
 * The options with their defaults, each checked to be a positive integer (a RangeError names the
 * bad one): what a durable queue stores must not depend on a typo.
 */
export function pushQueueSettings(options: PushQueueOptions): Required<PushQueueOptions> {
  const settings = {
    attempts: options.attempts ?? 10,
    backoffMs: options.backoffMs ?? 1_000,
    maxBackoffMs: options.maxBackoffMs ?? 60_000,
    dedupTtlMs: options.dedupTtlMs ?? 600_000,
    concurrency: options.concurrency ?? 8,
    keepFailedMs: options.keepFailedMs ?? 604_800_000,
    maxQueued: options.maxQueued ?? 100_000,
  };
  for (const [name, v] of Object.entries(settings)) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`push queue ${name} must be a positive integer, got ${v}`);
  }
  return settings;
}

export const PUSH_LIMITS = { title: 200, body: 2_000, dedupKey: 256, dataKeys: 32, dataValue: 512 } as const;

/** Keeps in `items`, in order and in place, those `keep` says yes to (a spread of a long queue into splice would overflow the stack). */
export function keepOnly<T>(items: T[], keep: (item: T) => boolean): void {
  let n = 0;
  for (const item of items) if (keep(item)) items[n++] = item;
  items.length = n;
}

/** One attempt: the sender's promise, with a synchronous throw turned into a rejection (a retry too). */
export function attemptDelivery(sender: PushSender, delivery: PushDelivery): Promise<void> {
  try {
    return Promise.resolve(sender(delivery));
  } catch (err) {
    return Promise.reject(err);
  }
}

/** The backoff before attempt `attempt + 1`, after `attempt` failed (ms). */
function backoffDelay(attempt: number, backoffMs: number, maxBackoffMs: number): number {
  return Math.min(maxBackoffMs, backoffMs * 2 ** Math.max(0, attempt - 1));
}

/**
 * The wait before attempt `attempt + 1` after `err`: the backoff, or longer when the sender's
 * error asks for it (`retryAfterMs`, at most `MAX_RETRY_AFTER_MS`); never shorter, so a receiver
 * answering `Retry-After: 0` in a loop still meets the backoff.
 */
export function retryDelay(attempt: number, backoffMs: number, maxBackoffMs: number, err: unknown): number {
  const backoff = backoffDelay(attempt, backoffMs, maxBackoffMs);
  const asked = retryAfterOf(err);
  return asked === undefined ? backoff : Math.max(backoff, Math.min(asked, MAX_RETRY_AFTER_MS));
}

/**
 * When a stored retry is due: no later than the longest retry from `now` (one stored while the wall
 * clock ran ahead, since corrected, waited weeks; review "wrap").
 */
export function retryDueAt(dueAt: number, now: number, maxBackoffMs: number): number {
  return Math.min(dueAt, now + Math.max(maxBackoffMs, MAX_RETRY_AFTER_MS));
}

/** The timer's delay for an instant: at most what setTimeout takes (past 2^31 − 1 ms it fires at once: a 1 ms loop). */
export function timerDelayMs(at: number, now: number): number {
  return Math.min(MAX_TIMEOUT_MS, Math.max(0, at - now));
}

function retryAfterOf(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null || !('retryAfterMs' in err)) return undefined;
  const ms = err.retryAfterMs;
  return typeof ms === 'number' && Number.isFinite(ms) && ms >= 0 ? ms : undefined;
}

function invalid(field: string, what: string): never {
  throw new TierError('invalid_field', `${field}: ${what}`, { field });
}

function text(v: unknown, field: string, max: number): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > max) invalid(field, `must be a string of 1..${max} characters`);
  return v;
}

/** Checks a notification (every implementation does) and returns a clean copy; `invalid_field` names the bad field. */
export function validatePushNotification(n: PushNotification): PushNotification {
  if (typeof n !== 'object' || n === null) invalid('notification', 'must be an object');
  if (!isValidId(n.homeId)) invalid('homeId', 'must be a home id');
  const out: PushNotification = {
    homeId: n.homeId,
    title: text(n.title, 'title', PUSH_LIMITS.title),
    body: text(n.body, 'body', PUSH_LIMITS.body),
    dedupKey: text(n.dedupKey, 'dedupKey', PUSH_LIMITS.dedupKey),
    audience: 'home',
  };
  if (n.audience !== undefined && n.audience !== 'home') invalid('audience', 'must be "home"');
  const data = n.data;
  if (data !== undefined) {
    if (typeof data !== 'object' || data === null || Array.isArray(data)) invalid('data', 'must be a map of strings');
    const keys = Object.keys(data);
    if (keys.length > PUSH_LIMITS.dataKeys) invalid('data', `at most ${PUSH_LIMITS.dataKeys} keys`);
    // own data properties whatever the key: an assignment `out[k] = v` with k = "__proto__"
    // would set the prototype (and drop the entry) instead
    out.data = Object.fromEntries(keys.map((k) => [k, text(data[k], `data.${k}`, PUSH_LIMITS.dataValue)]));
  }
  // only for the trace: an invalid one is dropped rather than refusing the notification
  if (isValidTraceparent(n.tp)) out.tp = n.tp;
  return out;
}
