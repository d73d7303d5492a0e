import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Lease } from '../../src/rules/lease.js';

/** A lease under test. `advanceTime` moves a fake clock; without it the suite waits real time. */
export interface LeaseFixture {
  lease: Lease;
  advanceTime?(ms: number): void;
  close(): Promise<void>;
}

/** Called once per test; a real backend should use a fresh key prefix per call. */
export type LeaseFactory = () => Promise<LeaseFixture>;

const TTL = 200;

/** The promises of `Lease` (src/rules/lease.ts), for any implementation. */
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

    /** lets the ttl pass: on the fake clock at once, else by waiting until the key is free */
    async function expire(): Promise<void> {
      if (fx.advanceTime) fx.advanceTime(TTL + 1);
      else await new Promise((r) => setTimeout(r, TTL + 50));
    }

    it('a free key is taken once: every later call fails, the holder included', async () => {
      expect(await lease.tryAcquire(key, 'node-a', TTL)).toBe(true);
      expect(await lease.tryAcquire(key, 'node-b', TTL)).toBe(false);
      expect(await lease.tryAcquire(key, 'node-a', TTL)).toBe(false);
    });

    it('of racing acquirers exactly one wins', async () => {
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => lease.tryAcquire(key, `node-${i}`, TTL)));
      expect(results.filter(Boolean)).toHaveLength(1);
    });

    it('keys are independent', async () => {
      expect(await lease.tryAcquire(key, 'node-a', TTL)).toBe(true);
      expect(await lease.tryAcquire(`${key}-2`, 'node-b', TTL)).toBe(true);
    });

    it('the key is free again after the ttl', async () => {
      expect(await lease.tryAcquire(key, 'node-a', TTL)).toBe(true);
      await expire();
      expect(await lease.tryAcquire(key, 'node-b', TTL)).toBe(true);
      expect(await lease.tryAcquire(key, 'node-a', TTL)).toBe(false);
    });

    it('renew extends only the holder’s claim, and not after expiry', async () => {
      expect(await lease.tryAcquire(key, 'node-a', TTL)).toBe(true);
      expect(await lease.renew(key, 'node-b', TTL)).toBe(false);
      expect(await lease.renew(key, 'node-a', 60_000)).toBe(true);
      await expire();
      // still held thanks to the renewal
      expect(await lease.tryAcquire(key, 'node-b', TTL)).toBe(false);
      expect(await lease.renew(`${key}-none`, 'node-a', TTL)).toBe(false);
    });

    it('release frees the key for its holder only', async () => {
      expect(await lease.tryAcquire(key, 'node-a', 60_000)).toBe(true);
      expect(await lease.release(key, 'node-b')).toBe(false);
      expect(await lease.tryAcquire(key, 'node-b', TTL)).toBe(false);
      expect(await lease.release(key, 'node-a')).toBe(true);
      expect(await lease.release(key, 'node-a')).toBe(false);
      expect(await lease.tryAcquire(key, 'node-b', TTL)).toBe(true);
    });

    it('a late release after expiry and another acquire changes nothing', async () => {
      expect(await lease.tryAcquire(key, 'node-a', TTL)).toBe(true);
      await expire();
      expect(await lease.tryAcquire(key, 'node-b', 60_000)).toBe(true);
      expect(await lease.release(key, 'node-a')).toBe(false);
      expect(await lease.tryAcquire(key, 'node-c', TTL)).toBe(false);
    });
  });
}
