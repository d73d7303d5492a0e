import { revocationKey, type RevocationStore, type TokenRevocation } from './revocations.js';

/** Revocations of this process only (DATA_DIR=:memory:): a restart forgets them. */
export class MemoryRevocationStore implements RevocationStore {
  private readonly entries = new Map<string, TokenRevocation>();

  async add(revocation: TokenRevocation): Promise<void> {
    this.entries.set(revocationKey(revocation), { ...revocation });
  }

  async list(nowS: number): Promise<TokenRevocation[]> {
    const out: TokenRevocation[] = [];
    for (const [key, r] of this.entries) {
      if (r.exp > nowS) out.push({ ...r });
      else this.entries.delete(key);
    }
    return out;
  }

  async close(): Promise<void> {}
}
