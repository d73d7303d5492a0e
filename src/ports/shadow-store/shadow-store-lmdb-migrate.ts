/**
 * The embedded shadow store's records rewritten once, when a store written in an earlier layout is
 * opened: the device records of the first layout (both sides in one) split so that a report is
 * written without a read, and the devices' extra records (kind, model, desired: one a device) split
 * into one record of the hub's kinds and models (HubKinds) and desired records of the devices that
 * have a desired side: 10 records a hub of 8 devices, not 17 (BENCHMARKS, 2026-12-03 eighth); then
 * each hub numbered, its records keyed by its number (BENCHMARKS, 2026-12-03 ninth).
 */
import { join } from 'node:path';
import type { Database } from 'lmdb';
import type { Logger } from '../../log/logger.js';
import { DATA_LAYOUT_VERSION, DataStoreError, markLayout, NEWER_LAYOUT_FIX, STORE_FILE, storedLayout, type DataStore } from '../lmdb.js';
import {
  desiredRecord,
  EXTRA,
  extraOfStored,
  fromDevice,
  hubKindsRecord,
  isDesired,
  HUB,
  isHubKinds,
  KINDS,
  LEGACY_START,
  NEXT_HUB,
  readHubKinds,
  toDevice,
  withExtra,
  type KindModel,
  type Key,
  type LegacyDevice,
  type LegacyHub,
  type LegacyKey,
  type NumberedExtra,
  type Stored,
  type StoredExtra,
} from './shadow-store-lmdb-layout.js';
import { nextHubNumber } from './shadow-store-lmdb-hubs.js';
import type { StoredNames } from './shadow-store-lmdb-names.js';
import { emptyDevice } from './shadow-store.js';

/** Shadow records with each hub's kinds in one record (the marker in sub-database `layouts`); 2 was the split layout. */
const HUB_KINDS_LAYOUT = 3;
/** The same with each hub's records keyed by its number. */
const NUMBERED_HUBS_LAYOUT = 4;
/** Records read before they are rewritten, about (whole hubs): a large store is not held in memory at once. */
const CHUNK_RECORDS = 20_000;

type Entry = { key: LegacyKey; value: Stored };

/**
 * Rewrites the records of an earlier layout, a transaction for each chunk of whole hubs (a large
 * store's rewrite is not one transaction's dirty pages in memory at once), then sets the marker.
 * Each of these transactions raises the store's data layout version too (markLayout): a version
 * before 2026-12-05 refuses the store from the first rewritten record on, where it read none of
 * them and lost every device's state (a rollback; the red team's HIGH, 2026-12-05). Stopped half
 * way, it goes on at the next open: a hub already rewritten has nothing left to rewrite. A store
 * rewritten before the version was raised (marker set, version 1) gets the version; a marker newer
 * than this code knows is refused with a DataStoreError. Logs one info line when it writes.
 */
export function migrateShadowRecords(data: DataStore, store: Database<Stored, Key>, names: StoredNames, log: Logger): void {
  const layouts = data.db<number>('layouts') as unknown as Database<number, string>;
  const layout = layouts.get('shadows') ?? 0;
  const version = storedLayout(data.root);
  if (layout > NUMBERED_HUBS_LAYOUT) {
    throw new DataStoreError(`${join(data.dir, STORE_FILE)} holds shadow records of layout ${layout}; this version reads layouts up to ${NUMBERED_HUBS_LAYOUT}. Nothing was changed: a newer version wrote it; ${NEWER_LAYOUT_FIX}`, data.dir);
  }
  if (layout === NUMBERED_HUBS_LAYOUT && version === DATA_LAYOUT_VERSION) return;
  // the records of the earlier layouts, all keyed by hub id (a rewrite stopped half way: those left)
  const records = layout < NUMBERED_HUBS_LAYOUT ? store.getKeysCount({ start: LEGACY_START }) : 0;
  if (layout < NUMBERED_HUBS_LAYOUT) {
    if (layout < HUB_KINDS_LAYOUT) gatherKinds(store as unknown as Database<Stored, LegacyKey>, names, data);
    mark(store, data, layouts, HUB_KINDS_LAYOUT);
    numberHubs(store, data);
  } else {
    // rewritten by a release of 2026-12-03/04, which left the version at 1: an older one may have run on it since
    const left = store.getKeysCount({ start: LEGACY_START });
    if (left > 0) log.warn({ records: left }, 'data store: shadow records of the layout before 2026-12-03 beside the current ones: an older version ran on this store after it was rewritten (a rollback). What it wrote is not read; the state from before the rollback is');
  }
  mark(store, data, layouts, NUMBERED_HUBS_LAYOUT);
  if (records > 0 || version !== DATA_LAYOUT_VERSION) {
    log.info({ records, fromLayout: layout, toLayout: NUMBERED_HUBS_LAYOUT, fromVersion: version, toVersion: DATA_LAYOUT_VERSION }, `data store: ${layout < NUMBERED_HUBS_LAYOUT ? `shadow records of layout ${layout} rewritten to layout ${NUMBERED_HUBS_LAYOUT} (${records} ${records === 1 ? 'record' : 'records'})` : `shadow records already in layout ${layout}`}, data layout version ${String(version)} to ${DATA_LAYOUT_VERSION}`);
  }
}

