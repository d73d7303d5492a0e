import type { Directory, HubLocation } from './directory.js';

/**
 * The directory of a single node: a map, epochs from per-hub counters that outlive the entries,
 * node liveness with the same ttl semantics as the Redis directory.
 */
export class MemoryDirectory implements Directory {
  private readonly entries = new Map<string, HubLocation>();
  private readonly epochs = new Map<string, number>();
  private readonly nodeSeen = new Map<string, number>();

  constructor(
    /** @default 15_000 (ms) */
    private readonly ttlMs = 15_000,
    private readonly now: () => number = Date.now,
  ) {}

  async claim(hubId: string, node: string, now = this.now()): Promise<HubLocation> {
    const epoch = (this.epochs.get(hubId) ?? 0) + 1;
    this.epochs.set(hubId, epoch);
    const loc = { node, epoch, since: now };
    this.entries.set(hubId, loc);
    this.nodeSeen.set(node, this.now());
    return { ...loc };
  }

  async release(hubId: string, node: string, epoch: number): Promise<void> {
    const e = this.entries.get(hubId);
    if (e && e.node === node && e.epoch === epoch) this.entries.delete(hubId);
  }

  async lookup(hubId: string): Promise<HubLocation | null> {
    const e = this.entries.get(hubId);
    if (!e || !this.alive(e.node)) return null;
    return { ...e };
  }

  async holds(hubId: string, node: string, epoch: number): Promise<boolean> {
    const e = this.entries.get(hubId);
    return e !== undefined && e.node === node && e.epoch === epoch && this.alive(node);
  }

  async refreshNode(node: string): Promise<void> {
    this.nodeSeen.set(node, this.now());
  }

  async close(): Promise<void> {}

  private alive(node: string): boolean {
    const seen = this.nodeSeen.get(node);
    return seen !== undefined && this.now() - seen < this.ttlMs;
  }
}
