/**
 * The embedded shadow store's records rewritten once, when a store written in an earlier layout is
 * opened: the device records of the first layout (both sides in one) split so that a report is
 * written without a read, and the devices' extra records (kind, model, desired: one a device) split
 * into one record of the hub's kinds and models (HubKinds) and desired records of the devices that
 * have a desired side: 10 records a hub of 8 devices, not 17 (BENCHMARKS, 2026-12-03 eighth).
 */
import type { Database } from 'lmdb';
import {
  desiredRecord,
  EXTRA,
  extraOfStored,
  fromDevice,
  hubKindsRecord,
  isDesired,
  isHubKinds,
  KINDS,
  readHubKinds,
  toDevice,
  withExtra,
  type KindModel,
  type Key,
  type LegacyDevice,
  type NumberedExtra,
  type Stored,
  type StoredExtra,
} from './shadow-store-lmdb-layout.js';
import type { StoredNames } from './shadow-store-lmdb-names.js';
import { emptyDevice } from './shadow-store.js';

/** Shadow records with each hub's kinds in one record (the marker in sub-database `layouts`); 2 was the split layout. */
const HUB_KINDS_LAYOUT = 3;
/** Records read before they are rewritten, about (whole hubs): a large store is not held in memory at once. */
const CHUNK_RECORDS = 20_000;

type Entry = { key: Key; value: Stored };

/**
 * Rewrites the records of an earlier layout, a transaction for each chunk of whole hubs (a large
 * store's rewrite is not one transaction's dirty pages in memory at once), then sets the marker.
 * Stopped half way, it goes on at the next open: a hub already rewritten has nothing left to
 * rewrite. Nothing to do for a store in this layout.
 */
export function migrateShadowRecords(db: Database<Stored, Key>, layouts: Database<number, string>, names: StoredNames): void {
  if ((layouts.get('shadows') ?? 0) >= HUB_KINDS_LAYOUT) return;
  let start: Key | undefined;
  do {
    start = db.transactionSync(() => {
      // read a chunk of whole hubs, then write: no write while a range is being read
      const chunk: Entry[] = [];
      let next: Key | undefined;
      for (const { key, value } of db.getRange(start === undefined ? {} : { start })) {
        if (chunk.length >= CHUNK_RECORDS && hubOf(key) !== hubOf(chunk.at(-1)!.key)) {
          next = key;
          break;
        }
        chunk.push({ key, value });
      }
      rewrite(db, chunk, names);
      return next;
    });
  } while (start !== undefined);
  layouts.putSync('shadows', HUB_KINDS_LAYOUT);
}

function hubOf(key: Key): string {
  return typeof key === 'string' ? key : key[0];
}

/** Rewrites the hubs of `chunk` (each whole, in key order). */
function rewrite(db: Database<Stored, Key>, chunk: Entry[], names: StoredNames): void {
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
