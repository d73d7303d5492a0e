/**
 * The embedded history's chunks' sub-database in `history.mdb` (see LmdbEventHistory): its name,
 * its compression, the names of the layouts before it, which are dropped on open, and reading and
 * dropping what it stores.
 */
import { join } from 'node:path';
import type { Database } from 'lmdb';
import type { DataStore } from '../lmdb.js';
import { readChunk, type ChunkEntries } from './history-chunk.js';
import { openEpoch } from './history-read.js';

/** Entries per chunk at most: one put per 32 events instead of one each (at most half the count kept). */
export const MAX_CHUNK = 32;
/** Past every offset: the end of a home's keys. */
export const END = Number.MAX_SAFE_INTEGER;

export type Chunks = Database<Uint8Array, [string, number]>;
/** `history-range`: homeId → the range of a home whose entries were all removed or aged out (its offsets go on). */
export type Ranges = Database<{ first: number; top: number }, string>;

/**
 * The chunks' sub-database, and those of the layouts before it (`-2`: the same chunks uncompressed;
 * `-3`: compressed with lmdb-js's default dictionary, which its records cannot be read without).
 */
const CHUNKS = 'history-chunks-4';
const LEGACY = ['history', 'history-chunks', 'history-chunks-2', 'history-chunks-3'];
/**
 * The file's layout, kept as `layout` in `history-epoch`: a release that lays history.mdb out anew
 * raises it, so a rollback to an older one (which cannot read the newer records, and would give
 * out again offsets the newer one gave) starts a new epoch rather than tell apps `recovered`.
 */
const HISTORY_LAYOUT = 4;
/**
 * Chunks from this many bytes are LZ4-compressed by lmdb-js on its write thread: a full chunk
 * (about 3.6 KB, an overflow page of its own uncompressed) shrinks to about a fifth, several to a
 * leaf page, and the file's pages are most of what the history adds to a node's RSS.
 */
const COMPRESS_FROM = 512;
/**
 * No dictionary: lmdb-js's default (5.5 KB of words) is loaded into LZ4 for every value, which cost
 * more than compressing a chunk; without it a full chunk takes about 25 µs less of the write thread
 * and as many pages (BENCHMARKS.md, 2026-12-03 sixth).
 */
const NO_DICTIONARY = Buffer.alloc(0);

/**
 * The file's epoch, after its layout is checked: entries of earlier layouts (one key per event;
 * chunks in msgpack) are dropped and a newer layout's left unread, each said (`data warning`), and
 * either starts a new epoch, so apps reload.
 */
export async function openLayout(data: DataStore): Promise<{ epoch: string; lineage: string[] }> {
  const env = data.side('history');
  const meta = env.openDB({ name: 'history-epoch', encoding: 'msgpack' }) as unknown as Database<string | number, string>;
  let legacy = false;
  for (const name of LEGACY) {
    const old = env.openDB({ name, encoding: 'binary' });
    if (old.getKeysCount({ limit: 1 }) === 0) continue;
    await old.clearAsync();
    legacy = true;
  }
  const layout = meta.get('layout');
  const newer = typeof layout === 'number' && layout > HISTORY_LAYOUT;
  const file = join(data.dir, 'history.mdb');
  if (legacy) data.warn(`${file} held device events in an earlier release's layout: dropped; a new epoch starts (apps reload)`);
  if (newer) data.warn(`${file} was written by a newer release (history layout ${layout}, this one reads ${HISTORY_LAYOUT}): its events are not read; a new epoch starts (apps reload)`);
  // an unclean stop alone keeps what it committed: the epoch after it continues the one before
  const opened = await openEpoch(meta as unknown as Database<unknown, string>, file, data.uncleanStart || legacy || newer, data.uncleanStart && !legacy && !newer);
  // raised over a newer one too: that release, back again, finds an older layout's file and treats it so
  if (layout !== HISTORY_LAYOUT) await meta.put('layout', HISTORY_LAYOUT);
  return opened;
}

/** The chunks' sub-database, always opened with the compression its records were written with. */
export function openChunks(data: DataStore): Chunks {
  return data.side('history').openDB({ name: CHUNKS, encoding: 'binary', compression: { threshold: COMPRESS_FROM, dictionary: NO_DICTIONARY } }) as unknown as Database<Uint8Array, [string, number]>;
}

/** A stored chunk's entries; undefined when missing, not whole or not this chunk's (a hole, which reads tell as too old). */
export function readStored(chunks: Chunks, homeId: string, start: number): ChunkEntries | undefined {
  let bytes: Uint8Array | undefined;
  try {
    bytes = chunks.get([homeId, start]);
  } catch {
    // a record lmdb-js refuses to decode is a hole too: thrown, it would refuse the home's every append
    return undefined;
  }
  return bytes ? readChunk(bytes, homeId, start) : undefined;
}

/** The newest offset a home has given, from its newest stored chunk (starting at `last`) and its range. */
export function storedTop(chunks: Chunks, ranges: Ranges, homeId: string, last: number): number {
  // a newest chunk that cannot be read may have held up to MAX_CHUNK: offsets go on past all of them, never reused
  return Math.max(ranges.get(homeId)?.top ?? 0, last + (readStored(chunks, homeId, last)?.t.length ?? MAX_CHUNK) - 1);
}

/**
 * Removes, oldest first, the stored chunks of a home not in memory whose newest entry is older than
 * `oldest` (ms), its newest too: then its range is written first, in the same transaction (one turn),
 * so its offsets go on. Answers the entries dropped.
 */
export function dropAged(chunks: Chunks, ranges: Ranges, homeId: string, oldest: number): number {
  const keys = [...chunks.getKeys({ start: [homeId, 0], end: [homeId, END] })];
  let dropped = 0;
  for (const [i, key] of keys.entries()) {
    const chunk = readStored(chunks, homeId, key[1]);
    if (chunk && chunk.t[chunk.t.length - 1]! >= oldest) break;
    if (i === keys.length - 1) {
      const top = storedTop(chunks, ranges, homeId, key[1]);
      void ranges.put(homeId, { first: top + 1, top });
    }
    void chunks.remove(key);
    dropped += chunk?.t.length ?? 0;
  }
  return dropped;
}
