/**
 * The embedded history's chunks' sub-database in `history.mdb` (see LmdbEventHistory): its name,
 * its compression, and the names of the layouts before it, which are dropped on open.
 */
import type { Database } from 'lmdb';
import type { DataStore } from '../lmdb.js';

/**
 * The chunks' sub-database, and those of the layouts before it (`-2`: the same chunks uncompressed;
 * `-3`: compressed with lmdb-js's default dictionary, which its records cannot be read without).
 */
const CHUNKS = 'history-chunks-4';
export const LEGACY = ['history', 'history-chunks', 'history-chunks-2', 'history-chunks-3'];
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

/** The chunks' sub-database, always opened with the compression its records were written with. */
export function openChunks(data: DataStore): Database<Uint8Array, [string, number]> {
  return data.side('history').openDB({ name: CHUNKS, encoding: 'binary', compression: { threshold: COMPRESS_FROM, dictionary: NO_DICTIONARY } }) as unknown as Database<Uint8Array, [string, number]>;
}
