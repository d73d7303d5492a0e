/**
 * Which workers of the cluster's push queue deliver. A node or push worker without a push service
 * (no TIER_PUSH_WEBHOOK_URL) "delivers" to its log; on a queue shared with workers that post to the
 * webhook, it took its share of every notification and they never reached the receiver (a rolling
 * update that adds the webhook, one pod missing the setting: a review, 2026-12-06). So workers that
 * deliver keep a mark in Redis, and one that only logs gives every job back while the mark stands.
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

  /** Whether a worker that delivers ran within the mark's ttl (looked up at most once a second); false if Redis cannot say. */
  async alive(): Promise<boolean> {
    const now = performance.now();
    if (this.seen !== null && now - this.seen.at < LOOK_MS) return this.seen.alive;
    const alive = await this.redis.exists(this.key).then(
      (n) => n > 0,
      () => false,
    );
    this.seen = { alive, at: now };
    return alive;
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
