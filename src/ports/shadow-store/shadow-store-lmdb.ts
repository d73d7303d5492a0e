/*
 * Over 400 lines: one adapter whose batching (a turn, a commit under way or a window; written as
 * puts or in a transaction), epoch fence and durability tracking share the batch state; split,
 * each part would reach into the others. A hub's entry in a batch and the uncommitted counts are
 * in shadow-store-lmdb-batch.ts, the records' layout in shadow-store-lmdb-layout.ts, the hubs'
 * entries and numbers in shadow-store-lmdb-hubs.ts.
 */
import type { BatchObserver } from '../ports.js';
import { WriteStall } from '../write-stall.js';
import type { Database } from 'lmdb';
import type { Attrs } from '../../../proto/frames.js';
import type { Logger } from '../../log/logger.js';
import type { DataStore } from '../lmdb.js';
import { TierError } from '../../errors.js';
import { checkDesiredIn, emptyDevice, NO_DESIRED, type DesiredView, mergeAttrs, newShadow, notifyStored, staleInBatch, type CursorListener, type DesiredLimits, type DeviceRead, type DeviceShadow, type HubShadow, type SeqCursor, type SessionStart, type ShadowStore } from './shadow-store.js';
import {
  desiredRecord,
  EXTRA,
  hubKey,
  hubKindsRecord,
  kindsKey,
  listsExactly,
  ownOf,
  readHubKinds,
  storesExactly,
  type DeviceRecords,
  toDevice,
  storedDesiredBytes,
  withDesired,
  withKind,
  type FlatAttrs,
  type HubKinds,
  type KindModel,
  type Key,
  type LegacyDevice,
  type NumberedDevice,
  type Stored,
  type StoredDesired,
  type StoredDevice,
  type StoredHub,
  cursorOfEntry,
  hubEntry,
} from './shadow-store-lmdb-layout.js';
import { HubEntries } from './shadow-store-lmdb-hubs.js';
import { migrateShadowRecords } from './shadow-store-lmdb-migrate.js';
import { NAMES_DB, StoredNames } from './shadow-store-lmdb-names.js';

import { QueuedHub, UncommittedHubs, type QueuedDevice } from './shadow-store-lmdb-batch.js';

export { decodeShadowRecords, namesOf, type ShadowRecord } from './shadow-store-lmdb-layout.js';
export { NAMES_DB } from './shadow-store-lmdb-names.js';

/** The range of hub number `n`'s records: after `[n]`, before `[n + 1]`. */
function hubRange(n: number): { start: Key; end: Key } {
  return { start: [n] as unknown as Key, end: [n + 1] as unknown as Key };
}

export interface LmdbShadowStoreOptions {
  log: Logger;
  /** told of each batch once durable (hubs in it, from its first write) */
  batches?: BatchObserver;
  /** @default 0 (ms): a batch waits this long after its first write for its transaction (group commit) */
  batchWindowMs?: number;
}

/** Session shadows remembered at most (see `opened`): a bound on hubs that never send a list. */
const MAX_OPENED = 4_096;
/**
 * Hubs in a batch from which it goes as plain puts: a smaller one goes in a transaction callback,
 * which cost less CPU than lmdb-js's asynchronous puts where a commit carries a report or two
 * (BENCHMARKS, 2026-12-02: 1,000 reports/s).
 */
const PUTS_FROM_HUBS = 16;