/** The marker and the data layout version, in one transaction. */
function mark(store: Database<Stored, Key>, data: DataStore, layouts: Database<number, string>, layout: number): void {
  store.transactionSync(() => {
    void layouts.put('shadows', layout);
    markLayout(data.root);
  });
}

/**
 * Each hub of the layouts before numbered: a number, its entry under `[HUB, hubId]` with it, its
 * kinds record under `[HUB, hubId, KINDS]`, its device records under the number; a transaction a
 * chunk of whole hubs, each going on where the last stopped (a hub rewritten has left the range of
 * the layouts before).
 */
function numberHubs(store: Database<Stored, Key>, data: DataStore): void {
  const db = store as unknown as Database<Stored, Key | LegacyKey>;
  let next = nextHubNumber(store);
  let more = true;
  while (more) {
    more = db.transactionSync(() => {
      const chunk: Entry[] = [];
      let cut = false;
      for (const { key, value } of db.getRange({ start: LEGACY_START })) {
        const legacy = key as LegacyKey;
        if (chunk.length >= CHUNK_RECORDS && hubOf(legacy) !== hubOf(chunk.at(-1)!.key)) {
          cut = true;
          break;
        }
        chunk.push({ key: legacy, value });
      }
      let hub: string | undefined;
      let n = 0;
      for (const { key, value } of chunk) {
        void db.remove(key);
        if (hubOf(key) !== hub) {
          hub = hubOf(key);
          n = next++;
          // its entry sorts first; a hub without one (records of a hub never connected) gets an empty one
          if (typeof key !== 'string') void db.put([HUB, hub], [0, null, 0, n]);
        }
        if (typeof key === 'string') void db.put([HUB, hub], [...(value as LegacyHub), n]);
        else if (key.length === 2 && key[1] === KINDS) void db.put([HUB, hub, KINDS], value);
        else void db.put(key.length === 2 ? [n, key[1]] : [n, key[1], key[2]], value);
      }
      void db.put([HUB, NEXT_HUB], next);
      markLayout(data.root);
      return cut;
    });
  }
}

/** The layouts before HubKinds rewritten (see the file's head). */
function gatherKinds(db: Database<Stored, LegacyKey>, names: StoredNames, data: DataStore): void {
  let start: LegacyKey | undefined;
  do {
    start = db.transactionSync(() => {
      // read a chunk of whole hubs, then write: no write while a range is being read
      const chunk: Entry[] = [];
      let next: LegacyKey | undefined;
      for (const { key, value } of db.getRange(start === undefined ? {} : { start })) {
        if (chunk.length >= CHUNK_RECORDS && hubOf(key) !== hubOf(chunk.at(-1)!.key)) {
          next = key;
          break;
        }
        chunk.push({ key, value });
      }
      rewrite(db, chunk, names);
      markLayout(data.root);
      return next;
    });
  } while (start !== undefined);
}

function hubOf(key: LegacyKey): string {
  return typeof key === 'string' ? key : key[0];
}

/** Rewrites the hubs of `chunk` (each whole, in key order). */
function rewrite(db: Database<Stored, LegacyKey>, chunk: Entry[], names: StoredNames): void {
  let hub: string | undefined;
  let kinds = new Map<string, KindModel>();
  let changed = false;
  const flush = (): void => {
    if (hub !== undefined && changed) {
      const record = hubKindsRecord(kinds, names);
      if (record) void db.put([hub, KINDS], record);
    }
    kinds = new Map();
    changed = false;
  };
  // a device's rest: its kind and model into the hub's record, its desired side into a record of its own
  const split = (deviceId: string, extra: StoredExtra): void => {
    kinds.set(deviceId, [extra[0], extra[1]]);
    const desired = desiredRecord(withExtra(emptyDevice(), extra));
    if (desired) void db.put([hub!, deviceId, EXTRA], desired);
    else void db.remove([hub!, deviceId, EXTRA]);
    changed = true;
  };
  for (const { key, value } of chunk) {
    if (hubOf(key) !== hub) {
      flush();
      hub = hubOf(key);
    }
    if (typeof key === 'string' || !Array.isArray(value)) continue;
    if (key.length === 2 && key[1] === KINDS) {
      if (isHubKinds(value)) for (const [id, km] of readHubKinds(value, names)) kinds.set(id, km);
    } else if (key.length === 3 && key[2] === EXTRA) {
      if (!isDesired(value)) split(key[1], extraOfStored(value as StoredExtra | NumberedExtra, names));
    } else if (value.length === 7) {
      // the first layout: both sides in one record
      const device = toDevice(value as LegacyDevice, undefined);
      void db.put(key, fromDevice(device));
      split(key[1], [device.kind ?? null, device.model ?? null, (value as LegacyDevice)[5], device.desiredVersion]);
    }
  }
  flush();
}
