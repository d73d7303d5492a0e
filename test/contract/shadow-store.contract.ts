import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Attrs } from '../../proto/frames.js';
import {
  desiredDelta,
  emptyDevice,
  hubDelta,
  mergeAttrs,
  type DeviceShadow,
  type HubShadow,
  type ShadowStore,
} from '../../src/ports/shadow-store/shadow-store.js';

/** A shadow store under test. */
export interface ShadowStoreFixture {
  store: ShadowStore;
  /** other nodes' stores over the same data, where the backend is shared (cluster mode) */
  peers?: ShadowStore[];
  close(): Promise<void>;
}

/** Called once per test; a real backend should use a fresh key prefix per call. */
export type ShadowStoreFactory = () => Promise<ShadowStoreFixture>;

const uid = (): string => randomUUID().replaceAll('-', '').slice(0, 16);

function device(reported: Attrs, reportedVersion: number, reportedAt: number, kind?: string): DeviceShadow {
  return { ...emptyDevice(), ...(kind === undefined ? {} : { kind }), reported, reportedVersion, reportedAt };
}

/**
 * The promises of `ShadowStore` (src/ports/shadow-store/shadow-store.ts), for any implementation. Reads
 * after `flush()` see durable state; reads before it must still see this process's queued writes.
 */
export function shadowStoreContract(name: string, make: ShadowStoreFactory): void {
  describe(name, () => {
    let fx: ShadowStoreFixture;
    let store: ShadowStore;
    let hub: string;

    beforeEach(async () => {
      fx = await make();
      store = fx.store;
      hub = `hub-${uid()}`;
    });

    afterEach(async () => {
      await fx.close();
    });

    it('states its batch window: a finite number of ms, ≥ 0', () => {
      expect(typeof store.batchWindowMs).toBe('number');
      expect(Number.isFinite(store.batchWindowMs)).toBe(true);
      expect(store.batchWindowMs).toBeGreaterThanOrEqual(0);
    });

    describe('load', () => {
      it('of an unknown hub is empty', async () => {
        expect(await store.load(hub)).toEqual({});
        expect(await store.loadCursor(hub)).toBeNull();
        expect(await store.loadDevices(hub, ['d1'])).toEqual({});
      });
    });

    describe('loadDevices', () => {
      it('answers what load answers of the named devices alone: reported, desired, kinds, queued writes; unknown ids left out', async () => {
        await store.writeDevices(hub, [{ d: 'lamp', k: 'light', m: 'L1' }, { d: 'listed', k: 'sensor' }, { d: 'other', k: 'plug' }], [], true);
        store.writeReported(hub, 'lamp', device({ on: true }, 2, 2_000, 'light'));
        store.writeReported(hub, 'other', device({ on: false }, 1, 1_000, 'plug'));
        await store.setDesired(hub, 'lamp', { on: false });
        await store.flush();
        store.writeReported(hub, 'lamp', device({ on: true, level: 9 }, 3, 3_000, 'light')); // queued, not flushed
        const whole = await store.load(hub);
        const named = ['lamp', 'listed', 'lamp', 'missing', '__proto__', 'toString'];
        const some = await store.loadDevices(hub, named);
        expect(Object.keys(some).sort()).toEqual(['lamp', 'listed']);
        expect(some).toEqual({ lamp: whole.lamp, listed: whole.listed });
        expect(some.lamp).toMatchObject({ reported: { on: true, level: 9 }, reportedVersion: 3, desired: { on: false }, kind: 'light', model: 'L1' });
        expect(Object.getPrototypeOf(some)).toBe(Object.getPrototypeOf(whole));
        // a rule's read: the reported side the same (the desired one may be left out)
        const spent = { ms: 0 };
        const reported = await store.loadDevices(hub, named, { reportedOnly: true, spent });
        expect(Object.keys(reported).sort()).toEqual(['lamp', 'listed']);
        expect(reported.lamp).toMatchObject({ reported: { on: true, level: 9 }, reportedVersion: 3, kind: 'light' });
        // every store adds the read's main-thread time (a rule's home and an API read's home are charged it)
        expect(spent.ms).toBeGreaterThan(0);
        const loaded = { ms: 0 };
        await store.load(hub, { spent: loaded });
        expect(loaded.ms).toBeGreaterThan(0);
        await store.flush();
        expect(await store.loadDevices(hub, ['other'])).toEqual({ other: (await store.load(hub)).other });
        // a device list read before and changed since is read anew (a store that keeps what it decoded)
        await store.writeDevices(hub, [{ d: 'lamp', k: 'dimmer' }, { d: 'listed', k: 'sensor' }], ['other'], false);
        await store.flush();
        expect((await store.loadDevices(hub, ['lamp'])).lamp).toEqual((await store.load(hub)).lamp);
        expect((await store.loadDevices(hub, ['lamp'])).lamp?.kind).toBe('dimmer');
        expect(await store.loadDevices(hub, ['other'])).toEqual({});
      });
    });

    describe('writeReported', () => {
      it('is visible to load after flush, with versions, time and kind', async () => {
        store.writeReported(hub, 'd1', device({ on: true, level: 40 }, 3, 1_700_000_000_500, 'switch'));
        store.writeReported(hub, 'd2', device({ temp: 21.5 }, 1, 1_700_000_000_600));
        await store.flush();
        const shadow = await store.load(hub);
        expect(Object.keys(shadow).sort()).toEqual(['d1', 'd2']);
        expect(shadow.d1).toMatchObject({ kind: 'switch', reported: { on: true, level: 40 }, reportedVersion: 3, reportedAt: 1_700_000_000_500 });
        expect(shadow.d2).toMatchObject({ reported: { temp: 21.5 }, reportedVersion: 1, reportedAt: 1_700_000_000_600 });
        // a device only reported has no desired state yet
        expect(shadow.d1).toMatchObject({ desired: {}, desiredVersion: 0 });
      });

      it('is visible to load of this process before flush (queued writes included)', async () => {
        store.writeReported(hub, 'd1', device({ on: false }, 1, 1_700_000_000_000));
        expect((await store.load(hub)).d1).toMatchObject({ reported: { on: false }, reportedVersion: 1 });
        await store.flush();
      });

      it('replaces the reported side: the last write wins, keys not in it are gone', async () => {
        store.writeReported(hub, 'd1', device({ on: true, level: 40 }, 1, 1_000));
        store.writeReported(hub, 'd1', device({ on: false }, 2, 2_000));
        await store.flush();
        expect((await store.load(hub)).d1).toMatchObject({ reported: { on: false }, reportedVersion: 2, reportedAt: 2_000 });
        expect((await store.load(hub)).d1!.reported).toEqual({ on: false });
      });

      it('leaves the desired side to setDesired', async () => {
        await store.setDesired(hub, 'd1', { on: true });
        // the hub actor writes its cached copy, whose desired side may be stale or empty
        store.writeReported(hub, 'd1', device({ on: false }, 5, 3_000));
        await store.flush();
        expect((await store.load(hub)).d1).toMatchObject({
          reported: { on: false },
          reportedVersion: 5,
          desired: { on: true },
          desiredVersion: 1,
        });
      });

      it('keeps hubs apart', async () => {
        const other = `${hub}-other`;
        store.writeReported(hub, 'd1', device({ a: 1 }, 1, 1));
        store.writeReported(other, 'd1', device({ a: 2 }, 7, 2));
        await store.flush();
        expect((await store.load(hub)).d1?.reported).toEqual({ a: 1 });
        expect((await store.load(other)).d1?.reported).toEqual({ a: 2 });
      });
    });

    describe('setDesired', () => {
      it('creates the device and starts at version 1, durable when it resolves', async () => {
        const d = await store.setDesired(hub, 'd1', { on: true });
        expect(d).toMatchObject({ desired: { on: true }, desiredVersion: 1, reported: {}, reportedVersion: 0 });
        expect((await store.load(hub)).d1).toMatchObject({ desired: { on: true }, desiredVersion: 1 });
      });

      it('merges patches and increments the version once per change', async () => {
        expect(await store.setDesired(hub, 'd1', { on: true })).toMatchObject({ desired: { on: true }, desiredVersion: 1 });
        expect(await store.setDesired(hub, 'd1', { level: 30, mode: 'eco' })).toMatchObject({
          desired: { on: true, level: 30, mode: 'eco' },
          desiredVersion: 2,
        });
        expect(await store.setDesired(hub, 'd1', { level: 31 })).toMatchObject({
          desired: { on: true, level: 31, mode: 'eco' },
          desiredVersion: 3,
        });
        expect((await store.load(hub)).d1).toMatchObject({ desired: { on: true, level: 31, mode: 'eco' }, desiredVersion: 3 });
      });

      it('removes a key given nil', async () => {
        await store.setDesired(hub, 'd1', { on: true, level: 30 });
        const d = await store.setDesired(hub, 'd1', { level: null });
        expect(d.desired).toEqual({ on: true });
        expect(d.desiredVersion).toBe(2);
        expect((await store.load(hub)).d1!.desired).toEqual({ on: true });
      });

      it('leaves the version alone when nothing changes', async () => {
        await store.setDesired(hub, 'd1', { on: true, level: 30 });
        expect((await store.setDesired(hub, 'd1', { on: true })).desiredVersion).toBe(1);
        expect((await store.setDesired(hub, 'd1', { on: true, level: 30 })).desiredVersion).toBe(1);
        expect((await store.setDesired(hub, 'd1', { absent: null })).desiredVersion).toBe(1);
        expect((await store.setDesired(hub, 'd1', {})).desiredVersion).toBe(1);
        expect((await store.load(hub)).d1).toMatchObject({ desired: { on: true, level: 30 }, desiredVersion: 1 });
        // a change of type counts: 1 and '1' and true differ
        expect((await store.setDesired(hub, 'd1', { level: '30' })).desiredVersion).toBe(2);
      });

      it('keeps the reported side', async () => {
        store.writeReported(hub, 'd1', device({ on: false, temp: 20 }, 4, 9_000, 'plug'));
        await store.flush();
        const d = await store.setDesired(hub, 'd1', { on: true });
        expect(d).toMatchObject({ kind: 'plug', reported: { on: false, temp: 20 }, reportedVersion: 4, reportedAt: 9_000 });
        expect((await store.load(hub)).d1).toMatchObject({ reported: { on: false, temp: 20 }, reportedVersion: 4, desired: { on: true } });
      });

      it('concurrent patches of one device all land (read-modify-write is atomic)', async () => {
        const keys = Array.from({ length: 10 }, (_, i) => `k${i}`);
        await Promise.all(keys.map((k, i) => store.setDesired(hub, 'd1', { [k]: i })));
        const d = (await store.load(hub)).d1!;
        expect(d.desired).toEqual(Object.fromEntries(keys.map((k, i) => [k, i])));
        expect(d.desiredVersion).toBe(keys.length);
      });
    });

    describe('writeDevices', () => {
      async function seed(): Promise<void> {
        store.writeReported(hub, 'a', device({ on: true }, 2, 100));
        store.writeReported(hub, 'b', device({ temp: 3 }, 1, 100));
        await store.setDesired(hub, 'a', { on: false });
        await store.setDesired(hub, 'c', { open: true });
        await store.flush();
      }

      it('full: sets kinds and models, adds new devices, removes devices not listed', async () => {
        await seed();
        await store.writeDevices(hub, [{ d: 'a', k: 'switch', m: 'SW-1' }, { d: 'n', k: 'sensor.door' }], [], true);
        const shadow = await store.load(hub);
        expect(Object.keys(shadow).sort()).toEqual(['a', 'n']);
        // a kept device keeps its shadow
        expect(shadow.a).toMatchObject({ kind: 'switch', model: 'SW-1', reported: { on: true }, reportedVersion: 2, desired: { on: false }, desiredVersion: 1 });
        expect(shadow.n).toMatchObject({ kind: 'sensor.door', reported: {}, reportedVersion: 0, desired: {}, desiredVersion: 0 });
      });

      it('partial: sets kinds, adds new devices, removes only those that left', async () => {
        await seed();
        await store.writeDevices(hub, [{ d: 'b', k: 'sensor.temp' }, { d: 'n', k: 'plug', m: 'P-2' }], ['c'], false);
        const shadow = await store.load(hub);
        expect(Object.keys(shadow).sort()).toEqual(['a', 'b', 'n']);
        expect(shadow.a).toMatchObject({ reported: { on: true }, desired: { on: false } });
        expect(shadow.b).toMatchObject({ kind: 'sensor.temp', reported: { temp: 3 } });
        expect(shadow.n).toMatchObject({ kind: 'plug', model: 'P-2' });
      });

      it("with an epoch, refuses an older session's list (session_taken_over) and changes nothing", async () => {
        const both = [{ d: 'a', k: 'switch' }, { d: 'b', k: 'plug' }];
        await store.writeDevices(hub, both, [], true, 5);
        await store.flush();
        // a newer session opens: the old one's late list is refused before the new one writes anything
        await store.loadSession(hub, 6);
        await expect(store.writeDevices(hub, [{ d: 'a', k: 'switch' }], [], true, 5)).rejects.toMatchObject({ code: 'session_taken_over' });
        // its hub removed b; the old session's list, queued behind a slow frame, names b again
        expect(await store.writeDevices(hub, [{ d: 'a', k: 'switch' }], [], true, 6)).toBe(true);
        await expect(store.writeDevices(hub, both, [], true, 5)).rejects.toMatchObject({ code: 'session_taken_over' });
        await expect(store.writeDevices(hub, [{ d: 'c', k: 'plug' }], ['a'], false, 5)).rejects.toMatchObject({ code: 'session_taken_over' });
        await store.flush();
        expect(Object.keys(await store.load(hub))).toEqual(['a']);
        // the same epoch, a newer one and an unfenced write (an import) still write
        expect(await store.writeDevices(hub, [{ d: 'c', k: 'plug' }], [], false, 6)).toBe(true);
        expect(await store.writeDevices(hub, [{ d: 'd', k: 'plug' }], [], false, 7)).toBe(true);
        expect(await store.writeDevices(hub, [{ d: 'e', k: 'plug' }], [], false)).toBe(true);
        expect(Object.keys(await store.load(hub)).sort()).toEqual(['a', 'c', 'd', 'e']);
      });

      it('full with an empty list removes every device', async () => {
        await seed();
        await store.writeDevices(hub, [], [], true);
        expect(await store.load(hub)).toEqual({});
      });

      it('answers whether it changed what the store holds', async () => {
        await seed();
        const list = [{ d: 'a', k: 'switch', m: 'SW-1' }, { d: 'b', k: 'sensor.temp' }];
        expect(await store.writeDevices(hub, list, [], true)).toBe(true); // c removed, kinds set
        expect(await store.writeDevices(hub, list, [], true)).toBe(false);
        // a model left out keeps the stored one; a partial list of the same kinds; a device that is not there leaving
        expect(await store.writeDevices(hub, [{ d: 'a', k: 'switch' }], ['gone'], false)).toBe(false);
        expect(await store.writeDevices(hub, [{ d: 'a', k: 'switch', m: 'SW-2' }, { d: 'b', k: 'sensor.temp' }], [], true)).toBe(true);
        expect(await store.writeDevices(hub, [{ d: 'a', k: 'plug' }], [], false)).toBe(true);
        expect(await store.writeDevices(hub, [{ d: 'n', k: 'plug' }], [], false)).toBe(true);
        expect(await store.writeDevices(hub, [], ['n'], false)).toBe(true);
        // a device reported and not yet listed, dropped by a full list
        store.writeReported(hub, 'r', device({ on: true }, 1, 100));
        expect(await store.writeDevices(hub, [{ d: 'a', k: 'plug', m: 'SW-2' }, { d: 'b', k: 'sensor.temp' }], [], true)).toBe(true);
        expect(Object.keys(await store.load(hub)).sort()).toEqual(['a', 'b']);
      });

      it('touches no other hub', async () => {
        const other = `${hub}-other`;
        await store.setDesired(other, 'a', { on: true });
        await seed();
        await store.writeDevices(hub, [], [], true);
        expect(Object.keys(await store.load(other))).toEqual(['a']);
      });
    });

    describe('loadSession', () => {
      it('answers what load and loadCursor answer, queued writes included', async () => {
        expect(await store.loadSession(hub)).toEqual({ shadow: {}, cursor: null });
        store.writeReported(hub, 'lamp', device({ on: true }, 1, 1000));
        store.writeCursor(hub, { boot: 'b1', seq: 4 });
        const queued = await store.loadSession(hub);
        expect(queued).toEqual({ shadow: await store.load(hub), cursor: await store.loadCursor(hub) });
        expect(queued.cursor).toEqual({ boot: 'b1', seq: 4 });
        expect(queued.shadow.lamp).toMatchObject({ reported: { on: true }, reportedVersion: 1 });
        await store.flush();
        expect(await store.loadSession(hub)).toEqual(queued);
      });

      it("keeps a cursor's tag (the numbering of its boot id, in events' src) queued and written, and a device write after it leaves it", async () => {
        store.writeCursor(hub, { boot: 'b1', seq: -1, tag: 'AbCd_-12' });
        expect((await store.loadSession(hub)).cursor).toEqual({ boot: 'b1', seq: -1, tag: 'AbCd_-12' });
        await store.flush();
        expect(await store.loadCursor(hub)).toEqual({ boot: 'b1', seq: -1, tag: 'AbCd_-12' });
        store.writeReported(hub, 'lamp', device({ on: true }, 1, 1000));
        await store.flush();
        expect((await store.loadSession(hub)).cursor).toEqual({ boot: 'b1', seq: -1, tag: 'AbCd_-12' });
        store.writeCursor(hub, { boot: 'b1', seq: 3, tag: 'AbCd_-12' });
        await store.flush();
        expect(await store.loadCursor(hub)).toEqual({ boot: 'b1', seq: 3, tag: 'AbCd_-12' });
        // a cursor written without one (a release before 2026-12-07) has none
        store.writeCursor(hub, { boot: 'b2', seq: 0 });
        await store.flush();
        expect(await store.loadCursor(hub)).toEqual({ boot: 'b2', seq: 0 });
      });

      it("with an epoch, refuses an older session's writes from then on and never tells their listener", async () => {
        store.writeReported(hub, 'lamp', device({ on: true }, 1, 1_000), 5);
        store.writeCursor(hub, { boot: 'b1', seq: 3 }, 5);
        await store.flush();
        // the new session (epoch 6) opens before writing anything; the old one's frames go on
        const opened = await store.loadSession(hub, 6);
        expect(opened.cursor).toEqual({ boot: 'b1', seq: 3 });
        const heard: string[] = [];
        store.writeReported(hub, 'lamp', device({ on: false }, 2, 2_000), 5);
        store.writeCursor(hub, { boot: 'b1', seq: 4 }, 5, { cursorStored: (_h, seq) => heard.push(`old ${seq}`) });
        await store.flush();
        expect(heard).toEqual([]);
        expect((await store.load(hub)).lamp!.reported).toEqual({ on: true });
        expect(await store.loadCursor(hub)).toEqual({ boot: 'b1', seq: 3 });
        // the new session's own writes are kept
        store.writeReported(hub, 'lamp', device({ on: false }, 2, 3_000), 6);
        store.writeCursor(hub, { boot: 'b1', seq: 4 }, 6, { cursorStored: (_h, seq) => heard.push(`new ${seq}`) });
        await store.flush();
        expect(heard).toEqual(['new 4']);
        expect((await store.load(hub)).lamp!.reported).toEqual({ on: false });
      });

      it('with an epoch, opens with every write of an older session a listener hears of (a takeover while its writes are queued)', async () => {
        const heard: number[] = [];
        const listener = { cursorStored: (_h: string, seq: number) => heard.push(seq) };
        store.writeReported(hub, 'lamp', device({ on: true }, 1, 1_000), 5);
        store.writeCursor(hub, { boot: 'b1', seq: 1 }, 5, listener);
        const opening = store.loadSession(hub, 6);
        // queued by the old session after the new one began to open
        store.writeReported(hub, 'fan', device({ speed: 2 }, 1, 1_000), 5);
        store.writeCursor(hub, { boot: 'b1', seq: 2 }, 5, listener);
        const start = await opening;
        await store.flush();
        expect(heard).not.toContain(2);
        expect(start.shadow.fan).toBeUndefined();
        expect((await store.load(hub)).fan).toBeUndefined();
        // a store may take the first write or refuse it, but never acknowledge what the new session lacks
        if (heard.includes(1)) {
          expect(start.shadow.lamp?.reported).toEqual({ on: true });
          expect(start.cursor).toEqual({ boot: 'b1', seq: 1 });
        } else expect((await store.load(hub)).lamp).toBeUndefined();
      });

      // the embedded store checks a reconnecting hub's list against the shadow its session opened
      // with: every write in between that may change the hub's devices must be seen
      const listed = [{ d: 'a', k: 'switch' }, { d: 'b', k: 'sensor.temp', m: 'T-1' }];
      async function opened(): Promise<void> {
        store.writeReported(hub, 'a', device({ on: true }, 1, 100));
        store.writeReported(hub, 'b', device({ temp: 3 }, 1, 100));
        await store.writeDevices(hub, listed, [], true);
        await store.flush();
        await store.loadSession(hub);
      }

      it('a list sent again after it keeps the shadow as it is', async () => {
        await opened();
        const before = await store.load(hub);
        await store.writeDevices(hub, listed, [], true);
        expect(await store.load(hub)).toEqual(before);
      });

      it('a device added by a desired state in between is removed by the full list', async () => {
        await opened();
        await store.setDesired(hub, 'z', { on: true });
        await store.writeDevices(hub, listed, [], true);
        expect(Object.keys(await store.load(hub)).sort()).toEqual(['a', 'b']);
      });

      it('a device reported in between is removed by the full list', async () => {
        await opened();
        store.writeReported(hub, 'y', device({ on: true }, 1, 200));
        await store.writeDevices(hub, listed, [], true);
        expect(Object.keys(await store.load(hub)).sort()).toEqual(['a', 'b']);
      });

      it('a hub removed in between gets its listed devices again', async () => {
        await opened();
        await store.remove(hub);
        await store.writeDevices(hub, listed, [], true);
        const shadow = await store.load(hub);
        expect(Object.keys(shadow).sort()).toEqual(['a', 'b']);
        expect(shadow.b).toMatchObject({ kind: 'sensor.temp', model: 'T-1', reported: {} });
      });

      it('a kind written in between is set back by the list', async () => {
        await opened();
        store.writeReported(hub, 'a', device({ on: false }, 2, 200, 'plug'));
        await store.flush();
        await store.writeDevices(hub, listed, [], true);
        expect((await store.load(hub)).a).toMatchObject({ kind: 'switch', reported: { on: false } });
      });
    });

    describe('cursor', () => {
      it('writeCursor then loadCursor returns the latest, per hub', async () => {
        const other = `${hub}-other`;
        store.writeCursor(hub, { boot: 'b1', seq: 10 });
        store.writeCursor(hub, { boot: 'b1', seq: 11 });
        store.writeCursor(other, { boot: 'x', seq: 1 });
        expect(await store.loadCursor(hub)).toEqual({ boot: 'b1', seq: 11 });
        await store.flush();
        expect(await store.loadCursor(hub)).toEqual({ boot: 'b1', seq: 11 });
        store.writeCursor(hub, { boot: 'b2', seq: 0 });
        await store.flush();
        expect(await store.loadCursor(hub)).toEqual({ boot: 'b2', seq: 0 });
        expect(await store.loadCursor(other)).toEqual({ boot: 'x', seq: 1 });
      });

      it('a newer session writing without a cursor keeps the cursor stored before it', async () => {
        store.writeCursor(hub, { boot: 'b1', seq: 7 }, 5);
        store.writeReported(hub, 'd1', device({ on: true }, 1, 1_000), 5);
        await store.flush();
        store.writeReported(hub, 'd1', device({ on: false }, 2, 2_000), 6);
        await store.flush();
        expect(await store.loadCursor(hub)).toEqual({ boot: 'b1', seq: 7 });
        expect((await store.load(hub)).d1!.reported).toEqual({ on: false });
      });

      it('is independent of the shadow', async () => {
        store.writeCursor(hub, { boot: 'b1', seq: 5 });
        await store.flush();
        expect(await store.load(hub)).toEqual({});
      });

      it('tells the listener once the cursor and the writes queued before it are durable, and only then', async () => {
        const heard: Array<[string, number]> = [];
        const listener = { cursorStored: (h: string, seq: number) => heard.push([h, seq]) };
        store.writeReported(hub, 'lamp', device({ on: true }, 1, 1000), 1);
        store.writeCursor(hub, { boot: 'b1', seq: 1 }, 1, listener);
        store.writeReported(hub, 'lamp', device({ on: false }, 2, 1001), 1);
        store.writeCursor(hub, { boot: 'b1', seq: 2 }, 1, listener);
        await store.flush();
        // told of the latest cursor of its batch (a store that writes through tells each one)
        expect(heard.at(-1)).toEqual([hub, 2]);
        expect(heard.every(([h]) => h === hub)).toBe(true);
        expect(heard.map(([, s]) => s)).toEqual([...heard.map(([, s]) => s)].sort((a, b) => a - b));
        // what it was told about is what a reader finds
        expect(await store.loadCursor(hub)).toEqual({ boot: 'b1', seq: 2 });
        expect((await store.load(hub)).lamp!.reported).toEqual({ on: false });
      });

      it('never tells the listener of a write refused by the epoch fence', async () => {
        if (store.batchWindowMs === 0) return; // written through: no late batch to fence
        const heard: number[] = [];
        store.writeCursor(hub, { boot: 'b1', seq: 7 }, 5, { cursorStored: (_h, seq) => heard.push(seq) });
        await store.flush();
        store.writeCursor(hub, { boot: 'b1', seq: 8 }, 3, { cursorStored: (_h, seq) => heard.push(seq) });
        await store.flush();
        expect(heard).toEqual([7]);
        expect(await store.loadCursor(hub)).toEqual({ boot: 'b1', seq: 7 });
      });

      it("refuses an older session's writes queued after a newer one's in the same batch (a takeover within it), and never tells its listener", async () => {
        if (!(await fencesWrites(store, hub))) return; // this store writes at once: nothing to fence
        const heard: string[] = [];
        // the new session (epoch 6) writes, then the old one (5), before either is written
        store.writeReported(hub, 'lamp', device({ on: true }, 2, 2_000), 6);
        store.writeCursor(hub, { boot: 'b2', seq: 1 }, 6, { cursorStored: (_h, seq) => heard.push(`new ${seq}`) });
        store.writeReported(hub, 'lamp', device({ on: false }, 3, 3_000), 5);
        store.writeReported(hub, 'fan', device({ speed: 1 }, 1, 3_000), 5);
        store.writeCursor(hub, { boot: 'b1', seq: 9 }, 5, { cursorStored: (_h, seq) => heard.push(`old ${seq}`) });
        await store.flush();
        const shadow = await store.load(hub);
        expect(shadow.lamp!.reported).toEqual({ on: true });
        expect(shadow.fan).toBeUndefined();
        expect(await store.loadCursor(hub)).toEqual({ boot: 'b2', seq: 1 });
        expect(heard).toEqual(['new 1']);
      });
    });

    describe('remove', () => {
      it('removes every device and the cursor of the hub, queued writes included; other hubs stay', async () => {
        const other = `${hub}-other`;
        store.writeReported(hub, 'd1', device({ on: true }, 1, 1_000), 4);
        store.writeCursor(hub, { boot: 'b1', seq: 3 }, 4);
        await store.setDesired(hub, 'd2', { level: 5 });
        store.writeReported(other, 'd1', device({ a: 2 }, 1, 1), 1);
        await store.flush();
        store.writeReported(hub, 'd3', device({ on: false }, 1, 2_000), 4); // queued, not flushed
        await store.remove(hub);
        await store.flush();
        expect(await store.load(hub)).toEqual({});
        expect(await store.loadCursor(hub)).toBeNull();
        expect((await store.load(other)).d1?.reported).toEqual({ a: 2 });
        // a new start: writes after the removal are kept
        await store.setDesired(hub, 'd1', { on: true });
        expect(Object.keys(await store.load(hub))).toEqual(['d1']);
      });

      it('a late batch of a session not newer than the last written is refused after the removal (where writes are fenced)', async () => {
        if (!(await fencesWrites(store, hub))) return; // this store writes at once: nothing to fence
        await store.remove(hub);
        store.writeReported(hub, 'late', device({ on: true }, 9, 3_000), 5);
        store.writeCursor(hub, { boot: 'b1', seq: 9 }, 5);
        await store.flush();
        expect(await store.load(hub)).toEqual({});
        expect(await store.loadCursor(hub)).toBeNull();
        // a newer session writes again
        store.writeCursor(hub, { boot: 'b2', seq: 1 }, 7);
        await store.flush();
        expect(await store.loadCursor(hub)).toEqual({ boot: 'b2', seq: 1 });
      });
    });

    describe('stored data is a copy', () => {
      it('mutating what was passed to writeReported changes nothing stored', async () => {
        const d = device({ on: true }, 1, 1_000, 'switch');
        store.writeReported(hub, 'd1', d);
        d.reported.on = false;
        d.reported.extra = 1;
        d.reportedVersion = 99;
        await store.flush();
        expect((await store.load(hub)).d1).toMatchObject({ reported: { on: true }, reportedVersion: 1 });
        expect((await store.load(hub)).d1!.reported).toEqual({ on: true });
      });

      it('mutating what load or setDesired returned changes nothing stored', async () => {
        const patch: Attrs = { on: true };
        const returned = await store.setDesired(hub, 'd1', patch);
        patch.on = false;
        returned.desired.on = false;
        returned.desiredVersion = 50;
        const loaded: HubShadow = await store.load(hub);
        loaded.d1!.desired.level = 3;
        loaded.d1!.reported.on = true;
        delete loaded.d1;
        const again = await store.load(hub);
        expect(again.d1).toMatchObject({ desired: { on: true }, desiredVersion: 1, reported: {} });
        expect(again.d1!.desired).toEqual({ on: true });
      });

      it('mutating a cursor after writing or loading changes nothing stored', async () => {
        const c = { boot: 'b1', seq: 1 };
        store.writeCursor(hub, c);
        c.seq = 2;
        const loaded = (await store.loadCursor(hub))!;
        loaded.seq = 3;
        expect(await store.loadCursor(hub)).toEqual({ boot: 'b1', seq: 1 });
      });
    });

    describe('delta after a round trip', () => {
      it('the delta of the loaded shadow is what the hub still has to apply', async () => {
        store.writeReported(hub, 'd1', device({ on: false, level: 10 }, 1, 1_000));
        store.writeReported(hub, 'd2', device({ on: true }, 1, 1_000));
        await store.setDesired(hub, 'd1', { on: true, level: 10 });
        await store.setDesired(hub, 'd2', { on: true });
        await store.flush();
        expect(hubDelta(await store.load(hub))).toEqual({ d1: { on: true } });
        // the hub applies it and reports back: nothing left
        store.writeReported(hub, 'd1', device({ on: true, level: 10 }, 2, 2_000));
        await store.flush();
        expect(hubDelta(await store.load(hub))).toEqual({});
      });
    });
  });
}