/**
 * Shadows on local disk (embedded default): sub-database `shadows`. A hub's entry (epoch, cursor
 * and the hub's number) is under `[HUB, hubId]`, its devices' kinds and models (HubKinds) in one
 * record under `[HUB, hubId, '']`, absent while none has any; per device its reported side is under
 * `[n, deviceId]` and, once it has a desired side, that under `[n, deviceId, 'x']`, n the hub's
 * number, given at its first device record. Entries and kinds sort before every number and numbers
 * grow in the order hubs first report, so a hub's first report batch appends its device records
 * at the end of the file, in key order, in pages left full rather than split in half among the
 * others' (see HUB); a device listed and never reported is its kinds entry alone (a record written
 * small and grown by the first report would split a full page). The sides are apart so that the hot
 * path (whose writes carry no kind) writes a report without reading anything first, and a desired
 * change writes its device's record alone; `load` reads the entry, the kinds and one range. A
 * record names its attribute key list, and the kinds record kinds and models, by a number the store
 * gives (StoredNames, sub-database `shadow-names`) and keeps the values alone: 10 records a hub of
 * 8 devices and 0.8 KB of the file, 17 and 1.7 KB before (BENCHMARKS, 2026-12-03 eighth and ninth).
 * A store written in an earlier layout is rewritten once, when it is opened (shadow-store-lmdb-migrate.ts).
 *
 * - `writeReported`/`writeCursor` return at once; the writes of one task (a turn's hub frames are
 *   handled in one), or made while the last batch commits, are one batch, issued at the task's end
 *   or that commit's as plain puts when it has PUTS_FROM_HUBS hubs and no other write of them is
 *   uncommitted (lmdb-js's write thread does the B-tree work), else as a transaction callback
 *   (after those writes), taking writes until it runs.
 *   A batch window (`batchWindowMs`, default 0) issues the batch that long after its first write:
 *   seldom reports of many hubs share a commit.
 *   The latest write per device and cursor per hub wins. A crash loses what was not committed, never what was acknowledged.
 * - Fenced: the hub entry holds the largest epoch written; a hub's batch of an older epoch is
 *   dropped whole (counted in `staleBatches`) and its cursor listener is not told, as is a write
 *   queued after a newer session's in the same batch (a takeover within it). The epoch and number
 *   of hubs written lately are remembered (HubEntries), so a batch reads no entry for either.
 * - `stored.cursorStored` is told once the transaction with the cursor, and every write of the hub
 *   before it, is committed and, with DATA_SYNC=commit, flushed to disk.
 * - `setDesired`/`writeDevices` are each one transaction in call order with the batches, resolving
 *   once durable; a full device list the store already holds (read after the hub's queued writes
 *   are durable) is answered without one. `load`/`loadCursor`/`loadSession` first wait until this
 *   hub's queued writes are durable (cheaper than overlaying them: nothing kept after the commit, a
 *   load of a hub with no write under way waits for nothing; a batch of the hub's still in its
 *   window is queued at once, not waited for), `loadSession` reading the cursor too.
 * - No shadow is kept here but a session's opened one until its hub's first device list (at most
 *   MAX_OPENED of them, see `opened`); the heap holds the queued batch (one turn's, or one window's).
 * - A failed commit (disk full, I/O error) is logged; its cursor listeners are never told.
 */
export class LmdbShadowStore implements ShadowStore {
  readonly batchWindowMs: number;
  /** Batches refused because a newer session of their hub had written. */
  staleBatches = 0;
  private readonly db: Database<Stored, Key>;
  /** attribute key lists, kinds and models numbered store-wide (sub-database `shadow-names`) */
  private readonly names: StoredNames;
  private readonly log: Logger;
  private readonly batches: BatchObserver | undefined;
  /** the oldest transaction not yet durable, said when the disk holds it long */
  private readonly stall: WriteStall;
  private readonly stallCheck: NodeJS.Timeout;
  /** the batch still taking writes; `start` queues its transaction (at once, or at the window's end) */
  private open: { hubs: Map<string, QueuedHub>; settled: Promise<void>; start: (() => void) | null } | null = null;
  private windowTimer: NodeJS.Timeout | null = null;
  /** per hub with writes not yet durable: the transaction of its latest write */
  private readonly pending = new Map<string, Promise<unknown>>();
  /**
   * The shadow each hub session opened with (`loadSession`), until the hub's first device list,
   * which it sends right after its welcome: a reconnecting hub's unchanged list is then checked
   * against it instead of a second scan of the same records. Dropped by any write that may change
   * the hub's set of devices or their kinds (this process is the store's only writer).
   */
  private readonly opened = new Map<string, HubShadow>();
  /** hubs' kinds records as `loadDevices` read them last, with their bytes: decoded again only when those changed */
  private readonly kindsRead = new Map<string, { bytes: Buffer; kinds: Map<string, KindModel> }>();
  /** the hubs' entries: epoch and number of those written lately, numbers given */
  private readonly hubs: HubEntries;
  /** batches issued as puts and not yet committed (without a window, the next one waits for them) */
  private flying = 0;
  /** hubs with writes not yet committed: a batch that is the only one of its hubs goes as plain puts */
  private readonly uncommitted = new UncommittedHubs();
  /** the latest transaction issued, durable included (never rejects) */
  private last: Promise<void> = Promise.resolve();
  #healthy = true;
  private closed = false;
  private warnedClosed = false;

