/**
 * The push queue's BullMQ worker, and what it does with a job that holds no valid notification
 * (written to Redis by hand, an older producer, a bad restore): failed at once as invalid, without
 * a retry or a call to the sender (src/ports/push-queue/push-queue-bullmq.ts).
 */
import { Job, UnrecoverableError, Worker, type JobJson } from 'bullmq';
import type { Redis } from 'ioredis';
import { validatePushNotification, type PushNotification } from './push-queue.js';

/** A job that holds no valid notification: failed at once (BullMQ retries no UnrecoverableError). */
export class InvalidPushJob extends UnrecoverableError {}

/** The job's notification, validated (a clean copy); throws InvalidPushJob for anything else. */
export function notificationOf(job: Job<PushNotification, void, string>, worker: PushWorker): PushNotification {
  if (worker.unreadable.has(job)) throw new InvalidPushJob('not a push notification: its stored data or options are not JSON');
  try {
    return validatePushNotification(job.data);
  } catch (err) {
    throw new InvalidPushJob(`not a push notification: ${(err as Error).message}`);
  }
}

function parsesAsJson(text: string | undefined): boolean {
  try {
    JSON.parse(text || '{}');
    return true;
  } catch {
    return false;
  }
}

/**
 * BullMQ's worker, reading a job whose stored data or options are not JSON (written by hand, a bad restore):
 * BullMQ's own read throws before any processor runs and leaves the job active, taken again after
 * every stalled check, forever. Here it is read with no data and marked, so the processor fails it.
 */
export class PushWorker extends Worker<PushNotification, void, string> {
  readonly unreadable = new WeakSet<Job<PushNotification, void, string>>();
  /** commands of our own for a job BullMQ could not take (its backend keeps its client to itself) */
  redis: Redis | undefined;

  protected override createJob(json: JobJson, jobId: string): Job<PushNotification, void, string> {
    try {
      return super.createJob(json, jobId);
    } catch {
      const job = super.createJob({ ...json, data: 'null' }, jobId);
      this.unreadable.add(job);
      return job;
    }
  }

  /**
   * BullMQ parses a job's stored options (and progress) as it takes the job, after its script made
   * the job active under `token`: unreadable ones threw there and left the job active for good. The
   * job is found by its lock, those fields reset to defaults, and it is handed on marked unreadable.
   */
  protected override async moveToActive(token: string, name?: string): Promise<Job<PushNotification, void, string>> {
    try {
      return await super.moveToActive(token, name);
    } catch (err) {
      if (!(err instanceof SyntaxError)) throw err;
      const job = await this.takenUnreadable(token);
      if (!job) throw err;
      return job;
    }
  }

  private async takenUnreadable(token: string): Promise<Job<PushNotification, void, string> | undefined> {
    const client = this.redis;
    if (!client) return undefined;
    // the active list holds at most the workers' concurrency
    for (const id of await client.lrange(this.keys.active!, 0, -1)) {
      if ((await client.get(`${this.toKey(id)}:lock`)) !== token) continue;
      const [opts, progress, data] = await client.hmget(this.toKey(id), 'opts', 'progress', 'data');
      const reset: string[] = [];
      if (!parsesAsJson(opts ?? undefined)) reset.push('opts', '{}');
      if (!parsesAsJson(progress ?? undefined)) reset.push('progress', '0');
      // the data too (BullMQ's read of the job would throw again); kept beside it for whoever looks
      if (!parsesAsJson(data ?? undefined)) reset.push('data', 'null', 'unreadableData', data ?? '');
      if (reset.length > 0) await client.hset(this.toKey(id), ...reset);
      const job = await Job.fromId<PushNotification, void, string>(this, id);
      if (!job) return undefined;
      job.token = token;
      this.unreadable.add(job);
      return job;
    }
    return undefined;
  }
}
