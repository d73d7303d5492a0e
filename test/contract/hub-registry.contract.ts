import { settledIn } from '../helpers/settled-in.js';
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TierError } from '../../src/errors.js';
import { homeHubIds, type HubQuery, type HubRecord, type HubRegistry, type NonceStore } from '../../src/ports/hub-registry/hub-registry.js';

/** A hub registry under test. */
export interface HubRegistryFixture {
  registry: HubRegistry;
  close(): Promise<void>;
}

/** Called once per test; a real backend should use a fresh key prefix per call. */
export type HubRegistryFactory = () => Promise<HubRegistryFixture>;

/** A nonce store under test. */
export interface NonceStoreFixture {
  nonces: NonceStore;
  /**
   * Moves the implementation's clock forward. Present only where the implementation takes an
   * injectable clock (memory); without it the suite lets real time pass, in small polled steps.
   */
  advanceTime?(ms: number): void;
  /**
   * Steps the wall clock alone by `ms` (an NTP correction, a VM resumed), the monotonic clock
   * standing still; present where both clocks are injectable (memory, LMDB).
   */
  stepWall?(ms: number): void;
  /** Runs the implementation's sweep of expired nonces, where it has one of its own (LMDB). */
  sweep?(): Promise<unknown>;
  close(): Promise<void>;
}

/** Called once per test; a real backend should use a fresh key prefix per call. */
export type NonceStoreFactory = () => Promise<NonceStoreFixture>;

const uid = (): string => randomUUID().replaceAll('-', '').slice(0, 16);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function record(hubId: string, over: Partial<HubRecord> = {}): HubRecord {
  return {
    hubId,
    homeId: `home-${hubId}`,
    model: 'HG-2',
    secret: `secret-${hubId}`,
    enabled: true,
    createdAt: 1_700_000_000_000,
    ...over,
  };
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (err: unknown) => err,
  );
}