  /** Does not own `data`: the composition root closes it after every adapter. */
  constructor(
    private readonly data: DataStore,
    options: LmdbShadowStoreOptions,
  ) {
    this.db = data.db<Stored>('shadows') as unknown as Database<Stored, Key>;
    this.log = options.log;
    this.names = new StoredNames(data.db<string[]>(NAMES_DB) as unknown as Database<string[], number>, options.log);
    this.batches = options.batches;
    this.stall = new WriteStall(options.log, 'shadows');
    this.batches?.waiting?.(() => this.stall.oldestMs());
    this.stallCheck = setInterval(() => this.stall.check(), 1_000).unref();
    this.batchWindowMs = options.batchWindowMs ?? 0;
    if (!(this.batchWindowMs >= 0 && this.batchWindowMs < Infinity)) throw new RangeError(`batchWindowMs must be ≥ 0, got ${this.batchWindowMs}`);
    migrateShadowRecords(data, this.db, this.names, this.log);
    this.hubs = new HubEntries(this.db);
  }

  writeReported(hubId: string, deviceId: string, device: DeviceShadow, epoch = 0): void {
    // a device not in the opened shadow, or a kind, changes what a list is checked against
    if (this.opened.size !== 0 && (device.kind !== undefined || this.opened.get(hubId)?.[deviceId] === undefined)) this.opened.delete(hubId);
    const hub = this.queue(hubId, epoch);
    if (!hub) return;
    const a: FlatAttrs = [];
    hub.setDevice(deviceId, this.names.numberAttrs(device.reported, a), a, device.reportedVersion, device.reportedAt, device.kind);
  }

  writeCursor(hubId: string, cursor: SeqCursor, epoch = 0, stored?: CursorListener): void {
    const hub = this.queue(hubId, epoch);
    if (!hub) return;
    hub.boot = cursor.boot;
    hub.seq = cursor.seq;
    hub.tag = cursor.tag;
    hub.stored = stored;
  }

  async loadCursor(hubId: string): Promise<SeqCursor | null> {
    await this.durableWrites(hubId);
    return cursorOfEntry(this.hubs.read(hubId));
  }

  async load(hubId: string, read?: Pick<DeviceRead, 'spent'>): Promise<HubShadow> {
    await this.durableWrites(hubId);
    const started = performance.now();
    const shadow = this.scan(hubId).shadow;
    if (read?.spent) read.spent.ms += performance.now() - started;
    return shadow;
  }

  async loadDevices(hubId: string, deviceIds: readonly string[], read?: DeviceRead): Promise<HubShadow> {
    await this.durableWrites(hubId);
    const started = performance.now();
    const out = newShadow();
    const h = this.hubs.read(hubId);
    const kinds = this.kindsCached(hubId);
    for (const id of new Set(deviceIds)) {
      // as `scan`: a device is its own record (its desired one with it), or its kinds entry alone
      const own = h === undefined || h[3] < 0 ? undefined : (this.db.get([h[3], id]) as StoredDevice | NumberedDevice | LegacyDevice | undefined);
      const km = kinds.get(id);
      if (own === undefined && km === undefined) continue;
      const device = own === undefined ? emptyDevice() : toDevice(ownOf(own, this.names), undefined);
      const desired = own === undefined || read?.reportedOnly === true ? undefined : (this.db.get([h![3], id, EXTRA]) as StoredDesired | undefined);
      if (desired) withDesired(device, desired);
      if (km) withKind(device, km);
      out[id] = device;
    }
    if (read?.spent) read.spent.ms += performance.now() - started;
    return out;
  }

  async loadSession(hubId: string, epoch = 0): Promise<SessionStart> {
    // before the wait: an older session's write queued from now on, or in a batch not yet written, is refused
    if (epoch > 0) this.hubs.open(hubId, epoch);
    await this.durableWrites(hubId);
    const read = this.scan(hubId);
    // remembered only when it is what the store holds: no write of the hub under way, every
    // record of it seen in the shadow
    if (read.whole && !this.pending.has(hubId)) {
      if (this.opened.size >= MAX_OPENED) this.opened.delete(this.opened.keys().next().value!);
      this.opened.set(hubId, read.shadow);
    }
    return { shadow: read.shadow, cursor: read.cursor };
  }

