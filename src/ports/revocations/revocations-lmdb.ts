import type { Database } from 'lmdb';
import { steadyWallMs } from '../../actors/clock.js';
import type { DataStore } from '../lmdb.js';
import { revocationKey, type RevocationStore, type TokenRevocation } from './revocations.js';

/** A revocation as stored on disk: [jti, sub, before, exp, home] (null for what is absent; records written before homes could be revoked have four). */
export type RevocationRecord = [string | null, string | null, number | null, number, (string | null)?];

export function revocationRecord(r: TokenRevocation): RevocationRecord {
  return [r.jti ?? null, r.sub ?? null, r.before ?? null, r.exp, r.home ?? null];
}

export function revocationOfRecord([jti, sub, before, exp, home]: RevocationRecord): TokenRevocation {
  const r: TokenRevocation = { exp };
  if (jti !== null) r.jti = jti;
  if (sub !== null) r.sub = sub;
  if (home !== null && home !== undefined) r.home = home;
  if (before !== null) r.before = before;
  return r;
}

/**
 * Revocations on local disk (embedded default): sub-database `revocations`, the revocation's key →
 * its RevocationRecord. `add` resolves once committed (and, with DATA_SYNC=commit, on disk);
 * expired entries are removed by `list`, which the node runs at start.
 */
export class LmdbRevocationStore implements RevocationStore {
  private readonly db: Database<RevocationRecord, string>;

  /** Does not own `data`: the composition root closes it after every adapter. */
  constructor(private readonly data: DataStore) {
    this.db = data.db<RevocationRecord>('revocations') as unknown as Database<RevocationRecord, string>;
  }

  async add(r: TokenRevocation): Promise<void> {
    await this.data.written(this.db.put(revocationKey(r), revocationRecord(r)));
  }

  async list(nowS: number): Promise<TokenRevocation[]> {
    const out: TokenRevocation[] = [];
    const expired: string[] = [];
    // removed only once expired on the clock a step of the wall clock does not move (clock.ts): one
    // listing while the clock read a month ahead removed every revocation for good
    const removeS = Math.min(nowS, steadyWallMs() / 1000);
    for (const { key, value } of this.db.getRange()) {
      if (value[3] <= removeS) expired.push(key);
      if (value[3] > nowS) out.push(revocationOfRecord(value));
    }
    if (expired.length > 0) await this.db.transaction(() => expired.forEach((k) => void this.db.remove(k)));
    return out;
  }

  async close(): Promise<void> {
    await this.data.flushed();
  }
}
