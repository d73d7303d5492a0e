/**
 * The embedded shadow store's records rewritten once, when a store written in an earlier layout is
 * opened: the device records of the first layout (both sides in one) split so that a report is
 * written without a read, and the devices' extra records (kind, model, desired: one a device) gathered
 * into one record a hub (HubExtras), a third fewer records a hub (BENCHMARKS, 2026-12-03 eighth).
 */
import type { Database } from 'lmdb';
import {
  EXTRA,
  EXTRAS,
  extraOf,
  extraOfStored,
  fromDevice,
  hubExtrasRecord,
  isHubExtras,
  readHubExtras,
  toDevice,
  type Key,
  type LegacyDevice,
  type NumberedExtra,
  type Stored,
  type StoredExtra,
} from './shadow-store-lmdb-layout.js';
import type { StoredNames } from './shadow-store-lmdb-names.js';

/** Shadow records with each hub's extras in one record (the marker in sub-database `layouts`); 2 was the split layout. */
const HUB_EXTRAS_LAYOUT = 3;
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
  if ((layouts.get('shadows') ?? 0) >= HUB_EXTRAS_LAYOUT) return;
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
  layouts.putSync('shadows', HUB_EXTRAS_LAYOUT);
}

function hubOf(key: Key): string {
  return typeof key === 'string' ? key : key[0];
}

/** Rewrites the hubs of `chunk` (each whole, in key order). */
function rewrite(db: Database<Stored, Key>, chunk: Entry[], names: StoredNames): void {
  let hub: string | undefined;
  let extras = new Map<string, StoredExtra>();
  let changed = false;
  const flush = (): void => {
    if (hub !== undefined && changed) {
      const record = hubExtrasRecord(extras, names);
      if (record) void db.put([hub, EXTRAS], record);
    }
    extras = new Map();
    changed = false;
  };
  for (const { key, value } of chunk) {
    if (hubOf(key) !== hub) {
      flush();
      hub = hubOf(key);
    }
    if (typeof key === 'string' || !Array.isArray(value)) continue;
    if (key.length === 2 && key[1] === EXTRAS) {
      // already gathered (a store cannot hold both, but keep what is there)
      if (isHubExtras(value)) for (const [id, extra] of readHubExtras(value, names)) extras.set(id, extra);
    } else if (key.length === 3 && key[2] === EXTRA) {
      extras.set(key[1], extraOfStored(value as StoredExtra | NumberedExtra, names));
      void db.remove(key);
      changed = true;
    } else if (value.length === 7) {
      // the first layout: both sides in one record
      const device = toDevice(value as LegacyDevice, undefined);
      void db.put(key, fromDevice(device));
      if (device.kind !== undefined || device.model !== undefined || device.desiredVersion > 0) {
        extras.set(key[1], extraOf(device));
        changed = true;
      }
    }
  }
  flush();
}