  /**
   * The hub's entry (the cursor and its number), then its records in one range. `whole`: every
   * record is in the shadow (an extra record without its device's own one is not).
   */
  private scan(hubId: string): SessionStart & { whole: boolean } {
    const shadow = newShadow();
    let whole = true;
    const h = this.hubs.read(hubId);
    const cursor = cursorOfEntry(h);
    // a hub listed and never reported has its kinds record alone: no entry, no number
    const kinds = this.db.get(kindsKey(hubId)) as HubKinds | undefined;
    for (const { key, value } of h === undefined || h[3] < 0 ? [] : this.db.getRange(hubRange(h[3]))) {
      // a device's own record sorts before its desired one
      if (key.length === 2) shadow[key[1]] = toDevice(ownOf(value as StoredDevice | NumberedDevice | LegacyDevice, this.names), undefined);
      else {
        const device = shadow[key[1]];
        if (device) withDesired(device, value as StoredDesired);
        else whole = false;
      }
    }
    if (kinds) {
      // a device listed and never reported: its kinds entry alone
      for (const [id, km] of readHubKinds(kinds, this.names)) withKind((shadow[id] ??= emptyDevice()), km);
    }
    return { shadow, cursor, whole };
  }

  async setDesired(hubId: string, deviceId: string, patch: Attrs, limits?: DesiredLimits): Promise<DeviceShadow> {
    this.opened.delete(hubId); // it may add the device
    const done = await this.run(hubId, (): DeviceShadow | TierError => {
      // checked in the write transaction: no other write of the store comes between check and write.
      // A refusal is returned, not thrown: a throw would fail the transaction as a write error
      const refusal = limits === undefined ? null : checkDesiredIn(this.desiredView(hubId), hubId, deviceId, patch, limits);
      if (refusal) return refusal;
      const n = this.hubs.numberFor(hubId);
      const stored = this.db.get([n, deviceId]) as StoredDevice | NumberedDevice | undefined;
      const device = stored ? toDevice(ownOf(stored, this.names), undefined) : emptyDevice();
      const km = this.kindsOf(hubId).get(deviceId);
      if (km) withKind(device, km);
      const desiredStored = this.db.get([n, deviceId, EXTRA]) as StoredDesired | undefined;
      if (desiredStored) withDesired(device, desiredStored);
      // a first patch creates the device even when it changes nothing, as the other stores do
      if (!stored) void this.db.put([n, deviceId], [[], 0, 0]);
      const desired = { ...device.desired };
      if (!mergeAttrs(desired, patch)) return device;
      device.desired = desired;
      device.desiredVersion++;
      void this.db.put([n, deviceId, EXTRA], desiredRecord(device)!);
      return device;
    });
    if (done instanceof TierError) throw done;
    return done;
  }

  async writeDevices(hubId: string, devices: Array<{ d: string; k: string; m?: string }>, left: string[], full: boolean, epoch = 0): Promise<boolean> {
    // a reconnecting hub's full list, as stored: no transaction (which would also end the open
    // batch), read once the hub's queued writes are durable, as `load` reads
    await this.durableWrites(hubId);
    if (this.fencedOut(hubId, epoch)) throw new TierError('session_taken_over');
    const opened = this.opened.get(hubId);
    if (opened) this.opened.delete(hubId);
    if (full && left.length === 0 && (opened ? listsExactly(opened, devices) : storesExactly(this.devicesOf(hubId), devices))) return false;
    const done = await this.run(hubId, (): boolean | TierError => {
      // checked again in the transaction: a newer session may have opened or written since
      if (this.fencedOut(hubId, epoch)) return new TierError('session_taken_over');
      let changed = false;
      const n = this.hubs.numberOf(hubId);
      // read again in the transaction: a setDesired or remove may have committed since the check.
      // A full list reads the hub's records in one scan; a partial one (a device joining a hub
      // that may have hundreds) reads its devices' own records alone
      const kinds = this.kindsOf(hubId);
      const stored = full ? this.devicesOf(hubId, kinds) : null;
      let kindsChanged = false;
      const removeDevice = (id: string, records: DeviceRecords): void => {
        // its desired record too, if any
        if (n !== undefined) {
          if (records.own) void this.db.remove([n, id]);
          void this.db.remove([n, id, EXTRA]);
        }
        if (kinds.delete(id)) kindsChanged = true;
        changed = true;
      };
      if (stored) {
        const keep = new Set(devices.map((d) => d.d));
        for (const [id, records] of stored) if (!keep.has(id)) removeDevice(id, records);
      }
      for (const id of left) {
        const records = stored ? stored.get(id) : { own: n !== undefined && this.db.doesExist([n, id]), kind: kinds.get(id) };
        if (records && (records.own || records.kind !== undefined)) removeDevice(id, records);
        stored?.delete(id);
      }
      // a device listed is its kinds entry until its first report writes its own record, at its
      // final size (a record that grows splits a full page in half)
      for (const d of devices) {
        const km = kinds.get(d.d);
        const model = d.m ?? km?.[1] ?? null;
        // unchanged (a reconnecting hub's full list): nothing to write
        if (km !== undefined && km[0] === d.k && km[1] === model) continue;
        kinds.set(d.d, [d.k, model]);
        kindsChanged = changed = true;
      }
      if (kindsChanged) this.putKindsRecord(hubId, kinds);
      return changed;
    });
    if (done instanceof TierError) throw done;
    return done;
  }

