import { CLOCK_ORIGIN, sinceOrigin, steadyWallMs } from '../../actors/clock.js';
import type { Directory, HubClaim, HubLocation, OrphanSession } from './directory.js';

/** A held hub's entry: `since` in ms since CLOCK_ORIGIN (a small integer, not a heap number per hub). */
interface Held {
  node: string;
  epoch: number;
  since: number;
}

/**
 * The directory of a single node: one map entry per hub, its holder's location while held, then
 * the last epoch (a number) unless `continueFrom` already answers it, so a later claim gets a larger one; node liveness with the same ttl
 * semantics as the Redis directory. The map lives as long as the process: a hub's first claim in
 * it continues from `continueFrom`, so epochs keep growing across restarts where something the
 * process keeps on disk remembers them (the embedded default's shadow store fences by them).
 */
export class MemoryDirectory implements Directory {
  private readonly hubs = new Map<string, Held | number>();
  private readonly nodeSeen = new Map<string, number>();
  /** nodes whose sessions another took, until their next refresh says so */
  private readonly taken = new Set<string>();

  constructor(
    /** @default 15_000 (ms) */
    private readonly ttlMs = 15_000,
    /** liveness on a clock a wall-clock step does not move: a step forward made every hub offline for a refresh (review "clock") */
    private readonly now: () => number = steadyWallMs,
    /**
     * the largest epoch known for a hub this process has not claimed yet (default: 0). Without it a
     * restarted embedded node gave every hub epoch 1 again, and the shadow store refused the
     * reports of a hub that had reconnected before the restart as a stale session's, unacknowledged
     */
    private readonly continueFrom: (hubId: string) => number = () => 0,
  ) {}

  async claim(hubId: string, node: string, now = this.now()): Promise<HubClaim> {
    const entry = this.hubs.get(hubId);
    const last = entry === undefined ? this.continueFrom(hubId) : lastEpoch(entry);
    const held = { node, epoch: last + 1, since: sinceOrigin(now) };
    this.hubs.set(hubId, held);
    this.nodeSeen.set(node, this.now());
    return { ...location(held), displaced: typeof entry === 'object' };
  }

  async release(hubId: string, node: string, epoch: number): Promise<boolean> {
    const e = this.hubs.get(hubId);
    if (typeof e !== 'object') return true;
    if (e.node === node && e.epoch === epoch) {
      // where the store remembers this epoch (the session wrote), the next claim continues from it:
      // nothing need be kept here (one number per hub ever connected had stayed for the process's life)
      if (this.continueFrom(hubId) >= epoch) this.hubs.delete(hubId);
      else this.hubs.set(hubId, epoch);
    }
    return e.epoch <= epoch;
  }

  /** Hubs with an entry: held, or released with an epoch only this map remembers. */
  get size(): number {
    return this.hubs.size;
  }

  async lookup(hubId: string): Promise<HubLocation | null> {
    const e = this.hubs.get(hubId);
    if (typeof e !== 'object' || !this.alive(e.node)) return null;
    return location(e);
  }

  async holds(hubId: string, node: string, epoch: number): Promise<boolean> {
    const e = this.hubs.get(hubId);
    return typeof e === 'object' && e.node === node && e.epoch === epoch && this.alive(node);
  }

  async refreshNode(node: string): Promise<boolean> {
    this.nodeSeen.set(node, this.now());
    return this.taken.delete(node);
  }

  async relist(node: string, sessions: ReadonlyArray<{ hubId: string; epoch: number }>): Promise<void> {
    const since = sinceOrigin(this.now());
    for (const { hubId, epoch } of sessions) if (this.hubs.get(hubId) === epoch) this.hubs.set(hubId, { node, epoch, since });
    // a node no longer known (its sessions taken, put back by a sweep that failed) is known again as lapsed
    if (!this.nodeSeen.has(node)) this.nodeSeen.set(node, this.now() - this.ttlMs);
  }

  async takeOrphans(node: string, own = false): Promise<OrphanSession[]> {
    const lapsed = [...this.nodeSeen.keys()].filter((n) => (n !== node || own) && !this.alive(n));
    if (lapsed.length === 0) return [];
    const out: OrphanSession[] = [];
    for (const [hubId, e] of this.hubs) {
      if (typeof e !== 'object' || !lapsed.includes(e.node)) continue;
      out.push({ hubId, node: e.node, epoch: e.epoch });
      // handed over once: the entry keeps only its epoch, as a release leaves it
      this.hubs.set(hubId, e.epoch);
    }
    for (const n of lapsed) {
      if (n !== node) this.nodeSeen.delete(n);
      if (out.some((o) => o.node === n)) this.taken.add(n);
    }
    return out;
  }

  async close(): Promise<void> {}

  private alive(node: string): boolean {
    const seen = this.nodeSeen.get(node);
    return seen !== undefined && this.now() - seen < this.ttlMs;
  }
}

function location(held: Held): HubLocation {
  return { node: held.node, epoch: held.epoch, since: held.since + CLOCK_ORIGIN };
}

/** The epoch of a hub's entry: its holder's, or the last one released; 0 for a hub never claimed. */
function lastEpoch(entry: Held | number | undefined): number {
  return typeof entry === 'object' ? entry.epoch : (entry ?? 0);
}
