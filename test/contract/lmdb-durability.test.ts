/**
 * What only a disk store promises: what was written is there after the store is closed and
 * opened again, and after the process is killed (kill -9) every acknowledged write is there.
 * Also the LMDB-only parts of the shadow store and nonce promises: the epoch fence (the contract
 * suite skips it for a batch window of 0), a cursor told only once durable, the nonce sweep.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../src/log/logger.js';
import { LmdbHubRegistry, LmdbNonceStore } from '../../src/ports/hub-registry/hub-registry-lmdb.js';
import { openDataStore, type DataStore } from '../../src/ports/lmdb.js';
import { LmdbShadowStore } from '../../src/ports/shadow-store/shadow-store-lmdb.js';
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import { loadConfig } from '../../src/config/config.js';
import { portsFor } from '../../src/compose/ports.js';
import { emptyDevice, type DeviceShadow } from '../../src/ports/shadow-store/shadow-store.js';
import { tempDataStore } from './fixtures/data-store.js';
import { shadowEntry, shadowKey } from './lmdb-fixture.js';
import { settledIn } from '../helpers/settled-in.js';

const log = createLogger('silent');
const WRITER = fileURLToPath(new URL('./fixtures/shadow-writer.ts', import.meta.url));
const reported = (attrs: DeviceShadow['reported'], v: number): DeviceShadow => ({ ...emptyDevice(), reported: attrs, reportedVersion: v, reportedAt: 1_000 + v });

let cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups = [];
});
async function temp(sync: 'commit' | 'os' = 'commit'): Promise<DataStore> {
  const tmp = await tempDataStore(sync);
  cleanups.push(tmp.remove);
  return tmp.data;
}
/** Reopens `data`'s directory after closing it; the reopened store is closed after the test. */
async function reopen(data: DataStore): Promise<DataStore> {
  await data.close();
  const again = openDataStore(data.dir, { sync: data.sync });
  cleanups.push(() => again.close());
  return again;
}

describe('LMDB stores survive close and reopen', () => {
  it('registry, nonces within their ttl, shadows with desired state, models and cursors', async () => {
    let data = await temp();
    const registry = new LmdbHubRegistry(data);
    await registry.create({ hubId: 'h1', homeId: 'home1', model: 'HG-2', secret: 's1', enabled: true, createdAt: 5 });
    await registry.create({ hubId: 'h2', homeId: 'home2', model: undefined, secret: 's2', enabled: true, createdAt: 6 });
    expect(await registry.setEnabled('h2', false)).toBe(true);
    const nonces = new LmdbNonceStore(data);
    expect(await nonces.claim('n-long', 60_000)).toBe(true);
    const shadows = new LmdbShadowStore(data, { log });
    shadows.writeReported('h1', 'lamp', reported({ on: true, level: 3 }, 4), 2);
    shadows.writeCursor('h1', { boot: 'b7', seq: 41 }, 2);
    await shadows.setDesired('h1', 'lamp', { level: 9 });
    await shadows.writeDevices('h1', [{ d: 'lamp', k: 'light', m: 'L-1' }], [], false);
    await Promise.all([shadows.close(), nonces.close(), registry.close()]);

    data = await reopen(data);
    const reg2 = new LmdbHubRegistry(data);
    expect(await reg2.get('h1')).toEqual({ hubId: 'h1', homeId: 'home1', model: 'HG-2', secret: 's1', enabled: true, createdAt: 5 });
    expect(await reg2.get('h2')).toEqual({ hubId: 'h2', homeId: 'home2', model: undefined, secret: 's2', enabled: false, createdAt: 6 });
    const nonces2 = new LmdbNonceStore(data);
    expect(await nonces2.claim('n-long', 60_000), 'a nonce claimed before the restart is still refused').toBe(false);
    expect(await nonces2.claim('n-new', 60_000)).toBe(true);
    const shadows2 = new LmdbShadowStore(data, { log });
    expect(await shadows2.loadCursor('h1')).toEqual({ boot: 'b7', seq: 41 });
    const lamp = (await shadows2.load('h1')).lamp;
    expect(lamp).toEqual({ kind: 'light', model: 'L-1', reported: { on: true, level: 3 }, reportedVersion: 4, reportedAt: 1_004, desired: { level: 9 }, desiredVersion: 1 });
    // the epoch survived too: a batch of an older session is still refused after the restart
    shadows2.writeReported('h1', 'lamp', reported({ on: false }, 5), 1);
    await shadows2.flush();
    expect((await shadows2.load('h1')).lamp!.reported).toEqual({ on: true, level: 3 });
    expect(shadows2.staleBatches).toBe(1);
    await Promise.all([shadows2.close(), nonces2.close(), reg2.close()]);
  });
});