  /** A write of `epoch` is older than the hub's fence: stored, opened, or queued by a newer session. */
  private fencedOut(hubId: string, epoch: number): boolean {
    if (epoch === 0) return false;
    return Math.max(this.hubs.epochOf(hubId), this.hubs.openedEpoch(hubId), this.open?.hubs.get(hubId)?.epoch ?? 0) > epoch;
  }

  /**
   * The hub's devices: per device id, whether its own record is stored (one scan of its numbered
   * records), and its kind and model (`kinds`, read when not given).
   */
  /**
   * What a desired write's limits read of the hub, as `scan` would find it, each part when asked:
   * the device's own desired record, the hub's keys to count its devices, and the others' desired
   * records counted as stored. Decoded whole, a hub at its limits cost each desired write 4.9 ms of
   * the main thread against 1.6 for a small one (review "complexity").
   */
  private desiredView(hubId: string): DesiredView {
    const n = this.hubs.numberOf(hubId);
    const kinds = this.kindsCached(hubId);
    const owns = (id: string) => n !== undefined && this.db.doesExist([n, id]);
    return {
      devices: () => {
        let count = 0;
        if (n !== undefined) for (const key of this.db.getKeys(hubRange(n))) if (key.length === 2 && !kinds.has(key[1])) count++;
        return count + kinds.size;
      },
      desiredOf: (id) => {
        if (!owns(id)) return kinds.has(id) ? NO_DESIRED : undefined;
        const stored = this.db.get([n!, id, EXTRA]) as StoredDesired | undefined;
        return stored === undefined ? NO_DESIRED : withDesired(emptyDevice(), stored).desired;
      },
      othersBytes: (id) => {
        let bytes = 0;
        // a desired record counts with its device's own record alone (as `scan` reads them): it sorts just after it
        let own: string | undefined;
        if (n !== undefined) {
          for (const key of this.db.getKeys(hubRange(n))) {
            if (key.length === 2) own = key[1];
            else if (key[1] === own && own !== id) bytes += storedDesiredBytes(own, this.db.get(key) as StoredDesired);
          }
        }
        return bytes;
      },
    };
  }

  private devicesOf(hubId: string, kinds = this.kindsOf(hubId)): Map<string, DeviceRecords> {
    const out = new Map<string, DeviceRecords>();
    const n = this.hubs.numberOf(hubId);
    if (n !== undefined) for (const key of this.db.getKeys(hubRange(n))) if (key.length === 2) out.set(key[1], { own: true, kind: undefined });
    for (const [id, km] of kinds) {
      const records = out.get(id);
      if (records) records.kind = km;
      else out.set(id, { own: false, kind: km });
    }
    return out;
  }

  /**
   * The hub's kinds as `kindsOf` reads them, kept for the last MAX_OPENED hubs with the record's
   * bytes: a rule's read of a hub of 512 listed devices decoded them all, about 100 µs (review
   * diff7); comparing the bytes costs a copy and a memcmp, and no write path needs to say it changed.
   */
  private kindsCached(hubId: string): Map<string, KindModel> {
    const bytes = this.db.getBinary(kindsKey(hubId));
    if (bytes === undefined) return new Map();
    const hit = this.kindsRead.get(hubId);
    if (hit !== undefined && hit.bytes.equals(bytes)) return hit.kinds;
    const kinds = this.kindsOf(hubId);
    if (this.kindsRead.size >= MAX_OPENED) this.kindsRead.delete(this.kindsRead.keys().next().value!);
    this.kindsRead.set(hubId, { bytes, kinds });
    return kinds;
  }