/** The promises of `HubRegistry` (src/ports/hub-registry/hub-registry.ts), for any implementation. */
export function hubRegistryContract(name: string, make: HubRegistryFactory): void {
  describe(name, () => {
    let fx: HubRegistryFixture;
    let reg: HubRegistry;
    let hub: string;

    beforeEach(async () => {
      fx = await make();
      reg = fx.registry;
      hub = `hub-${uid()}`;
    });

    afterEach(async () => {
      await fx.close();
    });

    it('get of an unknown hub is null', async () => {
      expect(await reg.get(hub)).toBeNull();
    });

    // the hub gateway answers upgrades inside uWS's callback only on stores that say so (hub-gateway.ts)
    // (false promises nothing: the gateway then admits after the upgrade, which is always safe)
    it('get settles in the caller’s turn where inTurn says so', async (ctx) => {
      if (!reg.inTurn) return ctx.skip();
      await reg.create(record(hub));
      expect(await settledIn(reg.get(hub))).toBe('this turn');
      expect(await settledIn(reg.get(`${hub}-unknown`))).toBe('this turn');
    });

    it('create then get returns the record, every field', async () => {
      const r = record(hub);
      await reg.create(r);
      expect(await reg.get(hub)).toEqual(r);
    });

    it('lookup answers the record without its secrets (null for an unknown hub), and sees every write', async () => {
      expect(await reg.lookup(hub)).toBeNull();
      await reg.create(record(hub, { labels: { floor: '2' }, firmware: '1.4.0' }));
      expect(await reg.lookup(hub)).toEqual({ hubId: hub, homeId: `home-${hub}`, model: 'HG-2', enabled: true, createdAt: 1_700_000_000_000, labels: { floor: '2' }, firmware: '1.4.0' });
      expect(await reg.rotateSecret(hub, 'secret-2', Date.now() + 60_000)).not.toBeNull();
      const info = (await reg.lookup(hub))!;
      expect(info.secretVersion).toBe(2);
      expect(Object.keys(info)).not.toContain('secret');
      expect(Object.keys(info)).not.toContain('previousSecret');
      expect(JSON.stringify(info)).not.toContain('secret-');
      await reg.update(hub, { homeId: 'home-moved' });
      expect((await reg.lookup(hub))?.homeId).toBe('home-moved');
      await reg.remove(hub);
      expect(await reg.lookup(hub)).toBeNull();
    });

    it('placements answers each hub’s home and enabled flag from the store, null for unknown, in the order asked', async () => {
      expect(await reg.placements([])).toEqual([]);
      await reg.create(record(hub));
      await reg.create(record(`${hub}-off`, { enabled: false, homeId: 'home-off' }));
      await reg.lookup(hub); // a caching adapter now holds it
      await reg.update(hub, { homeId: 'home-moved' });
      expect(await reg.placements([`${hub}-unknown`, hub, `${hub}-off`])).toEqual([null, { homeId: 'home-moved', enabled: true, createdAt: 1_700_000_000_000 }, { homeId: 'home-off', enabled: false, createdAt: 1_700_000_000_000 }]);
      await reg.remove(hub);
      reg.forgetAll();
      expect(await reg.placements([hub])).toEqual([null]);
      expect(await reg.lookup(hub)).toBeNull();
    });

    it('keeps a record without a model', async () => {
      await reg.create(record(hub, { model: undefined, enabled: false }));
      const got = await reg.get(hub);
      expect(got).toEqual(record(hub, { model: undefined, enabled: false }));
      expect(got?.model).toBeUndefined();
      expect(got?.enabled).toBe(false);
    });

    it('create of a taken id fails with already_exists and does not overwrite', async () => {
      const first = record(hub);
      await reg.create(first);
      const err = await rejection(reg.create(record(hub, { homeId: 'home-other', secret: 'other-secret', model: 'X', enabled: false })));
      expect(err).toBeInstanceOf(TierError);
      expect((err as TierError).code).toBe('already_exists');
      expect(await reg.get(hub)).toEqual(first);
    });

    it('racing creates of one id: exactly one wins, and its record is stored', async () => {
      const a = record(hub, { secret: 'secret-a' });
      const b = record(hub, { secret: 'secret-b' });
      const results = await Promise.allSettled([reg.create(a), reg.create(b)]);
      const won = results.findIndex((r) => r.status === 'fulfilled');
      const lost = results.find((r) => r.status === 'rejected');
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      expect(lost?.status === 'rejected' && lost.reason instanceof TierError && lost.reason.code).toBe('already_exists');
      expect(await reg.get(hub)).toEqual(won === 0 ? a : b);
    });

    it('setEnabled changes only `enabled` and answers true for a known hub', async () => {
      const r = record(hub);
      await reg.create(r);
      expect(await reg.setEnabled(hub, false)).toBe(true);
      expect(await reg.get(hub)).toEqual({ ...r, enabled: false });
      expect(await reg.setEnabled(hub, false)).toBe(true);
      expect(await reg.get(hub)).toEqual({ ...r, enabled: false });
      expect(await reg.setEnabled(hub, true)).toBe(true);
      expect(await reg.get(hub)).toEqual(r);
    });

    it('setEnabled of an unknown hub answers false and creates nothing', async () => {
      expect(await reg.setEnabled(hub, true)).toBe(false);
      expect(await reg.get(hub)).toBeNull();
      // and the id is still free
      await reg.create(record(hub));
      expect(await reg.get(hub)).toEqual(record(hub));
    });

    it('hubs are independent', async () => {
      const other = `${hub}-2`;
      await reg.create(record(hub));
      await reg.create(record(other, { homeId: 'home-x' }));
      await reg.setEnabled(other, false);
      expect(await reg.get(hub)).toEqual(record(hub));
      expect(await reg.get(other)).toEqual(record(other, { homeId: 'home-x', enabled: false }));
    });

    /** `n` hubs `<hub>-000` … with homes and models cycling, created in a shuffled order. */
    async function fleet(n: number): Promise<HubRecord[]> {
      const records = Array.from({ length: n }, (_, i) => record(`${hub}-${String(i).padStart(3, '0')}`, { homeId: `home-${hub}-${i % 3}`, model: i % 2 === 0 ? 'even' : 'odd' }));
      const order = [...records].sort((a, b) => (a.hubId.split('').reverse().join('') < b.hubId.split('').reverse().join('') ? -1 : 1));
      for (const r of order) await reg.create(r);
      return records;
    }

    /** Every page of a query, joined. */
    async function pages(q: Omit<HubQuery, 'after'>): Promise<{ ids: string[]; calls: number }> {
      const ids: string[] = [];
      let after: string | undefined;
      let calls = 0;
      for (;;) {
        const page = await reg.list({ ...q, ...(after !== undefined ? { after } : {}) });
        calls++;
        expect(page.hubs.length).toBeLessThanOrEqual(q.limit);
        ids.push(...page.hubs.map((h) => h.hubId));
        if (page.next === null) return { ids, calls };
        after = page.next;
      }
    }

    it('list pages through every hub in id order, each once, with records as stored', async () => {
      const records = await fleet(25);
      const first = await reg.list({ prefix: hub, limit: 10 });
      expect(first.hubs).toEqual(records.slice(0, 10));
      expect(first.next).toBe(records[9]!.hubId);
      const { ids, calls } = await pages({ prefix: hub, limit: 10 });
      expect(ids).toEqual(records.map((r) => r.hubId));
      expect(calls).toBe(3);
    });

    it('list filters by home, model, enabled and firmware, and stops at the prefix', async () => {
      const records = await fleet(12);
      await reg.create(record(`${hub}x`, { homeId: `home-${hub}-0` })); // shares the prefix `hub`, not `hub-`
      await reg.update(records[4]!.hubId, { enabled: false, firmware: '2.1.0' });
      const home0 = records.filter((_, i) => i % 3 === 0).map((r) => r.hubId);
      expect((await pages({ prefix: `${hub}-`, homeId: `home-${hub}-0`, limit: 2 })).ids).toEqual(home0);
      expect((await pages({ prefix: `${hub}-`, model: 'odd', limit: 100 })).ids).toEqual(records.filter((_, i) => i % 2 === 1).map((r) => r.hubId));
      expect((await pages({ prefix: hub, enabled: false, limit: 100 })).ids).toEqual([records[4]!.hubId]);
      expect((await pages({ prefix: hub, firmware: '2.1.0', limit: 100 })).ids).toEqual([records[4]!.hubId]);
      expect((await pages({ prefix: `${hub}-01`, limit: 100 })).ids).toEqual([`${hub}-010`, `${hub}-011`]);
      expect((await pages({ prefix: `${hub}-zz`, limit: 100 })).ids).toEqual([]);
    });

    it('list examines at most scanLimit records per call: a short page with a next, and nothing skipped', async () => {
      const records = await fleet(20);
      const page = await reg.list({ prefix: hub, model: 'no-such-model', limit: 5, scanLimit: 4 });
      expect(page.hubs).toEqual([]);
      expect(page.next).toBe(records[3]!.hubId);
      const { ids, calls } = await pages({ prefix: hub, homeId: `home-${hub}-1`, limit: 100, scanLimit: 4 });
      expect(ids).toEqual(records.filter((_, i) => i % 3 === 1).map((r) => r.hubId));
      expect(calls).toBe(5);
    });

    it('listHome answers the hubs of one home in id order, up to the limit', async () => {
      const records = await fleet(9);
      const home1 = records.filter((_, i) => i % 3 === 1);
      expect(await reg.listHome(`home-${hub}-1`, 100)).toEqual(home1);
      expect(await reg.listHome(`home-${hub}-1`, 2)).toEqual(home1.slice(0, 2));
      expect(await reg.listHome(`home-${hub}-none`, 100)).toEqual([]);
    });

    it('listHome pages by `after`: every hub of the home once, in id order, also while each page read is removed', async () => {
      const home1 = (await fleet(21)).filter((_, i) => i % 3 === 1).map((r) => r.hubId);
      expect(home1).toHaveLength(7);
      /** The pages of home 1, three hubs each, until a short one; `remove`: each page's hubs removed before the next is read. */
      const read = async (remove: boolean) => {
        const seen: string[][] = [];
        let after: string | undefined;
        for (;;) {
          const page = (await reg.listHome(`home-${hub}-1`, 3, after)).map((h) => h.hubId);
          seen.push(page);
          if (remove) for (const id of page) expect(await reg.remove(id)).toBe(true);
          if (page.length < 3) return seen;
          after = page.at(-1);
        }
      };
      const expected = [home1.slice(0, 3), home1.slice(3, 6), home1.slice(6)];
      expect(await read(false)).toEqual(expected);
      // what the rules' replay reads: every page, joined (a page of 7 is full, so one more is read)
      for (const page of [3, 7, 100]) expect(await homeHubIds(reg, `home-${hub}-1`, page), `page ${page}`).toEqual(home1);
      // a cursor between two ids, and before the first, of hubs never in the home
      expect((await reg.listHome(`home-${hub}-1`, 100, `${home1[2]}~`)).map((h) => h.hubId)).toEqual(home1.slice(3));
      expect((await reg.listHome(`home-${hub}-1`, 2, hub)).map((h) => h.hubId)).toEqual(home1.slice(0, 2));
      expect(await reg.listHome(`home-${hub}-1`, 100, home1[6])).toEqual([]);
      // the cursor's own hub removed with its page: the next page starts after it all the same
      expect(await read(true)).toEqual(expected);
      expect(await reg.listHome(`home-${hub}-1`, 100)).toEqual([]);
      expect(await reg.listHome(`home-${hub}-0`, 100)).toHaveLength(7);
    });

    it('update changes the given fields only; null removes; unknown hubs answer null', async () => {
      const r = record(hub);
      await reg.create(r);
      const labels = { site: 'plant-3', toString: 'x' };
      const updated = await reg.update(hub, { model: 'HG-3', labels, firmware: '1.0.0' });
      expect(updated).toEqual({ ...r, model: 'HG-3', labels, firmware: '1.0.0' });
      expect(await reg.get(hub)).toEqual(updated);
      expect(await reg.update(hub, { model: null, labels: null, firmware: null })).toEqual({ ...r, model: undefined });
      expect((await reg.get(hub))?.labels).toBeUndefined();
      expect(await reg.update(`${hub}-none`, { enabled: false })).toBeNull();
      expect(await reg.get(`${hub}-none`)).toBeNull();
    });

    it('update of homeId moves the hub from one home to the other', async () => {
      const r = record(hub, { homeId: `home-${hub}-a` });
      await reg.create(r);
      await reg.create(record(`${hub}-2`, { homeId: `home-${hub}-a` }));
      expect(await reg.update(hub, { homeId: `home-${hub}-b` })).toEqual({ ...r, homeId: `home-${hub}-b` });
      expect((await reg.listHome(`home-${hub}-a`, 10)).map((h) => h.hubId)).toEqual([`${hub}-2`]);
      expect(await reg.listHome(`home-${hub}-b`, 10)).toEqual([{ ...r, homeId: `home-${hub}-b` }]);
      expect((await pages({ prefix: hub, homeId: `home-${hub}-b`, limit: 10 })).ids).toEqual([hub]);
    });

    it('update with expect writes only when the record holds it: two moves from one read, one wins; a rotation is not undone', async () => {
      const r = record(hub, { homeId: `home-${hub}-a`, secret: 'sealed-1' });
      await reg.create(r);
      const [toB, toC] = await Promise.all([
        reg.update(hub, { homeId: `home-${hub}-b` }, { homeId: `home-${hub}-a` }),
        reg.update(hub, { homeId: `home-${hub}-c` }, { homeId: `home-${hub}-a` }),
      ]);
      expect([toB, toC].filter((x) => x !== null)).toHaveLength(1);
      const won = (toB ?? toC)!.homeId;
      expect((await reg.get(hub))?.homeId).toBe(won);
      const lost = won === `home-${hub}-b` ? `home-${hub}-c` : `home-${hub}-b`;
      expect(await reg.listHome(lost, 10)).toEqual([]);
      expect((await reg.listHome(won, 10)).map((h) => h.hubId)).toEqual([hub]);
      // a reseal read 'sealed-1' with no previous secret; a rotation came between its read and its write
      await reg.rotateSecret(hub, 'sealed-2', 9_000);
      expect(await reg.update(hub, { secret: 'sealed-1b' }, { secret: 'sealed-1', previousSecret: null })).toBeNull();
      expect(await reg.update(hub, { secret: 'sealed-2b' }, { secret: 'sealed-2', previousSecret: null })).toBeNull();
      const now = await reg.get(hub);
      expect(now).toMatchObject({ secret: 'sealed-2', previousSecret: { secret: 'sealed-1', until: 9_000 }, secretVersion: 2 });
      expect(await reg.update(hub, { secret: 'sealed-2b', previousSecret: { secret: 'sealed-1b', until: 9_000 } }, { secret: 'sealed-2', previousSecret: 'sealed-1' })).toMatchObject({
        secret: 'sealed-2b',
        previousSecret: { secret: 'sealed-1b' },
      });
      expect(await reg.update(`${hub}-none`, { enabled: false }, { homeId: 'x' })).toBeNull();
    });

    it('rotateSecret: the new secret current (version + 1), the replaced one kept until the grace end; one previous at most', async () => {
      const r = record(hub, { secret: 'sealed-1' });
      await reg.create(r);
      const once = await reg.rotateSecret(hub, 'sealed-2', 1_000);
      expect(once).toEqual({ ...r, secret: 'sealed-2', secretVersion: 2, previousSecret: { secret: 'sealed-1', until: 1_000 } });
      expect(await reg.get(hub)).toEqual(once);
      expect(await reg.rotateSecret(hub, 'sealed-3', 2_000)).toEqual({ ...r, secret: 'sealed-3', secretVersion: 3, previousSecret: { secret: 'sealed-2', until: 2_000 } });
      expect(await reg.rotateSecret(`${hub}-none`, 'x', 1)).toBeNull();
      // other writes keep the secrets as they are
      expect((await reg.update(hub, { enabled: false }))?.previousSecret).toEqual({ secret: 'sealed-2', until: 2_000 });
    });

    it('rotateSecret with a key: a retry with the last rotation\'s key changes nothing, racing ones too; another key or none rotates', async () => {
      const r = record(hub, { secret: 'sealed-1' });
      await reg.create(r);
      const first = await reg.rotateSecret(hub, 'sealed-2', 1_000, 'k-1');
      expect(first).toEqual({ ...r, secret: 'sealed-2', secretVersion: 2, previousSecret: { secret: 'sealed-1', until: 1_000, rotationKey: 'k-1' } });
      // the retry (its answer lost): the hub's sealed-1 keeps its grace, sealed-2 stays current
      const retries = await Promise.all(['sealed-2x', 'sealed-2y'].map((s) => reg.rotateSecret(hub, s, 9_000, 'k-1')));
      expect(retries).toEqual([first, first]);
      expect(await reg.get(hub)).toEqual(first);
      expect(await reg.rotateSecret(hub, 'sealed-3', 2_000, 'k-2')).toEqual({ ...r, secret: 'sealed-3', secretVersion: 3, previousSecret: { secret: 'sealed-2', until: 2_000, rotationKey: 'k-2' } });
      // no key: always a rotation, and the key of the one before is gone with it
      const plain = await reg.rotateSecret(hub, 'sealed-4', 3_000);
      expect(plain).toEqual({ ...r, secret: 'sealed-4', secretVersion: 4, previousSecret: { secret: 'sealed-3', until: 3_000 } });
      expect(await reg.get(hub)).toEqual(plain);
      expect((await reg.rotateSecret(hub, 'sealed-5', 4_000, 'k-2'))?.secretVersion).toBe(5);
    });

    it('update of the secrets (sealed anew) changes them only, version and grace kept', async () => {
      await reg.create(record(hub, { secret: 'sealed-1' }));
      const r = (await reg.rotateSecret(hub, 'sealed-2', 5_000))!;
      const resealed = await reg.update(hub, { secret: 'sealed-2b', previousSecret: { secret: 'sealed-1b', until: 5_000 } });
      expect(resealed).toEqual({ ...r, secret: 'sealed-2b', previousSecret: { secret: 'sealed-1b', until: 5_000 } });
      expect(await reg.get(hub)).toEqual(resealed);
      expect(await reg.update(hub, { previousSecret: null })).toEqual({ ...r, secret: 'sealed-2b', previousSecret: undefined });
      expect((await reg.get(hub))?.previousSecret).toBeUndefined();
    });

    it('racing rotations: each one seen once, versions never reused', async () => {
      await reg.create(record(hub, { secret: 'sealed-1' }));
      const done = await Promise.all(['a', 'b', 'c'].map((s) => reg.rotateSecret(hub, `sealed-${s}`, 1)));
      expect(done.map((d) => d?.secretVersion).sort()).toEqual([2, 3, 4]);
      expect((await reg.get(hub))?.secretVersion).toBe(4);
    });

    it('remove deletes the record and its index entries; the id is free again', async () => {
      const records = await fleet(3);
      const gone = records[1]!;
      expect(await reg.remove(gone.hubId)).toBe(true);
      expect(await reg.remove(gone.hubId)).toBe(false);
      expect(await reg.get(gone.hubId)).toBeNull();
      expect((await pages({ prefix: hub, limit: 10 })).ids).toEqual([records[0]!.hubId, records[2]!.hubId]);
      expect(await reg.listHome(gone.homeId, 10)).toEqual([]);
      await reg.create(gone);
      expect(await reg.get(gone.hubId)).toEqual(gone);
    });

    it('forget changes nothing stored', async () => {
      await reg.create(record(hub));
      reg.forget(hub);
      expect(await reg.get(hub)).toEqual(record(hub));
    });

    it('stores a copy: mutating what was passed or returned changes nothing stored', async () => {
      const r = record(hub);
      await reg.create(r);
      r.secret = 'changed';
      r.enabled = false;
      const got = (await reg.get(hub))!;
      got.homeId = 'changed';
      got.enabled = false;
      expect(await reg.get(hub)).toEqual(record(hub));
    });
  });
}