describe('LmdbShadowStore', () => {
  it('refuses a batch of an older epoch than the last written for the hub, and never tells its listener', async () => {
    const store = new LmdbShadowStore(await temp('os'), { log });
    const heard: number[] = [];
    const listener = { cursorStored: (_h: string, seq: number) => heard.push(seq) };
    store.writeReported('h', 'd', reported({ v: 'new' }, 2), 5);
    store.writeCursor('h', { boot: 'b', seq: 7 }, 5, listener);
    await store.flush();
    store.writeReported('h', 'd', reported({ v: 'stale' }, 3), 3);
    store.writeCursor('h', { boot: 'b', seq: 8 }, 3, listener);
    await store.flush();
    expect(heard).toEqual([7]);
    expect(await store.loadCursor('h')).toEqual({ boot: 'b', seq: 7 });
    expect((await store.load('h')).d!.reported).toEqual({ v: 'new' });
    expect(store.staleBatches).toBe(1);
    // an unfenced write (epoch 0) and a newer session's write go through
    store.writeCursor('h', { boot: 'b', seq: 9 }, 6, listener);
    await store.flush();
    expect(heard).toEqual([7, 9]);
    // and the session before that one is now the stale one
    store.writeCursor('h', { boot: 'b', seq: 10 }, 5, listener);
    await store.flush();
    expect(heard).toEqual([7, 9]);
    expect(store.staleBatches).toBe(2);
    await store.close();
  });

  it('tells the largest epoch written for a hub (after a reopen too, raised by a removal), where a restarted directory goes on', async () => {
    let data = await temp('os');
    const store = new LmdbShadowStore(data, { log });
    expect(store.lastEpoch('h')).toBe(0);
    store.writeCursor('h', { boot: 'b', seq: 1 }, 4);
    await store.flush();
    expect(store.lastEpoch('h')).toBe(4);
    store.writeCursor('h', { boot: 'b', seq: 2 }, 2);
    await store.flush();
    expect(store.lastEpoch('h'), 'a stale session does not lower it').toBe(4);
    await store.close();

    data = await reopen(data);
    const again = new LmdbShadowStore(data, { log });
    expect(again.lastEpoch('h')).toBe(4);
    await again.remove('h');
    expect(again.lastEpoch('h'), 'a removal fences one above').toBe(5);
    expect(again.lastEpoch('other')).toBe(0);
    await again.close();
  });

  it('puts a batch of 16 hubs or more at once when no other write of its hubs is uncommitted, else in a transaction', async () => {
    const data = await temp('os');
    const store = new LmdbShadowStore(data, { log });
    const transactions = vi.spyOn(data.db('shadows'), 'transaction');
    const report = (hubs: string[], on: boolean, seq: number) => {
      for (const hub of hubs) {
        store.writeReported(hub, 'd', reported({ on }, seq), 1);
        store.writeCursor(hub, { boot: 'b', seq }, 1);
      }
    };
    const sixteen = Array.from({ length: 16 }, (_, i) => `h${i}`);
    report(sixteen, true, 1);
    await store.flush();
    expect(transactions, '16 hubs with nothing else uncommitted: no transaction callback').not.toHaveBeenCalled();
    report(['a'], true, 1);
    await store.flush();
    expect(transactions, 'a smaller batch').toHaveBeenCalledTimes(1);
    // a desired change is a transaction of its own; a batch after it with that hub waits for it
    const desired = store.setDesired('h0', 'd', { on: false });
    report(sixteen, false, 2);
    await desired;
    await store.flush();
    expect(transactions, 'the desired change, then the batch after it').toHaveBeenCalledTimes(3);
    const h0 = (await store.load('h0')).d!;
    expect([h0.reported, h0.desired]).toEqual([{ on: false }, { on: false }]);
    for (const hub of sixteen) expect(await store.loadCursor(hub)).toEqual({ boot: 'b', seq: 2 });
    transactions.mockRestore();
    await store.close();
  });

  it('without a window, writes made while a batch commits wait for it, then go as one batch', async () => {
    const data = await temp('os');
    const seen: number[] = [];
    const store = new LmdbShadowStore(data, { log, batches: { flushed: (hubs) => seen.push(hubs) } });
    // the first batch's commit is held until the test lets it go
    const db = data.db('shadows');
    const put = db.put as (key: unknown, value: unknown) => Promise<boolean>;
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const issued: unknown[] = [];
    db.put = ((key: unknown, value: unknown) => {
      issued.push(key);
      const written = put.call(db, key, value);
      return held.then(() => written);
    }) as typeof db.put;
    const turn = () => new Promise<void>((r) => setImmediate(r));
    // a batch large enough to go as puts
    const first = Array.from({ length: 16 }, (_, i) => `h${i}`);
    for (const hub of first) store.writeCursor(hub, { boot: 'b', seq: 1 }, 1);
    await turn();
    for (const hub of ['b', 'c']) {
      store.writeCursor(hub, { boot: 'b', seq: 1 }, 1);
      await turn();
    }
    // the hubs' entries ([HUB, hubId]; the next hub number's record, [HUB, ''], goes with each new hub)
    const entries = () => issued.filter((k): k is [false, string] => Array.isArray(k) && k[0] === false && k[1] !== '').map((k) => k[1]);
    expect(entries(), 'b and c wait while the first batch commits').toEqual(first);
    release();
    await store.flush();
    db.put = put as typeof db.put;
    expect(entries().slice(16), 'then in one transaction (two hubs)').toEqual(['b', 'c']);
    expect(seen).toEqual([16, 2]);
    await store.close();
  });

  it('fences a batch issued while a removal of its hub is uncommitted (the removal raises the epoch in its body)', async () => {
    const store = new LmdbShadowStore(await temp('os'), { log });
    store.writeReported('h', 'd', reported({ v: 'before' }, 1), 5);
    store.writeCursor('h', { boot: 'b', seq: 7 }, 5);
    await store.flush();
    // the hub is removed while its session, unaware, still writes: the removal's transaction has
    // not run when the session's batch is issued
    const gone = store.remove('h');
    store.writeReported('h', 'd', reported({ v: 'after' }, 2), 5);
    store.writeCursor('h', { boot: 'b', seq: 8 }, 5);
    // with other hubs' reports: a batch large enough to go as puts were it not for the removal
    for (let i = 0; i < 15; i++) store.writeCursor(`other-${i}`, { boot: 'b', seq: 1 }, 1);
    await gone;
    await store.flush();
    expect(await store.loadCursor('h')).toBeNull();
    expect(await store.load('h')).toEqual({});
    expect(store.staleBatches).toBe(1);
    await store.close();
  });

  it('fences a hub whose epoch it no longer remembers (more hubs written since than it keeps) by its entry', async () => {
    const store = new LmdbShadowStore(await temp('os'), { log });
    store.writeCursor('h', { boot: 'b', seq: 7 }, 5);
    await store.flush();
    for (let i = 0; i < 2_000; i++) store.writeCursor(`other-${i}`, { boot: 'b', seq: 1 }, 1);
    await store.flush();
    expect((store as unknown as { hubs: { size: number } }).hubs.size, 'epochs remembered: bounded').toBeLessThanOrEqual(1_024);
    store.writeCursor('h', { boot: 'b', seq: 8 }, 3);
    await store.flush();
    expect(await store.loadCursor('h')).toEqual({ boot: 'b', seq: 7 });
    expect(store.staleBatches).toBe(1);
    // and the others, remembered or not, still take their sessions' writes
    store.writeCursor('other-0', { boot: 'b', seq: 2 }, 1);
    store.writeCursor('other-1999', { boot: 'b', seq: 2 }, 2);
    await store.flush();
    expect(await store.loadCursor('other-0')).toEqual({ boot: 'b', seq: 2 });
    expect(await store.loadCursor('other-1999')).toEqual({ boot: 'b', seq: 2 });
    await store.close();
  });

  it('with DATA_SYNC=commit tells the listener only once the commit is flushed to disk', async () => {
    const data = await temp('commit');
    // an instrumented store: flushes are held until the test lets them go
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const instrumented: DataStore = {
      ...data,
      db: data.db.bind(data),
      flushed: () => held.then(() => data.flushed()),
      written: async (write) => {
        const result = await data.written(write);
        await held;
        return result;
      },
      close: () => data.close(),
    };
    const store = new LmdbShadowStore(instrumented, { log });
    const raw = data.db<unknown>('shadows');
    const heard: Array<[number, unknown]> = [];
    store.writeReported('h', 'lamp', reported({ on: true }, 1), 1);
    // what a reader of the disk finds at the moment the listener fires
    store.writeCursor('h', { boot: 'b', seq: 3 }, 1, { cursorStored: (_h, seq) => heard.push([seq, raw.get(shadowKey(data, 'h', 'lamp'))]) });
    // a transaction queued after the store's batch (issued at the end of the task: a microtask)
    await null;
    await raw.transaction(() => undefined);
    expect(shadowEntry(data, 'h'), 'committed').toBeDefined();
    // the store's reaction to the commit is microtasks only: all run before the next turn
    await new Promise<void>((r) => setImmediate(r));
    expect(heard, 'committed but not flushed: not told yet').toEqual([]);
    release();
    await store.flush();
    expect(heard).toHaveLength(1);
    expect(heard[0]![0]).toBe(3);
    expect(heard[0]![1], 'the report queued before the cursor was readable when the listener fired').toBeDefined();
    await store.close();
  });

  it('with a batch window, reports of several turns share one commit; without one, each turn commits', async () => {
    for (const [window, sizes] of [[60_000, [3]], [0, [1, 1, 1]]] as const) {
      const data = await temp('commit');
      const seen: number[] = [];
      const store = new LmdbShadowStore(data, { log, batchWindowMs: window, batches: { flushed: (hubs) => seen.push(hubs) } });
      for (const hub of ['a', 'b', 'c']) {
        store.writeReported(hub, 'd', reported({ on: true }, 1), 1);
        store.writeCursor(hub, { boot: 'b', seq: 1 }, 1);
        // whatever was queued (the batch is issued at the end of the task) is committed before the next hub reports
        await null;
        await data.flushed();
      }
      await store.flush();
      expect(seen, `window ${window} ms`).toEqual(sizes);
      for (const hub of ['a', 'b', 'c']) expect(await store.loadCursor(hub)).toEqual({ boot: 'b', seq: 1 });
      await store.close();
    }
  });

  it('the embedded default takes its batch window from TIER_DISK_BATCH_MS (0 when unset)', async () => {
    for (const [env, window] of [[{ TIER_DISK_BATCH_MS: '100' }, 100], [{}, 0]] as const) {
      const data = await temp('commit');
      const dir = data.dir;
      await data.close();
      const timers = new TimerWheel();
      const ports = await portsFor(loadConfig({ DATA_DIR: dir, ...env }).config, timers, log);
      expect(ports.shadows.batchWindowMs).toBe(window);
      await ports.close!();
      timers.close();
    }
  });

  it('with a batch window, a transaction, a load and close come after the writes queued before them', async () => {
    const data = await temp('commit');
    const store = new LmdbShadowStore(data, { log, batchWindowMs: 60_000 });
    store.writeReported('h', 'd', reported({ on: true }, 1), 1);
    await store.setDesired('h', 'd', { on: false });
    const shadow = await store.load('h');
    expect(shadow.d!.reported).toEqual({ on: true });
    expect(shadow.d!.desired).toEqual({ on: false });
    store.writeReported('h', 'd', reported({ on: false }, 2), 1);
    store.writeCursor('h', { boot: 'b', seq: 2 }, 1);
    await store.close();
    const again = new LmdbShadowStore(await reopen(data), { log });
    expect((await again.load('h')).d!.reported).toEqual({ on: false });
    expect(await again.loadCursor('h')).toEqual({ boot: 'b', seq: 2 });
    await again.close();
  });

  it('keeps no hub in its pending writes once they are durable, with or without a window', async () => {
    for (const window of [0, 5]) {
      const store = new LmdbShadowStore(await temp('commit'), { log, batchWindowMs: window });
      for (let round = 1; round <= 3; round++) {
        for (let h = 0; h < 200; h++) {
          store.writeReported(`h${h}`, 'd', reported({ round }, round), 1);
          store.writeCursor(`h${h}`, { boot: 'b', seq: round }, 1);
          // transactions of their own among the batches, as a desired change or a device list makes
          if (h % 50 === 0) void store.setDesired(`h${h}`, 'd', { on: round % 2 === 0 });
        }
        // nothing can have committed within this turn: every hub written to is pending
        expect(store.pendingHubs, `window ${window} ms, round ${round}: writes in flight`).toBe(200);
        await new Promise((r) => setImmediate(r));
      }
      await store.flush();
      expect(store.pendingHubs, `window ${window} ms`).toBe(0);
      await store.close();
    }
  });

  it('with a batch window, a read of a hub with writes in the open batch queues it instead of waiting out the window', async () => {
    const data = await temp('commit');
    const seen: number[] = [];
    // a window far longer than the test: only the reads can have started these commits
    const store = new LmdbShadowStore(data, { log, batchWindowMs: 60_000, batches: { flushed: (hubs) => seen.push(hubs) } });
    store.writeReported('h', 'd', reported({ on: true }, 1), 1);
    store.writeCursor('h', { boot: 'b', seq: 1 }, 1);
    expect((await store.load('h')).d!.reported).toEqual({ on: true });
    store.writeCursor('h', { boot: 'b', seq: 2 }, 1);
    expect(await store.loadCursor('h')).toEqual({ boot: 'b', seq: 2 });
    store.writeReported('h', 'd', reported({ on: false }, 2), 1);
    expect((await store.loadSession('h')).shadow.d!.reported).toEqual({ on: false });
    expect(seen).toEqual([1, 1, 1]);
    await store.close();
  });

  it('load waits for the commit of queued writes instead of missing them', async () => {
    const store = new LmdbShadowStore(await temp('os'), { log });
    for (let i = 0; i < 50; i++) store.writeReported('h', `d${i}`, reported({ i }, 1));
    const shadow = await store.load('h');
    expect(Object.keys(shadow)).toHaveLength(50);
    await store.close();
  });
});