  /** Every device's kind and model of the hub, by device id: its kinds record read. */
  private kindsOf(hubId: string): Map<string, KindModel> {
    const stored = this.db.get(kindsKey(hubId)) as HubKinds | undefined;
    return stored ? readHubKinds(stored, this.names) : new Map();
  }

  /** Writes the hub's kinds record (or removes it when no device has a kind or model). */
  private putKindsRecord(hubId: string, kinds: Map<string, KindModel>): Promise<unknown> {
    const record = hubKindsRecord(kinds, this.names);
    return record ? this.db.put(kindsKey(hubId), record) : this.db.remove(kindsKey(hubId));
  }

  async clearDesired(hubId: string): Promise<number> {
    this.opened.delete(hubId);
    return this.run(hubId, () => {
      const n = this.hubs.numberOf(hubId);
      let cleared = 0;
      if (n === undefined) return cleared;
      // a device's desired record is the one key of its range with three parts
      for (const { key, value } of this.db.getRange(hubRange(n))) {
        const desired = value as StoredDesired;
        if (key.length !== 3 || desired[0].length === 0) continue;
        void this.db.put(key, [[], desired[1] + 1]);
        cleared++;
      }
      return cleared;
    });
  }

  async remove(hubId: string): Promise<void> {
    this.opened.delete(hubId);
    await this.run(hubId, () => {
      const h = this.hubs.read(hubId);
      const n = h?.[3] ?? -1;
      const gone: Key[] = [kindsKey(hubId)];
      if (n >= 0) for (const key of this.db.getKeys(hubRange(n))) gone.push(key);
      for (const key of gone) void this.db.remove(key);
      // the hub's entry and number stay, without a cursor, its fence one above the last epoch written
      void this.db.put(hubKey(hubId), [(h?.[0] ?? 0) + 1, null, 0, n]);
      this.hubs.forget(hubId);
    });
  }

  /**
   * The largest epoch written for the hub (what its fence holds), 0 for none: where the embedded
   * directory's epochs for a hub continue after a restart (MemoryDirectory's `continueFrom`).
   */
  lastEpoch(hubId: string): number {
    return this.hubs.epochOf(hubId);
  }

  /** Resolves when every write made before the call is durable. */
  async flush(): Promise<void> {
    this.startOpen();
    await this.last;
    await this.data.flushed();
  }

  /** Flushes; later writes are dropped (the DataStore is closed by its owner after this). */
  async close(): Promise<void> {
    this.startOpen();
    this.closed = true;
    this.open = null;
    try {
      await this.flush();
    } finally {
      clearInterval(this.stallCheck);
    }
  }

  /** The hub's writes so far, once durable; a batch of them still in its window is queued now, not waited for. */
  private durableWrites(hubId: string): Promise<unknown> | undefined {
    if (this.open?.hubs.has(hubId)) this.startOpen();
    return this.pending.get(hubId);
  }

  /** Queues the open batch's transaction now if its window is still running. */
  private readonly startOpen = (): void => {
    const start = this.open?.start;
    if (!start) return;
    this.open!.start = null;
    clearTimeout(this.windowTimer ?? undefined);
    this.windowTimer = null;
    start();
  };

