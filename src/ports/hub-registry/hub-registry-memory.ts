import { TierError } from '../../errors.js';
import type { HubRecord, HubRegistry, NonceStore } from './hub-registry.js';

/** Hubs provisioned in this process (embedded default): gone when the process ends. */
export class MemoryHubRegistry implements HubRegistry {
  private readonly hubs = new Map<string, HubRecord>();

  async create(record: HubRecord): Promise<void> {
    if (this.hubs.has(record.hubId)) throw new TierError('already_exists', `hub ${record.hubId} is already provisioned`);
    this.hubs.set(record.hubId, { ...record });
  }

  async get(hubId: string): Promise<HubRecord | null> {
    const r = this.hubs.get(hubId);
    return r ? { ...r } : null;
  }

  async setEnabled(hubId: string, enabled: boolean): Promise<boolean> {
    const r = this.hubs.get(hubId);
    if (!r) return false;
    r.enabled = enabled;
    return true;
  }

  async close(): Promise<void> {}
}

/** Nonces with expiry; expired keys are swept as new ones arrive, so memory stays bounded. */
export class MemoryNonceStore implements NonceStore {
  private readonly seen = new Map<string, number>();

  constructor(private readonly now: () => number = Date.now) {}

  async claim(key: string, ttlMs: number): Promise<boolean> {
    const now = this.now();
    this.sweep(now);
    const until = this.seen.get(key);
    if (until !== undefined && until > now) return false;
    // re-insert so the map stays ordered by expiry for the sweep (ttl is the same for all callers)
    this.seen.delete(key);
    this.seen.set(key, now + ttlMs);
    return true;
  }

  async close(): Promise<void> {}

  private sweep(now: number): void {
    for (const [k, until] of this.seen) {
      if (until > now) break;
      this.seen.delete(k);
    }
  }
}
