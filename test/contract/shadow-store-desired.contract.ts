import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Attrs } from '../../proto/frames.js';
import { desiredBytes, emptyDevice, type DesiredLimits, type HubShadow, type ShadowStore } from '../../src/ports/shadow-store/shadow-store.js';
import type { ShadowStoreFactory, ShadowStoreFixture } from './shadow-store.contract.js';

const LIMITS: DesiredLimits = { devices: 16, attrsPerDevice: 8, valueBytes: 40, desiredBytes: 1_000 };

/** The refusal of a write that would pass a limit: `limit_exceeded`, its field named. */
const refused = (field: string) => expect.objectContaining({ code: 'limit_exceeded', field });

function hubBytes(shadow: HubShadow): number {
  let n = 0;
  for (const id in shadow) n += desiredBytes(id, shadow[id]!.desired);
  return n;
}

/** The outcomes of concurrent writes: how many were stored, and every refusal's code. */
async function race(writes: Array<() => Promise<unknown>>): Promise<{ stored: number; codes: string[] }> {
  const results = await Promise.allSettled(writes.map((w) => w()));
  const codes = results.flatMap((r) => (r.status === 'rejected' ? [(r.reason as { code?: string }).code ?? String(r.reason)] : []));
  return { stored: results.length - codes.length, codes };
}

/**
 * `setDesired` with limits (src/ports/shadow-store/shadow-store.ts): the check and the write are one
 * step against every other desired write of the hub, of this store and of its `peers` (other nodes'
 * stores over the same data, where the backend is shared). And `clearDesired`.
 */