  /** The hub's entry in the open batch (opening one); null after close, or for a write the batch's epoch makes stale. */
  private queue(hubId: string, epoch: number): QueuedHub | null {
    if (this.closed) {
      if (!this.warnedClosed) this.log.warn('shadow write after close dropped');
      this.warnedClosed = true;
      return null;
    }
    if (!this.open) {
      const hubs = new Map<string, QueuedHub>();
      const began = this.batches ? performance.now() : 0;
      let resolve!: () => void;
      // handed out before the transaction exists (the window): resolves once it is durable
      const settled = new Promise<void>((r) => (resolve = r));
      const start = (): void => {
        // as puts now when large enough and no other write of its hubs is uncommitted (the fence
        // and the reads see what they will be written over); else in a transaction callback
        const alone = hubs.size >= PUTS_FROM_HUBS && this.uncommitted.onlyOne(hubs.keys());
        if (alone && this.open?.hubs === hubs) this.open = null;
        let done: Promise<unknown>;
        try {
          done = alone
            ? this.writeBatch(hubs)
            : this.db.transaction(() => {
                // from here on, writes go into the next batch
                if (this.open?.hubs === hubs) this.open = null;
                this.writeBatch(hubs);
              });
        } catch (err) {
          // run from a microtask or a timer: a throw (a closed environment) fails the batch, not the process
          done = Promise.reject(err);
        }
        // a transaction refused before its body ran: later writes go into a new batch, not this dead one
        done.catch(() => {
          if (this.open?.hubs === hubs) this.open = null;
        });
        if (alone) this.flying++;
        const release = (): void => {
          this.uncommitted.release(hubs.keys());
          // the next batch has waited for these puts' commit: it goes now, as one
          if (alone && --this.flying === 0 && this.batchWindowMs === 0) this.startOpen();
        };
        void done.then(release, release);
        void this.track(done, settled, () => hubs.keys(), () => {
          this.batches?.flushed(hubs.size, (performance.now() - began) / 1000);
          for (const [id, hub] of hubs) {
            if (hub.written && hub.stored) notifyStored(hub.stored, id, hub.seq, this.log);
            this.hubs.settle(id, hub.epoch);
          }
        }).then(resolve);
      };
      this.open = { hubs, settled, start };
      // at the end of the caller's task (a turn's hub frames are handled in one), or once the batch
      // being committed is: its writes are one batch (issued at once, lmdb-js would commit each
      // task's puts apart, twice the commits at 20,000 reports/s)
      if (this.batchWindowMs > 0) this.windowTimer = setTimeout(this.startOpen, this.batchWindowMs);
      else if (this.flying === 0) queueMicrotask(this.startOpen);
    }
    let hub = this.open.hubs.get(hubId);
    // a newer session opened (its epoch not written yet), or wrote into this batch
    const newer = Math.max(hub?.epoch ?? 0, this.hubs.openedEpoch(hubId));
    if (staleInBatch(epoch, newer)) {
      this.staleBatches++;
      this.log.debug({ hubId, epoch, newer }, 'stale shadow write refused by the epoch fence');
      return null;
    }
    if (!hub) {
      hub = new QueuedHub(epoch);
      this.open.hubs.set(hubId, hub);
      this.uncommitted.add(hubId);
      this.pending.set(hubId, this.open.settled);
    } else if (epoch > hub.epoch) hub.epoch = epoch;
    return hub;
  }

  /**
   * Each hub's batch unless fenced (those written are marked `written`), in the write transaction
   * or as plain puts (see `UncommittedHubs`).
   * The devices' data is let go once put (lmdb-js has encoded it; a callback runs once): only the
   * cursors wait for the commit to be durable.
   */
  private writeBatch(hubs: Map<string, QueuedHub>): Promise<unknown> {
    let last: Promise<unknown> = Promise.resolve();
    for (const [hubId, b] of hubs) {
      try {
        const known = this.hubs.known(hubId);
        let h: StoredHub | undefined;
        let epoch: number;
        let n: number;
        if (known) ({ epoch, n } = known);
        else {
          h = this.hubs.read(hubId);
          epoch = h?.[0] ?? 0;
          n = h ? h[3] : -1;
        }
        if (b.epoch > 0 && Math.max(epoch, this.hubs.openedEpoch(hubId)) > b.epoch) {
          this.staleBatches++;
          this.log.debug({ hubId, epoch: b.epoch, stored: epoch }, 'stale shadow batch refused by the epoch fence');
          continue;
        }
        // numbered at its first device record (see HUB)
        const numbered = n < 0 && b.deviceId !== undefined;
        if (numbered) n = this.hubs.give();
        // in key order for a hub numbered now: appended at the file's end, its pages left full
        last = this.putKinds(hubId, b) ?? last;
        if (numbered && b.more) {
          for (const deviceId of [b.deviceId!, ...b.more.keys()].sort()) last = this.putDevice(n, deviceId, deviceId === b.deviceId ? b : b.more.get(deviceId)!);
        } else {
          if (b.deviceId !== undefined) last = this.putDevice(n, b.deviceId, b);
          if (b.more) for (const [deviceId, e] of b.more) last = this.putDevice(n, deviceId, e);
        }
        // the hub entry last: a hub whose device writes threw keeps its old cursor
        const cursor = b.boot !== undefined;
        // a hub new to the store has a cursor or a device record in its batch: its entry is written
        if (cursor || b.epoch > epoch || numbered) {
          // a new epoch without a cursor keeps the stored one
          if (!cursor && known !== undefined) h = this.hubs.read(hubId);
          epoch = Math.max(epoch, b.epoch);
          last = this.db.put(hubKey(hubId), cursor ? hubEntry(epoch, b.boot!, b.seq, n, b.tag) : hubEntry(epoch, h?.[1] ?? null, h?.[2] ?? 0, n, h?.[4]));
        }
        if (epoch !== known?.epoch || numbered) this.hubs.remember(hubId, epoch, n);
        b.written = cursor;
      } catch (err) {
        // a key lmdb cannot take (too long): this hub's batch is lost, the others are written
        this.log.error({ err, hubId }, 'shadow batch of a hub could not be written');
      }
      b.letDevicesGo();
    }
    // outside a transaction, the puts of one call share their commit's promise
    return last;
  }

