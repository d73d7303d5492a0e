/**
 * Which workers of the cluster's push queue deliver. A node or push worker without a push service
 * (no TIER_PUSH_WEBHOOK_URL) "delivers" to its log; on a queue shared with workers that post to the
 * webhook, it took its share of every notification and they never reached the receiver (a rolling
 * update that adds the webhook, one pod missing the setting: a review, 2026-12-06). So workers that
 * deliver keep a mark in Redis, and one that only logs is paused while the mark stands (GiveWay),
 * giving back untried a job it took before it saw the mark.
 */
import type { Redis } from 'ioredis';

/** How long a delivering worker's mark outlives its last refresh (it refreshes at a third of it). */
export const DELIVERER_TTL_MS = 30_000;
/** How long a logging worker trusts its last look at the mark. */
const LOOK_MS = 1_000;

export class DelivererMark {
  private timer: NodeJS.Timeout | null = null;
  private seen: { alive: boolean; at: number } | null = null;

  constructor(
    private readonly redis: Redis,
    readonly key: string,
    private readonly ttlMs = DELIVERER_TTL_MS,
  ) {}

  /** This process delivers: the mark is set now and refreshed until `close`. */
  async hold(onError: (err: unknown) => void): Promise<void> {
    const refresh = () => this.redis.set(this.key, '1', 'PX', this.ttlMs).catch(onError);
    await refresh();
    this.timer = setInterval(refresh, Math.max(10, Math.floor(this.ttlMs / 3))).unref();
  }

  /** Whether a worker that delivers ran within the mark's ttl (looked up at most once a second); null while Redis cannot say. */
  async alive(): Promise<boolean | null> {
    const now = performance.now();
    if (this.seen !== null && now - this.seen.at < LOOK_MS) return this.seen.alive;
    const alive = await this.redis.exists(this.key).then(
      (n) => n > 0,
      () => null,
    );
    if (alive !== null) this.seen = { alive, at: now };
    return alive;
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}

/**
 * When a worker that only logs pauses and resumes, from its looks at the mark. A mark gone is only
 * believed once a delivering worker would have set it again (its refresh, a third of the ttl, and
 * 2 s), and a look Redis could not answer changes nothing: until 2026-12-06 a mark lapsed in a
 * Redis outage resumed the logging workers at once, and they logged most notifications until the
 * delivering worker's next refresh (a review of the fix).
 */
export class GiveWay {
  private absentSince: number | null = null;
  private readonly resumeAfterMs: number;

  constructor(ttlMs = DELIVERER_TTL_MS) {
    this.resumeAfterMs = ttlMs / 3 + 2_000;
  }

  /** What to do after a look at `now` (ms, monotonic) found the mark `alive` (null: unknown), the worker `paused` or not. */
  next(alive: boolean | null, paused: boolean, now: number): 'pause' | 'resume' | null {
    // unknown: the absence seen before counts from the next answer (an outage is no proof of absence)
    if (alive === null) {
      this.absentSince = null;
      return null;
    }
    if (alive) {
      this.absentSince = null;
      return paused ? null : 'pause';
    }
    this.absentSince ??= now;
    return paused && now - this.absentSince >= this.resumeAfterMs ? 'resume' : null;
  }
}
