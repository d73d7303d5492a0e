/**
 * What the embedded history (LmdbEventHistory) keeps in memory of a home it has looked at, and the
 * list operations that keep it small: a node holds one per home it serves, most of them at rest.
 */
import type { PackedChunk } from './history-chunk.js';

/** A home this node has looked at. */
export interface Live {
  /** the newest offset given */
  top: number;
  /** starts of the home's sealed chunks, ascending (stored, or in `inflight` until committed) */
  chunks: number[];
  /** the newest time (ms) in each of `chunks`; NaN until read for a chunk stored by an earlier process */
  times: number[];
  /** where appends go until it is full or old enough to be written */
  open: PackedChunk | null;
  /** sealed chunks not committed yet: reads find them here meanwhile (NONE_IN_FLIGHT when none) */
  inflight: PackedChunk[];
  /** bytes of the last chunk sealed full (0: none): the next one's first allocation */
  room: number;
}

/** The `inflight` of every home with nothing in flight (most are at rest; each array counts), frozen: lists grow through `appended` */
export const NONE_IN_FLIGHT = Object.freeze([]) as unknown as PackedChunk[];

/** `list` and `item` after it, a new list when `list` is empty: a push onto an empty array reserves 17 slots (150 B). */
export function appended<T>(list: T[], item: T): T[] {
  if (list.length === 0) return [item];
  list.push(item);
  return list;
}

/** `list` without `chunk`: NONE_IN_FLIGHT when nothing is left. */
export function without(list: PackedChunk[], chunk: PackedChunk): PackedChunk[] {
  const left = list.filter((c) => c !== chunk);
  return left.length === 0 ? NONE_IN_FLIGHT : left;
}

/**
 * A home with nothing open or in flight copies its lists at their length: pushes left them room for
 * 17 and more, kept for as long as the home stays idle (BENCHMARKS.md, 2026-12-05 third).
 */
export function atRest(live: Live): void {
  if (live.inflight.length > 0 || live.open !== null) return;
  live.chunks = live.chunks.slice();
  live.times = live.times.slice();
}
