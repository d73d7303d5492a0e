/**
 * A rule's notification while the queue refuses it for now (its Redis full, `MISCONF` on a full
 * disk, a failover, the connection down): tried again, 200 ms doubling to 5 s, for up to `maxWaitMs`.
 * The notification's dedup key makes a second add of one that did land a duplicate, never a second
 * notification. Past the wait, or on any other error (a queue full: at once), the action fails as before. Until 2026-12-07
 * the first refusal dropped it for good, though the hub's event was acknowledged (review "diskfull").
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { isUnreachable } from '../errors.js';
import { QueueFullError } from '../ports/push-queue/push-queue.js';
import { backoff } from '../actors/clock.js';

/** @default how long a notification waits for its queue: a minute late still warns of a leak */
export const PUSH_RETRY_MS = 60_000;

export async function enqueueRetrying<T>(enqueue: () => Promise<T>, maxWaitMs = PUSH_RETRY_MS, now: () => number = performance.now.bind(performance)): Promise<T> {
  const started = now();
  for (let attempt = 0; ; attempt++) {
    try {
      return await enqueue();
    } catch (err) {
      const waitMs = backoff(attempt + 2, 5_000);
      // a full queue waits on a receiver away for long: the run's next actions must not wait a minute on it (review "diff25")
      if (!isUnreachable(err) || err instanceof QueueFullError || now() - started + waitMs > maxWaitMs) throw err;
      // unref'd: a node stopping does not wait for a notification's next try (its rules stop within 5 s)
      await sleep(waitMs, undefined, { ref: false });
    }
  }
}