  /** A device's reported side, under its hub's number `n`, in the write transaction. */
  private putDevice(n: number, deviceId: string, e: QueuedDevice): Promise<unknown> {
    return this.db.put([n, deviceId], e.n < 0 ? [e.a, e.v, e.at] : [e.n, e.a, e.v, e.at]);
  }

  /**
   * The kinds a batch's reports carry (not the hub sessions' writes, which carry none): the hub's
   * kinds record read once and written once if a kind changed; undefined when nothing is written.
   */
  private putKinds(hubId: string, b: QueuedHub): Promise<unknown> | undefined {
    if (b.k === undefined && b.more === null) return undefined;
    let kinds: Map<string, KindModel> | undefined;
    let changed = false;
    const kind = (deviceId: string, k: string | undefined): void => {
      if (k === undefined) return;
      kinds ??= this.kindsOf(hubId);
      const km = kinds.get(deviceId);
      if (km?.[0] === k) return;
      kinds.set(deviceId, [k, km?.[1] ?? null]);
      changed = true;
    };
    if (b.deviceId !== undefined) kind(b.deviceId, b.k);
    if (b.more) for (const [deviceId, e] of b.more) kind(deviceId, e.k);
    return changed ? this.putKindsRecord(hubId, kinds!) : undefined;
  }

  /** One transaction of its own, after every batch and transaction before it; resolves once durable. */
  private async run<T>(hubId: string, body: () => T): Promise<T> {
    this.startOpen(); // writes before this call are written before it
    this.open = null; // writes after this call go into a batch that runs after it
    this.uncommitted.add(hubId);
    const done = this.db.transaction(body);
    const release = (): void => this.uncommitted.release([hubId]);
    void done.then(release, release);
    this.pending.set(hubId, this.track(done, undefined, () => [hubId], () => {}));
    // its own wait, in the same turn: a failed commit or sync reaches the caller (`track` never rejects)
    return this.data.written(done);
  }

  /**
   * Follows a transaction: `then` runs once it is durable; `last` and `pending` (for the hubs `hubs()`
   * names) point at it, or at `known` (a batch's promise handed out before), until then. Never rejects.
   */
  private track<T>(done: Promise<T>, known: Promise<void> | undefined, hubs: () => Iterable<string>, then: (result: T) => void): Promise<void> {
    // called as `done` is issued: `written` follows that transaction's own sync
    const ended = this.stall.begin();
    const settled: Promise<void> = this.data
      .written(done)
      .then(
        (result) => {
          this.#healthy = true;
          then(result);
        },
        (err: unknown) => {
          this.#healthy = false;
          // what the failed transaction wrote was not kept: the fence reads the entries again, the names which lists are stored
          this.hubs.forgetAll();
          this.names.recheck();
          this.log.error({ err }, 'shadow write transaction failed: its writes are lost, none acknowledged');
        },
      )
      .finally(() => {
        ended();
        for (const h of hubs()) if (this.pending.get(h) === settled || (known !== undefined && this.pending.get(h) === known)) this.pending.delete(h);
      });
    this.last = settled;
    return settled;
  }

  /** Hubs with writes not yet durable (for tests and diagnostics): 0 once every write has committed. */
  get pendingHubs(): number {
    return this.pending.size;
  }

  /**
   * False from a write transaction that failed (disk full, I/O error) until one commits again: the
   * node's own store, so readiness takes this node alone out of service meanwhile.
   */
  get healthy(): boolean {
    return this.#healthy;
  }
}