/**
 * The ttl of the expiry tests: small enough for a real backend to expire keys in a test, large
 * enough that a repeat a fraction of it later is still inside it on a busy machine.
 */
const NONCE_TTL_MS = 1_000;
/** Clock granularity between this process and a backend (ms), allowed in lower bounds on time. */
const CLOCK_SLACK_MS = 5;

/** The promises of `NonceStore` (src/ports/hub-registry/hub-registry.ts), for any implementation. */
export function nonceStoreContract(name: string, make: NonceStoreFactory): void {
  describe(name, () => {
    let fx: NonceStoreFixture;
    let nonces: NonceStore;
    let key: string;

    beforeEach(async () => {
      fx = await make();
      nonces = fx.nonces;
      key = `nonce-${uid()}`;
    });

    afterEach(async () => {
      await fx.close();
    });

    it('claim settles in the caller’s turn where inTurn says so', async (ctx) => {
      if (!nonces.inTurn) return ctx.skip();
      expect(await settledIn(nonces.claim(key, 60_000))).toBe('this turn');
      // a repeat too (refused)
      expect(await settledIn(nonces.claim(key, 60_000))).toBe('this turn');
    });

    async function elapse(ms: number): Promise<void> {
      if (fx.advanceTime) fx.advanceTime(ms);
      else await sleep(ms);
    }

    /**
     * Claims `k` until a claim answers true (the key was forgotten), letting time pass in steps.
     * On a fake clock it fails after ten ttls of fake time; on the real clock the test's timeout
     * is the only ceiling.
     */
    async function claimOnceForgotten(k: string): Promise<void> {
      for (let passed = 0; !(await nonces.claim(k, NONCE_TTL_MS)); passed += NONCE_TTL_MS / 50) {
        if (fx.advanceTime && passed > NONCE_TTL_MS * 10) throw new Error(`${k} still known after ${passed} ms of fake time`);
        await elapse(NONCE_TTL_MS / 50);
      }
    }

    it('claim answers true the first time, false on every repeat within the ttl', async () => {
      expect(await nonces.claim(key, 60_000)).toBe(true);
      expect(await nonces.claim(key, 60_000)).toBe(false);
      expect(await nonces.claim(key, 60_000)).toBe(false);
    });

    it('different keys are independent', async () => {
      expect(await nonces.claim(`${key}-a`, 60_000)).toBe(true);
      expect(await nonces.claim(`${key}-b`, 60_000)).toBe(true);
      expect(await nonces.claim(`${key}-a`, 60_000)).toBe(false);
      expect(await nonces.claim(`${key}-b`, 60_000)).toBe(false);
      expect(await nonces.claim(`${key}-c`, 60_000)).toBe(true);
    });

    it('racing claims of one key: exactly one true', async () => {
      const results = await Promise.all(Array.from({ length: 10 }, () => nonces.claim(key, 60_000)));
      expect(results.filter(Boolean)).toHaveLength(1);
    });

    it('a repeat inside the ttl does not extend it', async () => {
      // a witness claimed between the first claim and the repeat, with the same ttl, is forgotten
      // after the key's own ttl and before the end of a ttl counted from the repeat: once the
      // witness is forgotten, the key must be too (no clock needed, only the order of claims)
      const witness = `${key}-witness`;
      const gap = NONCE_TTL_MS / 5;
      expect(await nonces.claim(key, NONCE_TTL_MS)).toBe(true);
      await elapse(gap);
      expect(await nonces.claim(witness, NONCE_TTL_MS)).toBe(true);
      await elapse(gap);
      expect(await nonces.claim(key, NONCE_TTL_MS), 'the repeat, inside the ttl').toBe(false);
      await claimOnceForgotten(witness);
      expect(await nonces.claim(key, NONCE_TTL_MS), 'the key outlived its first ttl').toBe(true);
    });

    it('a step of the wall clock forward past the ttl and back does not forget a key', async (ctx) => {
      // the hub's hello is replayable again once the wall clock is back inside its window
      if (!fx.stepWall) return ctx.skip();
      expect(await nonces.claim(key, NONCE_TTL_MS)).toBe(true);
      fx.advanceTime?.(NONCE_TTL_MS / 10);
      fx.stepWall(NONCE_TTL_MS * 900);
      await fx.sweep?.();
      // a claim of another key meanwhile sweeps a store that sweeps as claims arrive (memory)
      expect(await nonces.claim(`${key}-during`, NONCE_TTL_MS)).toBe(true);
      fx.stepWall(-NONCE_TTL_MS * 900);
      expect(await nonces.claim(key, NONCE_TTL_MS), 'the replay after the step back').toBe(false);
      // forgotten once the ttl has passed on both clocks
      fx.advanceTime?.(NONCE_TTL_MS);
      await fx.sweep?.();
      expect(await nonces.claim(key, NONCE_TTL_MS)).toBe(true);
    });

    it('a key is kept while the wall clock is before its expiry, however long ago it was claimed', async (ctx) => {
      if (!fx.stepWall) return ctx.skip();
      expect(await nonces.claim(key, NONCE_TTL_MS)).toBe(true);
      fx.advanceTime?.(NONCE_TTL_MS * 2);
      fx.stepWall(-NONCE_TTL_MS * 2);
      await fx.sweep?.();
      expect(await nonces.claim(key, NONCE_TTL_MS), 'the ttl passed on the monotonic clock only').toBe(false);
    });

    it('the key is known until the ttl and forgotten after it: claim answers true once more', async () => {
      // a longer-lived key claimed first must not keep the short one alive
      const other = `${key}-long`;
      expect(await nonces.claim(other, 60_000)).toBe(true);
      const before = Date.now();
      expect(await nonces.claim(key, NONCE_TTL_MS)).toBe(true);
      // inside the ttl: at once, and on a fake clock 1 ms before its end
      fx.advanceTime?.(NONCE_TTL_MS - 1);
      expect(await nonces.claim(key, NONCE_TTL_MS)).toBe(false);
      if (fx.advanceTime) {
        fx.advanceTime(1);
        expect(await nonces.claim(key, NONCE_TTL_MS)).toBe(true);
      } else {
        await claimOnceForgotten(key);
        // not before the ttl: measured from before the claim, so this can only overstate it
        expect(Date.now() - before).toBeGreaterThanOrEqual(NONCE_TTL_MS - CLOCK_SLACK_MS);
      }
      // claimed again: a repeat is refused for another ttl
      expect(await nonces.claim(key, NONCE_TTL_MS)).toBe(false);
      // a key with a longer ttl is still known
      expect(await nonces.claim(other, 60_000)).toBe(false);
    });
  });
}