describe('LmdbNonceStore sweep', () => {
  it('removes expired nonces, at most sweepBatch per sweep, and keeps live ones', async () => {
    const data = await temp('os');
    let now = 1_000_000;
    // time passes on both clocks (a claim is forgotten once both passed its expiry)
    const nonces = new LmdbNonceStore(data, { now: () => now, monotonic: () => now, sweepBatch: 10, sweepMs: 3_600_000 });
    for (let i = 0; i < 25; i++) expect(await nonces.claim(`old-${i}`, 1_000)).toBe(true);
    expect(await nonces.claim('live', 60_000)).toBe(true);
    await nonces.written();
    const raw = data.db('nonces');
    expect(raw.getKeysCount()).toBe(52);
    now += 1_001;
    expect(await nonces.sweep()).toBe(10);
    expect(await nonces.sweep()).toBe(10);
    expect(await nonces.sweep()).toBe(5);
    expect(await nonces.sweep()).toBe(0);
    expect([...raw.getKeys()]).toEqual([[1_000_000 + 60_000, 'live'], 'live']);
    expect(await nonces.claim('live', 60_000)).toBe(false);
    expect(await nonces.claim('old-3', 1_000)).toBe(true);
    await nonces.close();
  });
});

describe('LmdbNonceStore after a restart', () => {
  it('keeps a claim of the last process until its wall clock expiry (its monotonic one meant nothing since)', async () => {
    let data = await temp();
    let now = 1_000_000;
    const first = new LmdbNonceStore(data, { now: () => now, monotonic: () => 50_000, sweepMs: 3_600_000 });
    expect(await first.claim('n-1', 1_000)).toBe(true);
    await first.close();
    data = await reopen(data);
    // the new process's monotonic clock starts low again: the wall clock alone decides
    const again = new LmdbNonceStore(data, { now: () => now, monotonic: () => 0, sweepMs: 3_600_000 });
    expect(await again.claim('n-1', 1_000), 'inside its window').toBe(false);
    now += 1_000;
    expect(await again.sweep()).toBe(1);
    expect(await again.claim('n-1', 1_000), 'past its window on the wall clock').toBe(true);
    await again.close();
  });
});

