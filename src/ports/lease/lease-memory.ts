import type { Lease } from './lease.js';

/**
 * Leases held in this process: shared by every scheduler of the process (embedded default, tests
 * of two schedulers side by side). Expired entries are swept lazily, at most once per `ttl`-ish
 * burst of acquires, so memory stays bounded by the keys live within their ttl.
 */
export class MemoryLease implements Lease {
  private readonly held = new Map<string, { owner: string; expiresAt: number }>();
  private readonly now: () => number;
  private acquires = 0;

  constructor(options: { now?: () => number } = {}) {
    this.now = options.now ?? Date.now;
  }

  async tryAcquire(key: string, owner: string, ttlMs: number): Promise<boolean> {
    if (++this.acquires % 1024 === 0) this.sweep();
    const now = this.now();
    const cur = this.held.get(key);
    if (cur && cur.expiresAt > now) return false;
    this.held.set(key, { owner, expiresAt: now + ttlMs });
    return true;
  }

  async renew(key: string, owner: string, ttlMs: number): Promise<boolean> {
    const now = this.now();
    const cur = this.held.get(key);
    if (!cur || cur.owner !== owner || cur.expiresAt <= now) return false;
    cur.expiresAt = now + ttlMs;
    return true;
  }

  async release(key: string, owner: string): Promise<boolean> {
    const cur = this.held.get(key);
    if (!cur || cur.owner !== owner || cur.expiresAt <= this.now()) return false;
    this.held.delete(key);
    return true;
  }

  /** keys currently held (for tests and diagnostics) */
  get size(): number {
    this.sweep();
    return this.held.size;
  }

  async close(): Promise<void> {
    this.held.clear();
  }

  private sweep(): void {
    const now = this.now();
    for (const [key, v] of this.held) if (v.expiresAt <= now) this.held.delete(key);
  }
}
