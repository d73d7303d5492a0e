import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Lease } from '../../src/ports/lease/lease.js';

/** A lease under test. `advanceTime` moves a fake clock; without it the suite waits real time. */
export interface LeaseFixture {
  lease: Lease;
  advanceTime?(ms: number): void;
  close(): Promise<void>;
}

/** Called once per test; a real backend should use a fresh key prefix per call. */
export type LeaseFactory = () => Promise<LeaseFixture>;

/** The ttl of the expiry tests: small, so a real backend frees the key quickly. */
const TTL = 200;
/** The ttl of claims that must hold for the whole test, however slow the machine. */
const LONG = 600_000;
/** Clock granularity between this process and a backend (ms), allowed in lower bounds on time. */
const CLOCK_SLACK_MS = 5;

/**
 * The promises of `Lease` (src/ports/lease/lease.ts), for any implementation. Expiry is shown on the
 * fixture's clock where it has one, to the millisecond; otherwise by waiting for it (the test's
 * timeout is the only ceiling). A claim that must still hold is made with a ttl nothing reaches.
 */
export function leaseContract(name: string, make: LeaseFactory): void {
  describe(name, () => {
    let fx: LeaseFixture;
    let lease: Lease;
    let key: string;

    beforeEach(async () => {
      fx = await make();
      lease = fx.lease;
      key = `rule:${randomUUID()}:1700000000000`;
    });

    afterEach(async () => {
      await fx.close();
    });

    /**
     * `owner` tries to acquire `k` (for LONG) until it gets it: on a fake clock `ttl` after now,
     * after checking the key is still held 1 ms before; on the real clock by polling (the test's
     * timeout is the only ceiling).
     */
    async function acquireOnceFree(k: string, owner: string, ttl: number): Promise<void> {
      if (fx.advanceTime) {
        fx.advanceTime(ttl - 1);
        expect(await lease.tryAcquire(k, owner, LONG), 'held until its ttl').toBe(false);
        fx.advanceTime(1);
        expect(await lease.tryAcquire(k, owner, LONG), 'free at its ttl').toBe(true);
        return;
      }
      while (!(await lease.tryAcquire(k, owner, LONG))) await new Promise((r) => setTimeout(r, 10));
    }

    it('a free key is taken once: every later call fails, the holder included', async () => {
      expect(await lease.tryAcquire(key, 'node-a', LONG)).toBe(true);
      expect(await lease.tryAcquire(key, 'node-b', LONG)).toBe(false);
      expect(await lease.tryAcquire(key, 'node-a', LONG)).toBe(false);
    });

    it('of racing acquirers exactly one wins', async () => {
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => lease.tryAcquire(key, `node-${i}`, LONG)));
      expect(results.filter(Boolean)).toHaveLength(1);
    });

    it('keys are independent', async () => {
      expect(await lease.tryAcquire(key, 'node-a', LONG)).toBe(true);
      expect(await lease.tryAcquire(`${key}-2`, 'node-b', LONG)).toBe(true);
      expect(await lease.tryAcquire(`${key}-2`, 'node-a', LONG)).toBe(false);
    });

    it('the key is held until the ttl and free after it, not before', async () => {
      const before = Date.now();
      expect(await lease.tryAcquire(key, 'node-a', TTL)).toBe(true);
      await acquireOnceFree(key, 'node-b', TTL);
      // on the real clock: not before the ttl (measured from before the acquire: it can only overstate)
      if (!fx.advanceTime) expect(Date.now() - before).toBeGreaterThanOrEqual(TTL - CLOCK_SLACK_MS);
      expect(await lease.tryAcquire(key, 'node-a', LONG)).toBe(false);
    });

    it('renew by the holder sets the claim to end ttlMs from now; by anyone else it fails', async () => {
      expect(await lease.tryAcquire(key, 'node-a', LONG)).toBe(true);
      expect(await lease.renew(key, 'node-b', LONG)).toBe(false);
      // renewing with a short ttl shows the renewal took effect: the long claim now ends soon
      const before = Date.now();
      expect(await lease.renew(key, 'node-a', TTL)).toBe(true);
      await acquireOnceFree(key, 'node-b', TTL);
      if (!fx.advanceTime) expect(Date.now() - before).toBeGreaterThanOrEqual(TTL - CLOCK_SLACK_MS);
      // node-b holds it now: node-a can neither renew nor release it
      expect(await lease.renew(key, 'node-a', LONG)).toBe(false);
      expect(await lease.release(key, 'node-a')).toBe(false);
      expect(await lease.renew(`${key}-none`, 'node-a', TTL)).toBe(false);
    });

    it('renew extends the holder\'s claim beyond its first ttl', async () => {
      // a witness taken right after the key with the same first ttl is free only once that ttl
      // has passed for the key too; a renewal made before (well inside it) must keep the key held
      const first = 1_000;
      const witness = `${key}-witness`;
      expect(await lease.tryAcquire(key, 'node-a', first)).toBe(true);
      expect(await lease.tryAcquire(witness, 'node-w', first)).toBe(true);
      expect(await lease.renew(key, 'node-a', LONG)).toBe(true);
      await acquireOnceFree(witness, 'node-x', first);
      expect(await lease.tryAcquire(key, 'node-b', LONG)).toBe(false);
      expect(await lease.release(key, 'node-a')).toBe(true);
    });

    it('renew after expiry fails', async () => {
      // a witness taken after the key with the same ttl is free only once the key has expired
      const witness = `${key}-witness`;
      expect(await lease.tryAcquire(key, 'node-a', TTL)).toBe(true);
      expect(await lease.tryAcquire(witness, 'node-w', TTL)).toBe(true);
      await acquireOnceFree(witness, 'node-x', TTL);
      expect(await lease.renew(key, 'node-a', LONG)).toBe(false);
      expect(await lease.tryAcquire(key, 'node-b', LONG)).toBe(true);
    });

    it('release frees the key for its holder only', async () => {
      expect(await lease.tryAcquire(key, 'node-a', LONG)).toBe(true);
      expect(await lease.release(key, 'node-b')).toBe(false);
      expect(await lease.tryAcquire(key, 'node-b', LONG)).toBe(false);
      expect(await lease.release(key, 'node-a')).toBe(true);
      expect(await lease.release(key, 'node-a')).toBe(false);
      expect(await lease.tryAcquire(key, 'node-b', LONG)).toBe(true);
    });

    it('a late release after expiry and another acquire changes nothing', async () => {
      expect(await lease.tryAcquire(key, 'node-a', TTL)).toBe(true);
      await acquireOnceFree(key, 'node-b', TTL);
      expect(await lease.release(key, 'node-a')).toBe(false);
      expect(await lease.tryAcquire(key, 'node-c', LONG)).toBe(false);
    });
  });
}
