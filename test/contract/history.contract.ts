import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { EventHistory, HistoryRetention, Position } from '../../src/ports/history/history.js';

/** A history under test. */
export interface HistoryFixture {
  history: EventHistory;
  /** moves the history's clock; without it the age tests wait real time */
  advanceTime?(ms: number): void;
  /** loses the store as an operator or a crash would (a new, empty backend): the epoch must change */
  reset?(): Promise<EventHistory>;
  /** stops cleanly and opens the same store again: nothing is lost, the epoch stays */
  reopen?(): Promise<EventHistory>;
  close(): Promise<void>;
}

/** Called once per test with the retention to use; a real backend uses a fresh key prefix per call. */
export type HistoryFactory = (retention: HistoryRetention) => Promise<HistoryFixture>;

const KEEP: HistoryRetention = { maxEvents: 50, maxAgeMs: 600_000 };
/** Short enough for a backend on its own clock to be waited for. */
const SHORT_AGE = 300;

const bytes = (n: number): Uint8Array => Uint8Array.from([0x00, 0xff, n & 0xff, (n >> 8) & 0xff, 0x80]);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function appendMany(history: EventHistory, home: string, n: number): Promise<Position[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => history.append(home, bytes(i + 1))));
}

/** The promises of `EventHistory` (src/ports/history/history.ts), for any implementation. */
export function historyContract(name: string, make: HistoryFactory): void {
  describe(name, () => {
    let fx: HistoryFixture;
    let history: EventHistory;

    const open = async (retention: HistoryRetention = KEEP) => {
      fx = await make(retention);
      history = fx.history;
    };
    beforeEach(() => open());
    afterEach(() => fx.close());

    it('gives a home offsets 1, 2, 3… in call order, in the epoch its empty position had', async () => {
      const before = await history.position('home-a');
      expect(before.offset).toBe(0);
      const positions = await appendMany(history, 'home-a', 5);
      expect(positions.map((p) => p.offset)).toEqual([1, 2, 3, 4, 5]);
      expect(new Set(positions.map((p) => p.epoch))).toEqual(new Set([before.epoch]));
      expect(await history.position('home-a')).toEqual({ epoch: before.epoch, offset: 5 });
    });

    it('appendNow, where offered, continues the offsets of append and is read back the same', async () => {
      if (!history.appendNow) return;
      const first = await history.append('home-n', bytes(1));
      const now = history.appendNow('home-n', bytes(2));
      const last = await history.append('home-n', bytes(3));
      expect([first, now, last].map((p) => p.offset)).toEqual([1, 2, 3]);
      expect(now.epoch).toBe(first.epoch);
      const read = await history.read('home-n', { epoch: first.epoch, offset: 0 }, Infinity, 10);
      expect(read.ok && read.entries.map((e) => [...e.data])).toEqual([[...bytes(1)], [...bytes(2)], [...bytes(3)]]);
    });

    it('keeps homes apart, whatever their ids (__proto__, constructor, toString)', async () => {
      const homes = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'home-b'];
      for (const [i, home] of homes.entries()) await appendMany(history, home, i + 1);
      for (const [i, home] of homes.entries()) {
        const pos = await history.position(home);
        expect(pos.offset).toBe(i + 1);
        const read = await history.read(home, { epoch: pos.epoch, offset: 0 }, Infinity, 100);
        expect(read.ok && read.entries.map((e) => e.offset)).toEqual(Array.from({ length: i + 1 }, (_, k) => k + 1));
      }
    });

    it('reads exactly the entries after a position up to a bound, in order, bytes intact', async () => {
      const [first] = await appendMany(history, 'home-a', 10);
      const epoch = first!.epoch;
      const read = await history.read('home-a', { epoch, offset: 3 }, 7, 100);
      expect(read).toEqual({ ok: true, epoch, entries: [4, 5, 6, 7].map((o) => ({ offset: o, data: expect.anything() })) });
      if (read.ok) read.entries.forEach((e) => expect(Uint8Array.from(e.data)).toEqual(bytes(e.offset)));
      const rest = await history.read('home-a', { epoch, offset: 7 }, Number.MAX_SAFE_INTEGER, 100);
      expect(rest.ok && rest.entries.map((e) => e.offset)).toEqual([8, 9, 10]);
      expect(await history.read('home-a', { epoch, offset: 10 }, Number.MAX_SAFE_INTEGER, 100)).toEqual({ ok: true, epoch, entries: [] });
    });

    it('refuses another epoch and an offset it never gave with epoch_changed and the current position', async () => {
      const [p] = await appendMany(history, 'home-a', 3);
      const current = { epoch: p!.epoch, offset: 3 };
      expect(await history.read('home-a', { epoch: 'not-this-one', offset: 1 }, 10, 100)).toEqual({ ok: false, reason: 'epoch_changed', pos: current });
      expect(await history.read('home-a', { epoch: p!.epoch, offset: 4 }, 10, 100)).toEqual({ ok: false, reason: 'epoch_changed', pos: current });
    });

    it('keeps at least maxEvents and tells too_old beyond what it keeps or beyond the limit', async () => {
      const positions = await appendMany(history, 'home-a', KEEP.maxEvents * 3);
      const epoch = positions[0]!.epoch;
      const top = KEEP.maxEvents * 3;
      expect(await history.read('home-a', { epoch, offset: 0 }, top, 10_000)).toEqual({ ok: false, reason: 'too_old', pos: { epoch, offset: top } });
      const kept = await history.read('home-a', { epoch, offset: top - KEEP.maxEvents }, top, 10_000);
      expect(kept.ok && kept.entries.map((e) => e.offset)).toEqual(Array.from({ length: KEEP.maxEvents }, (_, i) => top - KEEP.maxEvents + 1 + i));
      expect(await history.read('home-a', { epoch, offset: top - 10 }, top, 9)).toEqual({ ok: false, reason: 'too_old', pos: { epoch, offset: top } });
    });

    it('delivers nothing older than maxAgeMs', async () => {
      await fx.close();
      await open({ maxEvents: 1000, maxAgeMs: SHORT_AGE });
      const [p] = await appendMany(history, 'home-a', 3);
      if (fx.advanceTime) fx.advanceTime(SHORT_AGE + 50);
      else await sleep(SHORT_AGE + 100);
      await history.append('home-a', bytes(4));
      const pos = { epoch: p!.epoch, offset: 4 };
      expect(await history.read('home-a', { epoch: p!.epoch, offset: 0 }, 10, 100)).toEqual({ ok: false, reason: 'too_old', pos });
      const fresh = await history.read('home-a', { epoch: p!.epoch, offset: 3 }, 10, 100);
      expect(fresh.ok && fresh.entries.map((e) => e.offset)).toEqual([4]);
    });

    it('remove drops the entries but not the offsets: positions stay comparable', async () => {
      const [p] = await appendMany(history, 'home-a', 4);
      await history.remove('home-a');
      expect(await history.position('home-a')).toEqual({ epoch: p!.epoch, offset: 4 });
      expect(await history.read('home-a', { epoch: p!.epoch, offset: 2 }, 10, 100)).toEqual({ ok: false, reason: 'too_old', pos: { epoch: p!.epoch, offset: 4 } });
      // a position at the newest offset missed nothing
      expect(await history.read('home-a', { epoch: p!.epoch, offset: 4 }, 10, 100)).toEqual({ ok: true, epoch: p!.epoch, entries: [] });
      expect((await history.append('home-a', bytes(5))).offset).toBe(5);
    });

    it('starts a new epoch when the store is lost', async (ctx) => {
      if (!fx.reset) return ctx.skip();
      const [p] = await appendMany(history, 'home-a', 3);
      history = await fx.reset();
      const after = await history.position('home-a');
      expect(after.epoch).not.toBe(p!.epoch);
      const read = await history.read('home-a', { epoch: p!.epoch, offset: 3 }, 10, 100);
      expect(read.ok).toBe(false);
      expect(!read.ok && read.reason).toBe('epoch_changed');
    });

    it('keeps entries, offsets and epoch across a clean restart', async (ctx) => {
      if (!fx.reopen) return ctx.skip();
      const [p] = await appendMany(history, 'home-a', 6);
      history = await fx.reopen();
      expect(await history.position('home-a')).toEqual({ epoch: p!.epoch, offset: 6 });
      const read = await history.read('home-a', { epoch: p!.epoch, offset: 2 }, 10, 100);
      expect(read.ok && read.entries.map((e) => [e.offset, Array.from(e.data)])).toEqual([3, 4, 5, 6].map((o) => [o, Array.from(bytes(o))]));
      expect((await history.append('home-a', bytes(7))).offset).toBe(7);
    });
  });
}
