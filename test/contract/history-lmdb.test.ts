/**
 * The embedded history's own behaviour beyond the contract (history.test.ts runs that against every
 * adapter): chunks, their compression and check, timers, trims, sweeps, and what it keeps in memory.
 */
import { cpSync, mkdtempSync, readdirSync, rmSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { LmdbEventHistory } from '../../src/ports/history/history-lmdb.js';
import { openChunks } from '../../src/ports/history/history-lmdb-chunks.js';
import type { HistoryRetention, Position } from '../../src/ports/history/history.js';
import { openDataStore, type DataStore } from '../../src/ports/lmdb.js';

describe('LmdbEventHistory chunks', () => {
  const setup = async (retention: HistoryRetention, clock?: () => number) => {
    const dir = mkdtempSync(join(tmpdir(), 'hubtier-history-'));
    const store = openDataStore(dir, { sync: 'os' });
    const history = await LmdbEventHistory.open(store, retention, { sweepMs: 0, ...(clock ? { now: clock } : {}) });
    const keys = () => [...openChunks(store).getKeys()];
    // the chunks' records as lmdb holds them, without decompression
    const raw = () => store.side('history').openDB({ name: 'history-chunks-4', encoding: 'binary' });
    const done = async () => {
      await history.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    };
    return { store, history, keys, raw, done };
  };

  it('writes a full chunk as one record, trims whole chunks past the count, and delivers exactly the newest maxEvents', async () => {
    // maxEvents 8: chunks of 4
    const { history, keys, done } = await setup({ maxEvents: 8, maxAgeMs: 60_000 });
    let epoch = '';
    for (let i = 1; i <= 14; i++) epoch = (await history.append('h', Uint8Array.from([i]))).epoch;
    await history.settle();
    // 1-4 trimmed once 5-8 and 9-12 hold the newest 8 with 13-14 open: written as a chunk at settle
    expect(keys()).toEqual([['h', 5], ['h', 9], ['h', 13]]);
    expect(await history.read('h', { epoch, offset: 5 }, Infinity, 100)).toMatchObject({ ok: false, reason: 'too_old' });
    const kept = await history.read('h', { epoch, offset: 6 }, Infinity, 100);
    expect(kept.ok && kept.entries.map((e) => [e.offset, ...e.data])).toEqual([7, 8, 9, 10, 11, 12, 13, 14].map((o) => [o, o]));
    await done();
  });

  it('durable: the home\'s open chunk is written at the end of the turn and committed when it resolves; other homes\' chunks stay open', async () => {
    const { history, keys, done } = await setup({ maxEvents: 64, maxAgeMs: 60_000 });
    history.appendNow!('h', Uint8Array.from([1]));
    history.appendNow!('h', Uint8Array.from([2]));
    history.appendNow!('other', Uint8Array.from([9]));
    // two asks in one turn share the flush
    const both = Promise.all([history.durable('h'), history.durable('h')]);
    expect(keys()).toEqual([]);
    await both;
    expect(keys()).toEqual([['h', 1]]);
    // nothing new: answers once what was issued is committed
    await history.durable('h');
    history.appendNow!('h', Uint8Array.from([3]));
    await history.durable('h');
    expect(keys()).toEqual([['h', 1], ['h', 3]]);
    const { epoch } = await history.position('h');
    const read = await history.read('h', { epoch, offset: 0 }, Infinity, 10);
    expect(read.ok && read.entries.map((e) => [e.offset, ...e.data])).toEqual([[1, 1], [2, 2], [3, 3]]);
    await done();
  });

  it('durable answers for each chunk its own transaction: a chunk whose commit failed is not acknowledged by a later commit that fitted', async () => {
    const { history, done } = await setup({ maxEvents: 64, maxAgeMs: 60_000 });
    // the disk refuses the first chunk's transaction (a full disk: the next, smaller one may still fit)
    const chunks = (history as unknown as { entries: { put: (...a: unknown[]) => Promise<unknown> } }).entries;
    const put = chunks.put.bind(chunks);
    let refuse = true;
    chunks.put = (...args: unknown[]) => {
      if (!refuse) return put(...args);
      refuse = false;
      const failed = Promise.reject(new Error('Commit failed'));
      failed.catch(() => {});
      return failed;
    };
    history.appendNow!('h', Uint8Array.from([1]));
    await expect(history.durable('h')).rejects.toThrow('Commit failed');
    // another home's chunk commits in the next transaction
    history.appendNow!('other', Uint8Array.from([2]));
    await history.durable('other');
    // h's chunk is still not stored: asked again (an event of h whose chunk was issued), no answer
    await expect(history.durable('h')).rejects.toThrow('Commit failed');
    await done();
  });

  it("keeps no range in memory for homes never written, whatever is asked of them (an admin's app may ask of any id)", async () => {
    const { history, done } = await setup({ maxEvents: 8, maxAgeMs: 60_000 });
    const { epoch } = await history.position('never-0');
    for (let i = 0; i < 1000; i++) {
      expect(await history.position(`never-${i}`)).toEqual({ epoch, offset: 0 });
      expect(await history.read(`never-${i}`, { epoch, offset: 0 }, Infinity, 10)).toEqual({ ok: true, epoch, entries: [] });
    }
    expect(history.homesKept).toBe(0);
    // a home written is kept, and its offsets go on from what was answered before
    expect(await history.append('never-7', Uint8Array.from([1]))).toEqual({ epoch, offset: 1 });
    expect(await history.position('never-7')).toEqual({ epoch, offset: 1 });
    expect(history.homesKept).toBe(1);
    await done();
  });

  it('lets go of a home at rest a minute and reads it back from the store when used: its offsets and entries go on', async () => {
    let t = 1_000_000;
    const { history, done } = await setup({ maxEvents: 64, maxAgeMs: 3_600_000 }, () => t);
    for (let i = 1; i <= 3; i++) history.appendNow!('quiet', Uint8Array.from([i]));
    await history.durable('quiet');
    t += 61_000;
    // written within the minute: kept
    history.appendNow!('busy', Uint8Array.from([1]));
    await history.durable('busy');
    expect(history.homesKept).toBe(2);
    await history.sweep();
    expect(history.homesKept).toBe(1);
    const { epoch } = await history.position('quiet');
    expect(await history.position('quiet')).toEqual({ epoch, offset: 3 });
    expect(await history.append('quiet', Uint8Array.from([4]))).toEqual({ epoch, offset: 4 });
    await history.durable('quiet');
    const read = await history.read('quiet', { epoch, offset: 0 }, Infinity, 10);
    expect(read.ok && read.entries.map((e) => [e.offset, ...e.data])).toEqual([[1, 1], [2, 2], [3, 3], [4, 4]]);
    expect(await history.append('busy', Uint8Array.from([2]))).toEqual({ epoch, offset: 2 });
    await done();
  });

  it('a chunk is one allocation once its home filled one: the room of the last full chunk is taken at once', async () => {
    // maxEvents 16: chunks of 8
    const { history, done } = await setup({ maxEvents: 16, maxAgeMs: 60_000 });
    const grown: number[] = [];
    const allocUnsafe = Buffer.allocUnsafe;
    const spy = vi.spyOn(Buffer, 'allocUnsafe').mockImplementation((size: number) => {
      grown.push(size);
      return allocUnsafe(size);
    });
    try {
      const event = new Uint8Array(100);
      // the first chunk grows (room for 4 of its first entry, then twice that), the ones after take a full one's size at once
      for (let i = 0; i < 24; i++) history.appendNow!('h', event);
    } finally {
      spy.mockRestore();
    }
    const entry = 12 + 100;
    const full = 4 + 8 * entry;
    expect(grown.filter((n) => n >= entry)).toEqual([4 + 4 * entry, 2 * (4 + 4 * entry), full, full]);
    await done();
  });

  it('stores full chunks compressed and reads them back byte for byte', async () => {
    const { history, raw, done } = await setup({ maxEvents: 64, maxAgeMs: 60_000 });
    // events as a home's are: the same keys, home and hub names over and over
    const events = Array.from({ length: 64 }, (_, i) => new TextEncoder().encode(JSON.stringify({ op: 'evt', kind: 'state', home: 'home-0', hub: `hub-${i % 4}`, device: `dev-${i % 8}`, attrs: { temperature: 20 + (i % 5), battery: 80, seq: i } })));
    let epoch = '';
    for (const e of events) epoch = (await history.append('h', e)).epoch;
    await history.settle();
    for (const start of [1, 33]) {
      const packed = events.slice(start - 1, start + 31).reduce((n, e) => n + 12 + e.length, 0);
      expect((raw().get(['h', start]) as Uint8Array).length).toBeLessThan(packed / 2);
    }
    // both chunks in one read: the first's entries still whole once the second is decompressed
    const read = await history.read('h', { epoch, offset: 0 }, Infinity, 100);
    expect(read.ok && read.entries.map((e) => Buffer.from(e.data).toString())).toEqual(events.map((e) => Buffer.from(e).toString()));
    await done();
  });

  it("a compressed chunk damaged on disk is a hole, never the chunk lmdb-js decompressed before it (another home's)", async () => {
    const { store, history, raw, done } = await setup({ maxEvents: 64, maxAgeMs: 60_000 });
    const event = (home: string, i: number) => new TextEncoder().encode(JSON.stringify({ op: 'evt', kind: 'state', home, hub: 'hub-1', seq: 1000 + i }));
    for (let i = 0; i < 64; i++) {
      history.appendNow('a', event('a', i));
      history.appendNow('b', event('b', i));
    }
    await history.close();
    // home a's first chunk cut after lmdb-js's 4-byte header and one byte of its compressed body:
    // decompressing it fails before writing anything, and lmdb-js answers what it decompressed last
    const stored = raw().get(['a', 1]) as Uint8Array;
    await raw().put(['a', 1], Uint8Array.from([...stored.subarray(0, 4), 0]));
    const again = await LmdbEventHistory.open(store, { maxEvents: 64, maxAgeMs: 60_000 }, { sweepMs: 0 });
    const epoch = (await again.position('a')).epoch;
    const b = await again.read('b', { epoch, offset: 0 }, Infinity, 100);
    expect(b.ok && b.entries.length).toBe(64);
    // read right after b's chunks were decompressed
    expect(await again.read('a', { epoch, offset: 0 }, Infinity, 100)).toMatchObject({ ok: false, reason: 'too_old' });
    const after = await again.read('a', { epoch, offset: 32 }, Infinity, 100);
    expect(after.ok && after.entries.map((e) => new TextDecoder().decode(e.data))).toEqual(Array.from({ length: 32 }, (_, i) => new TextDecoder().decode(event('a', 32 + i))));
    await again.close();
    await done();
  });

  it('a chunk whose read throws is a hole too: the home still takes events and serves what is after it', async () => {
    const { store, history, done } = await setup({ maxEvents: 64, maxAgeMs: 60_000 });
    for (let i = 1; i <= 40; i++) history.appendNow('h', Uint8Array.from([i]));
    await history.close();
    // every stored chunk's read throws, as a decoder refusing a damaged record would (the
    // prototype's get serves the environment's other sub-databases too, keyed by strings)
    const proto = Object.getPrototypeOf(openChunks(store)) as { get(key: unknown): unknown };
    const original = proto.get;
    const get = vi.spyOn(proto, 'get').mockImplementation(function (this: unknown, key: unknown) {
      if (Array.isArray(key)) throw new Error('damaged record');
      return original.call(this, key);
    });
    try {
      const again = await LmdbEventHistory.open(store, { maxEvents: 64, maxAgeMs: 60_000 }, { sweepMs: 0 });
      // the newest chunk unreadable: offsets go on past all it may have held
      expect((await again.append('h', Uint8Array.from([99]))).offset).toBe(33 + 32);
      const pos = await again.position('h');
      expect(await again.read('h', { epoch: pos.epoch, offset: 0 }, Infinity, 100)).toMatchObject({ ok: false, reason: 'too_old' });
      const after = await again.read('h', { epoch: pos.epoch, offset: pos.offset - 1 }, Infinity, 100);
      expect(after.ok && after.entries.map((e) => e.data[0])).toEqual([99]);
      expect(get).toHaveBeenCalled();
      await again.close();
    } finally {
      get.mockRestore();
    }
    await done();
  });

  it('reads the open chunk, chunks in flight and stored ones alike, while writes go on', async () => {
    const { history, done } = await setup({ maxEvents: 8, maxAgeMs: 60_000 });
    const epoch = (await history.append('h', Uint8Array.from([1]))).epoch;
    for (let i = 2; i <= 6; i++) history.appendNow('h', Uint8Array.from([i]));
    // 1-4 sealed, its put not issued yet; 5-6 open
    const during = await history.read('h', { epoch, offset: 0 }, Infinity, 100);
    expect(during.ok && during.entries.map((e) => e.data[0])).toEqual([1, 2, 3, 4, 5, 6]);
    await history.settle();
    const after = await history.read('h', { epoch, offset: 2 }, Infinity, 100);
    expect(after.ok && after.entries.map((e) => e.data[0])).toEqual([3, 4, 5, 6]);
    await done();
  });

  it('writes an open chunk once it is old, and keeps it across a clean restart', async () => {
    let now = 1_700_000_000_000;
    const dir = mkdtempSync(join(tmpdir(), 'hubtier-history-'));
    const store = openDataStore(dir, { sync: 'os' });
    const history = await LmdbEventHistory.open(store, { maxEvents: 100, maxAgeMs: 600_000 }, { now: () => now, sweepMs: 0 });
    const side = openChunks(store);
    await history.append('slow', Uint8Array.from([1]));
    expect([...side.getKeys()]).toEqual([]);
    now += 1_000;
    // the sealing timer runs every 100 ms of real time
    await expect.poll(() => [...side.getKeys()], { interval: 20 }).toEqual([['slow', 1]]);
    await history.append('slow', Uint8Array.from([2]));
    await history.close();
    const again = await LmdbEventHistory.open(store, { maxEvents: 100, maxAgeMs: 600_000 }, { now: () => now, sweepMs: 0 });
    const pos = await again.position('slow');
    expect(pos.offset).toBe(2);
    const read = await again.read('slow', { epoch: pos.epoch, offset: 0 }, Infinity, 10);
    expect(read.ok && read.entries.map((e) => e.data[0])).toEqual([1, 2]);
    await again.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps a timer only while a chunk is open: an idle node is not woken for the history', async () => {
    const { history, keys, done } = await setup({ maxEvents: 100, maxAgeMs: 600_000 });
    const intervals = vi.spyOn(globalThis, 'setInterval');
    const cleared = vi.spyOn(globalThis, 'clearInterval');
    try {
      await history.append('h', Uint8Array.from([1]));
      await history.append('h', Uint8Array.from([2]));
      // one sealing timer for the open chunk, not one per append
      expect(intervals).toHaveBeenCalledTimes(1);
      // sealed by age (1 s) and written; the timer stops once nothing is open
      await expect.poll(() => keys(), { timeout: 5_000, interval: 50 }).toEqual([['h', 1]]);
      await expect.poll(() => cleared.mock.calls.length, { timeout: 2_000, interval: 20 }).toBe(1);
      expect(cleared.mock.calls[0]![0]).toBe(intervals.mock.results[0]!.value);
      // a new event opens a chunk, and the timer again
      await history.append('h', Uint8Array.from([3]));
      expect(intervals).toHaveBeenCalledTimes(2);
    } finally {
      intervals.mockRestore();
      cleared.mockRestore();
    }
    await done();
  });

  it('a chunk trimmed before its put was issued is never written; one trimmed in flight is removed after its put', async () => {
    const { history, keys, done } = await setup({ maxEvents: 2, maxAgeMs: 60_000 });
    // chunks of 1: each append seals one
    for (let i = 1; i <= 2; i++) history.appendNow('h', Uint8Array.from([i]));
    const inFlight = history.settle(); // the puts of 1 and 2 are issued, not committed
    for (let i = 3; i <= 5; i++) history.appendNow('h', Uint8Array.from([i])); // trims 1, 2 and 3
    await inFlight;
    await history.settle();
    expect(keys()).toEqual([['h', 4], ['h', 5]]);
    const epoch = (await history.position('h')).epoch;
    const read = await history.read('h', { epoch, offset: 3 }, Infinity, 10);
    expect(read.ok && read.entries.map((e) => e.data[0])).toEqual([4, 5]);
    await done();
  });

  /** After a restart, a home whose events all aged out: its position kept, a recovery from before too_old, the next offset next. */
  const offsetsGoOn = async (store: DataStore, retention: HistoryRetention, now: number, home: string, pos: Position) => {
    const again = await LmdbEventHistory.open(store, retention, { now: () => now, sweepMs: 0 });
    expect(await again.position(home)).toEqual(pos);
    // never an epoch change or a reused offset
    expect(await again.read(home, { epoch: pos.epoch, offset: 1 }, Infinity, 100)).toEqual({ ok: false, reason: 'too_old', pos });
    expect(await again.append(home, Uint8Array.from([9]))).toEqual({ epoch: pos.epoch, offset: pos.offset + 1 });
    await again.close();
  };

  it('the sweep drops chunks past their age in homes nobody appends to, the newest too; their offsets and epoch go on', async () => {
    let now = 1_700_000_000_000;
    const retention = { maxEvents: 4, maxAgeMs: 1000 };
    const { history, store, keys, done } = await setup(retention, () => now);
    for (let i = 0; i < 6; i++) await history.append('quiet', Uint8Array.from([i]));
    const { epoch } = await history.position('quiet');
    await history.close();
    // a node restarted: the home is not live here
    const again = await LmdbEventHistory.open(store, retention, { now: () => now, sweepMs: 0 });
    expect(keys()).toEqual([['quiet', 3], ['quiet', 5]]);
    now += 2000;
    expect(await again.sweep()).toBe(4);
    await store.side('history').flushed;
    // nothing past the age stays on disk
    expect(keys()).toEqual([]);
    await again.close();
    await offsetsGoOn(store, retention, now, 'quiet', { epoch, offset: 6 });
    await done();
  });

  it("a live home's last chunk goes once past the age too, its offsets kept across a restart", async () => {
    let now = 1_700_000_000_000;
    const retention = { maxEvents: 100, maxAgeMs: 1000 };
    const { history, store, keys, done } = await setup(retention, () => now);
    for (let i = 1; i <= 3; i++) history.appendNow('live', Uint8Array.from([i]));
    await history.settle();
    const { epoch } = await history.position('live');
    expect(keys()).toEqual([['live', 1]]);
    now += 2000;
    expect(await history.sweep()).toBe(3);
    await history.settle();
    expect(keys()).toEqual([]);
    expect(await history.read('live', { epoch, offset: 1 }, Infinity, 100)).toEqual({ ok: false, reason: 'too_old', pos: { epoch, offset: 3 } });
    expect(await history.read('live', { epoch, offset: 3 }, Infinity, 100)).toEqual({ ok: true, epoch, entries: [] });
    await history.close();
    await offsetsGoOn(store, retention, now, 'live', { epoch, offset: 3 });
    await done();
  });

  it('a stored chunk whose bytes are not whole is a hole: a read over it is told too_old, one after it is served, and no offset is given twice', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hubtier-history-'));
    const store = openDataStore(dir, { sync: 'os' });
    const first = await LmdbEventHistory.open(store, { maxEvents: 100, maxAgeMs: 600_000 }, { sweepMs: 0 });
    for (let i = 1; i <= 40; i++) first.appendNow('h', Uint8Array.from([i]));
    await first.close();
    // chunks of 32 and 8; the first cut short, as a torn page or a foreign writer would leave it
    const side = openChunks(store);
    await side.put(['h', 1], Uint8Array.from([1, 2, 3]));
    const again = await LmdbEventHistory.open(store, { maxEvents: 100, maxAgeMs: 600_000 }, { sweepMs: 0 });
    const pos = await again.position('h');
    expect(pos.offset).toBe(40);
    expect(await again.read('h', { epoch: pos.epoch, offset: 0 }, Infinity, 100)).toMatchObject({ ok: false, reason: 'too_old' });
    const after = await again.read('h', { epoch: pos.epoch, offset: 34 }, Infinity, 100);
    expect(after.ok && after.entries.map((e) => e.data[0])).toEqual([35, 36, 37, 38, 39, 40]);
    await again.close();
    // the newest chunk damaged: the offsets it may have given are not given again
    await side.put(['h', 33], Uint8Array.from([1]));
    const third = await LmdbEventHistory.open(store, { maxEvents: 100, maxAgeMs: 600_000 }, { sweepMs: 0 });
    expect((await third.position('h')).offset).toBe(64);
    expect((await third.append('h', Uint8Array.from([65]))).offset).toBe(65);
    await third.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it.each([
    ['per-event', 'history', { t: 1, d: Uint8Array.from([1]) }],
    ['msgpack chunk', 'history-chunks', { t: [1], d: [Uint8Array.from([1])] }],
    ['uncompressed chunk', 'history-chunks-2', Uint8Array.from([0, 0, 0, 0, 0, 0, 240, 63, 1, 0, 0, 0, 1])],
    ["chunk compressed with lmdb-js's dictionary", 'history-chunks-3', Uint8Array.from([0, 0, 0, 0, 0, 0, 240, 63, 1, 0, 0, 0, 1])],
  ])('opening a store of the %s layout drops it and starts a new epoch', async (_layout, name, value) => {
    const dir = mkdtempSync(join(tmpdir(), 'hubtier-history-'));
    const warnings: string[] = [];
    const store = openDataStore(dir, { sync: 'os', warn: (m) => warnings.push(m) });
    const first = await LmdbEventHistory.open(store, { maxEvents: 10, maxAgeMs: 60_000 }, { sweepMs: 0 });
    const epoch = (await first.position('h')).epoch;
    await first.close();
    expect(warnings).toEqual([]);
    const old = store.side('history').openDB({ name, encoding: 'msgpack' });
    await old.put(['h', 1], value);
    const second = await LmdbEventHistory.open(store, { maxEvents: 10, maxAgeMs: 60_000 }, { sweepMs: 0 });
    expect((await second.position('h')).epoch).not.toBe(epoch);
    expect(old.getKeysCount()).toBe(0);
    // said, not dropped unsaid (review "upgrade")
    expect(warnings).toEqual([expect.stringMatching(/history\.mdb held device events in an earlier release's layout: dropped; a new epoch starts/)]);
    await second.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a file a newer release laid out (a rollback) starts a new epoch, said, and is marked with this layout; the same layout reopened keeps its epoch', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hubtier-history-'));
    const warnings: string[] = [];
    const store = openDataStore(dir, { sync: 'os', warn: (m) => warnings.push(m) });
    const retention = { maxEvents: 10, maxAgeMs: 60_000 };
    const epochNow = async () => {
      const history = await LmdbEventHistory.open(store, retention, { sweepMs: 0 });
      const pos = await history.append('h', Uint8Array.from([1]));
      await history.settle();
      await history.close();
      return pos.epoch;
    };
    const meta = store.side('history').openDB({ name: 'history-epoch', encoding: 'msgpack' });
    const first = await epochNow();
    expect(meta.get('layout')).toBe(4);
    expect(await epochNow()).toBe(first);
    // a store of a release before the layout was kept: the same epoch, the key added
    await meta.remove('layout');
    expect(await epochNow()).toBe(first);
    expect(meta.get('layout')).toBe(4);
    expect(warnings).toEqual([]);
    // a newer release ran on the file, gave out offsets in this epoch, and was rolled back
    await meta.put('layout', 5);
    const rolledBack = await epochNow();
    expect(rolledBack).not.toBe(first);
    expect(warnings).toEqual([expect.stringMatching(/history\.mdb was written by a newer release \(history layout 5, this one reads 4\): its events are not read; a new epoch starts/)]);
    expect(meta.get('layout')).toBe(4);
    expect(await epochNow()).toBe(rolledBack);
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('LmdbEventHistory: a file put back', () => {
  it('a history.mdb copied back from elsewhere (a file-level restore) starts a new epoch; the same file reopened keeps its own, and its damage is moved aside, said', async () => {
    const retention = { maxEvents: 64, maxAgeMs: 60_000 };
    const dir = mkdtempSync(join(tmpdir(), 'hubtier-history-copy-'));
    const copy = mkdtempSync(join(tmpdir(), 'hubtier-history-copy-'));
    const epochOf = async (at: string, warnings: string[] = []) => {
      const store = openDataStore(at, { sync: 'commit', warn: (m) => warnings.push(m) });
      const history = await LmdbEventHistory.open(store, retention, { sweepMs: 0 });
      const pos = await history.append('h', Uint8Array.from([1]));
      await history.settle();
      await history.close();
      await store.close();
      return pos.epoch;
    };
    const first = await epochOf(dir);
    // the same file, stopped cleanly: the same epoch, offsets go on
    expect(await epochOf(dir)).toBe(first);
    // a backup of the directory taken now, put back in a new place (cp -a, rsync, tar: new files)
    cpSync(dir, copy, { recursive: true });
    expect(await epochOf(copy)).not.toBe(first);
    // the original runs on in its epoch
    expect(await epochOf(dir)).toBe(first);

    // damage: the file cut short is moved aside and said, not deleted unsaid
    truncateSync(join(dir, 'history.mdb'), 2_000);
    const warnings: string[] = [];
    expect(await epochOf(dir, warnings)).not.toBe(first);
    expect(warnings).toEqual([expect.stringMatching(/^history\.mdb in .* is damaged \(.*\): moved to .*history\.mdb\.damaged-.*; a new one starts empty/)]);
    expect(readdirSync(dir).filter((f) => f.startsWith('history.mdb.damaged-'))).toHaveLength(1);
    rmSync(dir, { recursive: true, force: true });
    rmSync(copy, { recursive: true, force: true });
  });
});
