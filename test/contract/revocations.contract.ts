import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { revocationKey, type RevocationStore, type TokenRevocation } from '../../src/ports/revocations/revocations.js';

/** A revocation store under test. */
export interface RevocationStoreFixture {
  store: RevocationStore;
  close(): Promise<void>;
}

/** Called once per test; a real backend should use a fresh key prefix per call. */
export type RevocationStoreFactory = () => Promise<RevocationStoreFixture>;

const byKey = (a: TokenRevocation, b: TokenRevocation) => revocationKey(a).localeCompare(revocationKey(b));

/** The promises of `RevocationStore` (src/ports/revocations/revocations.ts), for any implementation. */
export function revocationStoreContract(name: string, make: RevocationStoreFactory): void {
  describe(name, () => {
    let fx: RevocationStoreFixture;
    let store: RevocationStore;
    let id: string;
    let now: number;

    beforeEach(async () => {
      now = Math.floor(Date.now() / 1000);
      fx = await make();
      store = fx.store;
      id = randomUUID();
    });

    afterEach(async () => {
      await fx.close();
    });

    it('lists nothing when nothing was added', async () => {
      expect(await store.list(now)).toEqual([]);
    });

    it('lists what was added, by jti, by sub and by home with a time, each field as given', async () => {
      const one: TokenRevocation = { jti: id, exp: now + 3_600 };
      const all: TokenRevocation = { sub: `alice-${id}`, before: now - 10, exp: now + 86_400 };
      const home: TokenRevocation = { home: `home-${id}`, before: now - 5, exp: now + 86_400 };
      await store.add(one);
      await store.add(all);
      await store.add(home);
      expect((await store.list(now)).sort(byKey)).toEqual([one, all, home].sort(byKey));
    });

    it('keeps a revocation added twice as one (a set)', async () => {
      await store.add({ jti: id, exp: now + 60 });
      await store.add({ jti: id, exp: now + 60 });
      expect(await store.list(now)).toEqual([{ jti: id, exp: now + 60 }]);
    });

    it('leaves out revocations whose exp is not after the time asked for', async () => {
      await store.add({ jti: `${id}-old`, exp: now - 1 });
      await store.add({ jti: `${id}-edge`, exp: now });
      await store.add({ jti: `${id}-live`, exp: now + 60 });
      expect(await store.list(now)).toEqual([{ jti: `${id}-live`, exp: now + 60 }]);
      expect(await store.list(now + 60)).toEqual([]);
    });

    it('hostile names are data: jti, sub and home named like Object.prototype members', async () => {
      for (const name of ['__proto__', 'constructor', 'toString']) {
        await store.add({ jti: name, exp: now + 60 });
        await store.add({ sub: name, before: now, exp: now + 60 });
        await store.add({ home: name, before: now, exp: now + 60 });
      }
      expect(await store.list(now)).toHaveLength(9);
      expect(({} as Record<string, unknown>).exp).toBeUndefined();
    });
  });
}
