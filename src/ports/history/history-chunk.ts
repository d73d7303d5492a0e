/**
 * A history chunk as stored: its entries one after another, each its time (ms, float64) and its
 * length (uint32), both little-endian, then its bytes. Packed with one allocation and a copy per
 * entry: with msgpack's walk over the chunk's two arrays, the write-out cost the sockets' thread
 * 0.46 µs per event; packed so, 0.28 (report-path bench profile, BENCHMARKS.md).
 */
const ENTRY_HEAD = 12;

/** Consecutive entries of a home: times (ms) and bytes, index by index. */
export interface ChunkEntries {
  t: number[];
  d: Uint8Array[];
}

export function packChunk(chunk: ChunkEntries): Buffer {
  let size = chunk.d.length * ENTRY_HEAD;
  for (const data of chunk.d) size += data.length;
  // a slice of Node's pool when small: lmdb-js keeps the buffer until its write thread has read it
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (let i = 0; i < chunk.d.length; i++) {
    const data = chunk.d[i]!;
    out.writeDoubleLE(chunk.t[i]!, at);
    out.writeUInt32LE(data.length, at + 8);
    out.set(data, at + ENTRY_HEAD);
    at += ENTRY_HEAD + data.length;
  }
  return out;
}

/** The entries of a chunk's bytes (views into them), or undefined when they are not a whole chunk. */
export function readChunk(bytes: Uint8Array): ChunkEntries | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: ChunkEntries = { t: [], d: [] };
  let at = 0;
  while (at < bytes.length) {
    if (at + ENTRY_HEAD > bytes.length) return undefined;
    const length = view.getUint32(at + 8, true);
    const end = at + ENTRY_HEAD + length;
    if (end > bytes.length) return undefined;
    out.t.push(view.getFloat64(at, true));
    out.d.push(bytes.subarray(at + ENTRY_HEAD, end));
    at = end;
  }
  return out;
}