describe('LmdbNonceStore claims', () => {
  it('decide in the caller’s turn: a repeat is refused before the first is committed, and close() waits for the write', async () => {
    let data = await temp();
    const nonces = new LmdbNonceStore(data);
    const first = nonces.claim('n-1', 60_000);
    expect(await settledIn(first)).toBe('this turn');
    expect(await first).toBe(true);
    expect(nonces.unwrittenClaims).toBe(1);
    expect(await nonces.claim('n-1', 60_000), 'a repeat before the commit').toBe(false);
    expect(data.db('nonces').get('n-1'), 'not committed yet').toBeUndefined();
    await nonces.close();
    expect(nonces.unwrittenClaims).toBe(0);
    data = await reopen(data);
    const again = new LmdbNonceStore(data);
    expect(await again.claim('n-1', 60_000), 'committed by close()').toBe(false);
    await again.close();
  });
});

describe('LmdbNonceStore writes', () => {
  /** Counts the write transactions `nonces` opens. */
  function countTransactions(nonces: LmdbNonceStore): { count: number } {
    const db = (nonces as unknown as { db: { transaction: (fn: () => void) => Promise<unknown> } }).db;
    const transaction = db.transaction.bind(db);
    const seen = { count: 0 };
    db.transaction = (fn) => {
      seen.count++;
      return transaction(fn);
    };
    return seen;
  }

  it('the claims of a window share one transaction, in the order made', async () => {
    let data = await temp();
    const nonces = new LmdbNonceStore(data, { writeMs: 3_600_000 });
    const seen = countTransactions(nonces);
    for (let i = 0; i < 20; i++) {
      expect(await nonces.claim(`w-${i}`, 60_000)).toBe(true);
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(await nonces.claim('w-3', 60_000), 'a repeat while it waits').toBe(false);
    expect(seen.count, 'nothing written before the window ends').toBe(0);
    await nonces.written();
    expect(seen.count).toBe(1);
    expect(nonces.unwrittenClaims).toBe(0);
    // each nonce and its index entry
    expect(data.db('nonces').getKeysCount()).toBe(40);
    await nonces.close();
    data = await reopen(data);
    const again = new LmdbNonceStore(data);
    expect(await again.claim('w-19', 60_000), 'committed').toBe(false);
    await again.close();
  });

  it('writes a window’s claims when it ends, without being asked', async () => {
    const data = await temp();
    const nonces = new LmdbNonceStore(data, { writeMs: 20 });
    const seen = countTransactions(nonces);
    expect(await nonces.claim('late-1', 60_000)).toBe(true);
    expect(await nonces.claim('late-2', 60_000)).toBe(true);
    for (let waited = 0; nonces.unwrittenClaims > 0 && waited < 5_000; waited += 10) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(nonces.unwrittenClaims).toBe(0);
    expect(seen.count).toBe(1);
    expect(data.db('nonces').get('late-2')).toBeTypeOf('number');
    await nonces.close();
  });
});

/** Makes every write transaction of `nonces` fail as a full disk would; returns the undo. */
function failWrites(nonces: LmdbNonceStore): () => void {
  const db = (nonces as unknown as { db: { transaction: (fn: () => void) => Promise<unknown> } }).db;
  const transaction = db.transaction;
  db.transaction = () => Promise.reject(new Error('MDB_MAP_FULL: the disk is full'));
  return () => {
    db.transaction = transaction;
  };
}

describe('LmdbNonceStore when writes fail', () => {
  it('keeps an answered claim in memory, then makes claims wait for their write until one succeeds', async () => {
    const nonces = new LmdbNonceStore(await temp());
    const restore = failWrites(nonces);
    expect(await nonces.claim('answered', 60_000), 'decided before the write fails').toBe(true);
    await nonces.written();
    expect(await nonces.claim('answered', 60_000), 'still held in memory').toBe(false);
    for (let i = 0; i < 5; i++) await expect(nonces.claim(`waits-${i}`, 60_000)).rejects.toThrow(/MDB_MAP_FULL/);
    expect(nonces.unwrittenClaims, 'refused claims are not kept').toBe(1);
    // so the hub gateway answers upgrades after them (it cannot from a later turn)
    expect(nonces.inTurn, 'says it answers a turn later').toBe(false);
    restore();
    const recovered = nonces.claim('recovered', 60_000);
    expect(await settledIn(recovered), 'waits for its write').toBe('a later turn');
    expect(await recovered).toBe(true);
    expect(nonces.inTurn).toBe(true);
    expect(await settledIn(nonces.claim('at-once', 60_000)), 'decided at once again').toBe('this turn');
    await nonces.close();
  });

  it('forgets a claim held only in memory once it expires (the sweep), and the key is free again', async () => {
    let now = 1_000_000;
    const nonces = new LmdbNonceStore(await temp(), { now: () => now, monotonic: () => now, sweepMs: 3_600_000 });
    const restore = failWrites(nonces);
    expect(await nonces.claim('kept', 1_000)).toBe(true);
    await nonces.written();
    restore();
    expect(nonces.unwrittenClaims).toBe(1);
    now += 1_001;
    await nonces.sweep();
    expect(nonces.unwrittenClaims).toBe(0);
    expect(await nonces.claim('kept', 1_000), 'free again (the write succeeds: decided once it commits)').toBe(true);
    await nonces.close();
  });
});

describe('kill -9', () => {
  for (const sync of ['commit', 'os'] as const) {
    it(`DATA_SYNC=${sync}: every report whose cursor was acknowledged is there after the writer is killed`, async () => {
      // the directory belongs to the child while it runs: created here, closed, handed over
      const tmp = await tempDataStore(sync);
      cleanups.push(tmp.remove);
      const dir = tmp.data.dir;
      await tmp.data.close();
      const child = spawn(process.execPath, ['--import', 'tsx', WRITER, dir, sync], { stdio: ['ignore', 'pipe', 'inherit'] });
      const acked: number[] = [];
      const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
      for await (const line of createInterface({ input: child.stdout })) {
        acked.push(Number(line));
        if (acked.length === 300) child.kill('SIGKILL');
      }
      expect(await exited).toBe('SIGKILL');
      // the child's lock is stale (its process is gone): taken over
      const again = openDataStore(dir, { sync });
      cleanups.push(() => again.close());
      const store = new LmdbShadowStore(again, { log });
      const shadow = await store.load('hub-k9');
      const cursor = await store.loadCursor('hub-k9');
      expect(acked.length).toBeGreaterThanOrEqual(300);
      expect(cursor!.seq).toBeGreaterThanOrEqual(Math.max(...acked));
      for (const seq of acked) expect(shadow[`d${seq % 8}`]!.reported.seq as number, `seq ${seq}`).toBeGreaterThanOrEqual(seq);
      await store.close();
    });
  }
});
