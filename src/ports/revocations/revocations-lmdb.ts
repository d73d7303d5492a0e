import type { Database } from 'lmdb';
import type { DataStore } from '../lmdb.js';
import { revocationKey, type RevocationStore, type TokenRevocation } from './revocations.js';

/**
 * Revocations on local disk (embedded default): sub-database `revocations`, the revocation's key →
 * [jti, sub, before, exp] (null for what is absent). `add` resolves once committed (and, with
 * DATA_SYNC=commit, on disk); expired entries are removed by `list`, which the node runs at start.
 */
export class LmdbRevocationStore implements RevocationStore {
  private readonly db: Database<[string | null, string | null, number | null, number], string>;

  /** Does not own `data`: the composition root closes it after every adapter. */
  constructor(private readonly data: DataStore) {
    this.db = data.db<[string | null, string | null, number | null, number]>('revocations') as unknown as Database<[string | null, string | null, number | null, number], string>;
  }

  async add(r: TokenRevocation): Promise<void> {
    await this.db.put(revocationKey(r), [r.jti ?? null, r.sub ?? null, r.before ?? null, r.exp]);
    if (this.data.sync === 'commit') await this.data.flushed();
  }

  async list(nowS: number): Promise<TokenRevocation[]> {
    const out: TokenRevocation[] = [];
    const expired: string[] = [];
    for (const { key, value } of this.db.getRange()) {
      const [jti, sub, before, exp] = value;
      if (exp <= nowS) {
        expired.push(key);
        continue;
      }
      const r: TokenRevocation = { exp };
      if (jti !== null) r.jti = jti;
      if (sub !== null) r.sub = sub;
      if (before !== null) r.before = before;
      out.push(r);
    }
    if (expired.length > 0) await this.db.transaction(() => expired.forEach((k) => void this.db.remove(k)));
    return out;
  }

  async close(): Promise<void> {
    await this.data.flushed();
  }
}