export function desiredLimitsContract(name: string, make: ShadowStoreFactory): void {
  describe(`${name}: setDesired within limits`, () => {
    let fx: ShadowStoreFixture;
    let store: ShadowStore;
    let hub: string;
    /** the stores that take turns in a race's writes: this one and its peers, where there are */
    let all: ShadowStore[];
    const nth = (i: number): ShadowStore => all[i % all.length]!;

    beforeEach(async () => {
      fx = await make();
      store = fx.store;
      all = [store, ...(fx.peers ?? [])];
      hub = `hub-${randomUUID().slice(0, 8)}`;
    });

    afterEach(async () => {
      await fx.close();
    });

    it('refuses a new device beyond the hub\'s devices, reported ones counted, and writes nothing', async () => {
      store.writeReported(hub, 'seen', { ...emptyDevice(), reported: { on: true }, reportedVersion: 1, reportedAt: 1 });
      for (let i = 1; i < LIMITS.devices; i++) await store.setDesired(hub, `d${i}`, { on: true }, LIMITS);
      await expect(store.setDesired(hub, 'one-too-many', { on: true }, LIMITS)).rejects.toEqual(refused('deviceId'));
      const shadow = await store.load(hub);
      expect(Object.keys(shadow)).toHaveLength(LIMITS.devices);
      expect(shadow['one-too-many']).toBeUndefined();
      // a device the hub has takes desired state still
      expect((await store.setDesired(hub, 'seen', { on: false }, LIMITS)).desired).toEqual({ on: false });
    });

    it('refuses attributes beyond attrsPerDevice and strings beyond valueBytes, naming the field', async () => {
      const eight = Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`k${i}`, i]));
      await store.setDesired(hub, 'd', eight, LIMITS);
      await expect(store.setDesired(hub, 'd', { k8: 8 }, LIMITS)).rejects.toEqual(refused('desired'));
      await expect(store.setDesired(hub, 'd', { k0: 'x'.repeat(41) }, LIMITS)).rejects.toEqual(refused('desired.k0'));
      expect((await store.load(hub)).d!.desired).toEqual(eight);
      // replacing one key by another stays within
      expect((await store.setDesired(hub, 'd', { k0: null, k8: 8 }, LIMITS)).desiredVersion).toBe(2);
    });

    it('refuses what would take the hub\'s desired state past desiredBytes, counting every device; shrinking passes', async () => {
      const limits = { ...LIMITS, devices: 512 };
      const value = 'v'.repeat(38); // key 'a', the value and device id 'dN': 41 bytes a device
      for (let i = 0; i < 24; i++) await store.setDesired(hub, `d${i}`, { a: value }, limits);
      await expect(store.setDesired(hub, 'd24', { a: value }, limits)).rejects.toEqual(refused('desired'));
      await expect(store.setDesired(hub, 'd0', { b: value }, limits)).rejects.toEqual(refused('desired'));
      const shadow = await store.load(hub);
      expect(hubBytes(shadow)).toBeLessThanOrEqual(LIMITS.desiredBytes);
      expect(shadow.d24).toBeUndefined();
      // over a limit lowered since, a write that shrinks the hub still passes
      const lower = { ...limits, desiredBytes: 100 };
      expect((await store.setDesired(hub, 'd0', { a: 'short' }, lower)).desired).toEqual({ a: 'short' });
      await expect(store.setDesired(hub, 'd1', { b: 1 }, lower)).rejects.toEqual(refused('desired'));
    });

    it('concurrent writes of new devices cannot pass the device limit together', async () => {
      const writes = Array.from({ length: 40 }, (_, i) => () => nth(i).setDesired(hub, `d${i}`, { on: true }, LIMITS));
      const { stored, codes } = await race(writes);
      expect(stored).toBe(LIMITS.devices);
      expect(new Set(codes)).toEqual(new Set(['limit_exceeded']));
      expect(Object.keys(await store.load(hub))).toHaveLength(LIMITS.devices);
    });

    it('concurrent new keys of one device cannot pass attrsPerDevice together', async () => {
      const writes = Array.from({ length: 30 }, (_, i) => () => nth(i).setDesired(hub, 'd', { [`k${i}`]: i }, LIMITS));
      const { stored } = await race(writes);
      expect(stored).toBe(LIMITS.attrsPerDevice);
      expect(Object.keys((await store.load(hub)).d!.desired)).toHaveLength(LIMITS.attrsPerDevice);
    });

    it('concurrent writes cannot pass desiredBytes together', async () => {
      const value: Attrs = { a: 'v'.repeat(38) };
      const writes = Array.from({ length: 40 }, (_, i) => () => nth(i).setDesired(hub, `e${i % 10}${i}`, value, { ...LIMITS, devices: 512 }));
      const { stored } = await race(writes);
      const shadow = await store.load(hub);
      expect(hubBytes(shadow)).toBeLessThanOrEqual(LIMITS.desiredBytes);
      expect(Object.keys(shadow)).toHaveLength(stored);
      expect(stored).toBeGreaterThan(15);
    });

    // a hub moved to another home: every device's desired side emptied in one step, its version
    // raised; reported sides, kinds and models kept
    describe('clearDesired', () => {
      it('empties every desired side, raises its version, keeps reported sides, kinds and models and other hubs', async () => {
        const other = `${hub}-other`;
        await store.writeDevices(hub, [{ d: 'lock', k: 'lock', m: 'L1' }, { d: 'lamp', k: 'switch' }, { d: 'idle', k: 'sensor' }], [], true);
        store.writeReported(hub, 'lock', { ...emptyDevice(), reported: { pin: 'PIN-4711' }, reportedVersion: 2, reportedAt: 1_000 });
        await store.flush();
        await store.setDesired(hub, 'lock', { pin: 'PIN-4711', owner: 'Alice Smith' });
        await store.setDesired(hub, 'lamp', { on: true });
        await store.setDesired(hub, 'lamp', { on: false });
        await store.setDesired(other, 'lock', { pin: 'other' });
        expect(await store.clearDesired(hub)).toBe(2);
        const shadow = await store.load(hub);
        expect(shadow.lock).toMatchObject({ kind: 'lock', model: 'L1', reported: { pin: 'PIN-4711' }, reportedVersion: 2, desired: {}, desiredVersion: 2 });
        expect(shadow.lamp).toMatchObject({ kind: 'switch', desired: {}, desiredVersion: 3 });
        expect(shadow.idle).toMatchObject({ kind: 'sensor', desired: {}, desiredVersion: 0 });
        expect((await store.load(other)).lock!.desired).toEqual({ pin: 'other' });
        // nothing left to clear; a hub never seen has nothing either
        expect(await store.clearDesired(hub)).toBe(0);
        expect(await store.clearDesired(`${hub}-none`)).toBe(0);
        // the new home's desired state starts from there
        expect((await store.setDesired(hub, 'lock', { pin: 'PIN-0042' })).desiredVersion).toBe(3);
        expect((await store.loadSession(hub)).shadow.lock!.desired).toEqual({ pin: 'PIN-0042' });
      });
    });
  });
}