/** The pure helpers of shadow-store.ts: the same for every implementation. */
export function shadowDeltaSpec(): void {
  describe('desiredDelta', () => {
    const dev = (desired: Attrs, reported: Attrs): DeviceShadow => ({ ...emptyDevice(), desired, reported });

    it('is null when every desired key is reported with the same value', () => {
      expect(desiredDelta(dev({}, {}))).toBeNull();
      expect(desiredDelta(dev({}, { on: true }))).toBeNull();
      expect(desiredDelta(dev({ on: true, level: 3 }, { on: true, level: 3, temp: 20 }))).toBeNull();
    });

    it('holds the desired keys whose reported value differs or is missing, never reported-only keys', () => {
      expect(desiredDelta(dev({ on: true, level: 3, mode: 'eco' }, { on: true, level: 4, temp: 20 }))).toEqual({ level: 3, mode: 'eco' });
    });

    it('compares values strictly: 1, "1" and true differ; false differs from missing', () => {
      expect(desiredDelta(dev({ a: 1, b: false }, { a: '1' }))).toEqual({ a: 1, b: false });
      expect(desiredDelta(dev({ a: true }, { a: 1 }))).toEqual({ a: true });
    });

    it('does not modify the device', () => {
      const d = dev({ on: true }, { on: false });
      desiredDelta(d);
      expect(d).toEqual(dev({ on: true }, { on: false }));
    });
  });

  describe('hubDelta', () => {
    it('maps each device with a delta to it and leaves the others out', () => {
      const shadow: HubShadow = {
        a: { ...emptyDevice(), desired: { on: true }, reported: { on: false } },
        b: { ...emptyDevice(), desired: { on: true }, reported: { on: true } },
        c: { ...emptyDevice(), desired: {}, reported: { x: 1 } },
        d: { ...emptyDevice(), desired: { level: 5 }, reported: {} },
      };
      expect(hubDelta(shadow)).toEqual({ a: { on: true }, d: { level: 5 } });
    });

    it('is empty for an empty hub', () => {
      expect(hubDelta({})).toEqual({});
    });
  });

  describe('mergeAttrs', () => {
    it('sets, overwrites, removes on nil, and tells whether anything changed', () => {
      const t: Attrs = { a: 1, b: 'x' };
      expect(mergeAttrs(t, { a: 2, c: true, b: null })).toBe(true);
      expect(t).toEqual({ a: 2, c: true });
      expect(mergeAttrs(t, { a: 2, c: true, missing: null })).toBe(false);
      expect(t).toEqual({ a: 2, c: true });
    });
  });
}

/**
 * Whether `store` fences writes by epoch (a cursor of epoch 3 after one of 5 is refused; a store
 * that writes at once takes it). Leaves the hub's cursor at epoch 5, boot b1, seq 7 where it fences.
 */
async function fencesWrites(store: ShadowStore, hub: string): Promise<boolean> {
  store.writeCursor(hub, { boot: 'b1', seq: 7 }, 5);
  await store.flush();
  store.writeCursor(hub, { boot: 'b1', seq: 8 }, 3);
  await store.flush();
  return (await store.loadCursor(hub))?.seq !== 8;
}
