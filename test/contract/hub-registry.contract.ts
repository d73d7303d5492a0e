import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TierError } from '../../src/errors.js';
import type { HubRecord, HubRegistry, NonceStore } from '../../src/ports/hub-registry/hub-registry.js';

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

    it('create then get returns the record, every field', async () => {
      const r = record(hub);
      await reg.create(r);
      expect(await reg.get(hub)).toEqual(r);
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
