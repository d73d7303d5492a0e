import { TierError } from '../../errors.js';
import {
  collectPage,
  copyRecord,
  patched,
  rotated,
  scanStart,
  type HubPage,
  type HubPatch,
  type HubQuery,
  infoOf,
  type HubInfo,
  type HubRecord,
  type HubPlacement,
  type HubRegistry,
  holds,
  type HubExpect,
  type NonceStore,
  nonceForgettable,
} from './hub-registry.js';
import { monotonicMs } from '../../actors/clock.js';

/** Hubs provisioned in this process (embedded default): gone when the process ends. */
export class MemoryHubRegistry implements HubRegistry {
  readonly inTurn = true;
  private readonly hubs = new Map<string, HubRecord>();
  /** home id → its hub ids */
  private readonly homes = new Map<string, Set<string>>();
  /** every hub id in ascending order, made on the first list after a change */
  private sorted: string[] | null = null;

  async create(record: HubRecord): Promise<void> {
    if (this.hubs.has(record.hubId)) throw new TierError('already_exists', `hub ${record.hubId} is already provisioned`);
    this.put(copyRecord(record));
  }

  async get(hubId: string): Promise<HubRecord | null> {
    const r = this.hubs.get(hubId);
    return r ? copyRecord(r) : null;
  }

  async lookup(hubId: string): Promise<HubInfo | null> {
    return infoOf(await this.get(hubId));
  }

  async setEnabled(hubId: string, enabled: boolean): Promise<boolean> {
    return (await this.update(hubId, { enabled })) !== null;
  }

  async list(query: HubQuery): Promise<HubPage> {
    this.sorted ??= [...this.hubs.keys()].sort();
    const ids = this.sorted;
    const start = scanStart(query);
    let i = start === undefined ? 0 : lowerBound(ids, start);
    const records = function* (hubs: Map<string, HubRecord>) {
      for (; i < ids.length; i++) {
        const r = hubs.get(ids[i]!);
        if (r) yield copyRecord(r);
      }
    };
    return collectPage(records(this.hubs), query);
  }

  async listHome(homeId: string, limit: number, after?: string): Promise<HubRecord[]> {
    const ids = [...(this.homes.get(homeId) ?? [])].filter((id) => after === undefined || id > after).sort().slice(0, limit);
    return ids.map((id) => copyRecord(this.hubs.get(id)!));
  }

  async update(hubId: string, patch: HubPatch, expect?: HubExpect): Promise<HubRecord | null> {
    const r = this.hubs.get(hubId);
    if (!r || !holds(r, expect)) return null;
    const next = patched(r, patch);
    this.put(next);
    return copyRecord(next);
  }

  async rotateSecret(hubId: string, secret: string, graceUntil: number, key?: string): Promise<HubRecord | null> {
    const r = this.hubs.get(hubId);
    if (!r) return null;
    const next = rotated(r, secret, graceUntil, key);
    this.put(next);
    return copyRecord(next);
  }

  async remove(hubId: string): Promise<boolean> {
    const r = this.hubs.get(hubId);
    if (!r) return false;
    this.unindex(r);
    this.hubs.delete(hubId);
    this.sorted = null;
    return true;
  }

  forget(): void {}

  forgetAll(): void {}

  async placements(hubIds: readonly string[]): Promise<Array<HubPlacement | null>> {
    return hubIds.map((id) => {
      const r = this.hubs.get(id);
      return r ? { homeId: r.homeId, enabled: r.enabled, createdAt: r.createdAt } : null;
    });
  }

  async close(): Promise<void> {}

  private put(r: HubRecord): void {
    const old = this.hubs.get(r.hubId);
    if (old) this.unindex(old);
    else this.sorted = null;
    this.hubs.set(r.hubId, r);
    let home = this.homes.get(r.homeId);
    if (!home) this.homes.set(r.homeId, (home = new Set()));
    home.add(r.hubId);
  }

  private unindex(r: HubRecord): void {
    const home = this.homes.get(r.homeId);
    home?.delete(r.hubId);
    if (home?.size === 0) this.homes.delete(r.homeId);
  }
}

/** The first index whose id is >= `id`. */
function lowerBound(ids: string[], id: string): number {
  let lo = 0;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ids[mid]! < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** A claim: its expiry on the wall clock (ms since 1970) and on the monotonic clock (monotonicMs). */
interface Claim {
  until: number;
  steadyUntil: number;
}

/**
 * Nonces with expiry, forgotten once both clocks passed it (`nonceForgettable`); expired keys are
 * swept as new ones arrive, so memory stays bounded.
 */
export class MemoryNonceStore implements NonceStore {
  readonly inTurn = true;
  private readonly seen = new Map<string, Claim>();

  constructor(
    private readonly now: () => number = Date.now,
    private readonly monotonic: () => number = monotonicMs,
  ) {}

  async claim(key: string, ttlMs: number): Promise<boolean> {
    const now = this.now();
    const steady = this.monotonic();
    this.sweep(now, steady);
    const held = this.seen.get(key);
    if (held !== undefined && !nonceForgettable(held.until, held.steadyUntil, now, steady)) return false;
    // re-insert so the map stays in claim order for the sweep (ttl is the same for all callers):
    // the monotonic expiries ascend, and the wall ones too while the wall clock does not step back
    this.seen.delete(key);
    this.seen.set(key, { until: now + ttlMs, steadyUntil: steady + ttlMs });
    return true;
  }

  /** claims held (their expired ones swept at each claim) */
  get size(): number {
    return this.seen.size;
  }

  async close(): Promise<void> {}

  private sweep(now: number, steady: number): void {
    for (const [k, c] of this.seen) {
      if (!nonceForgettable(c.until, c.steadyUntil, now, steady)) break;
      this.seen.delete(k);
    }
  }
}
