/**
 * A history chunk as stored: its entries one after another, each its time (ms, float64) and its
 * length (uint32), both little-endian, then its bytes. With msgpack's walk over a chunk's two
 * arrays, the write-out cost the sockets' thread 0.46 µs per event; packed so, 0.28 (report-path
 * bench profile, BENCHMARKS.md). A chunk is packed as its entries come (PackedChunk).
 */
const ENTRY_HEAD = 12;
/** Entries the first allocation of a PackedChunk has room for (as long as its first); then it doubles. */
const FIRST_ROOM = 4;

/** Consecutive entries of a home: times (ms) and bytes, index by index. */
export interface ChunkEntries {
  t: number[];
  d: Uint8Array[];
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

const EMPTY = Buffer.alloc(0);

/**
 * A chunk filled entry by entry in the stored form: the chunk holds one buffer, not an object per
 * event until it is written, so the events it takes die young instead of surviving the scavenges
 * of the next second (and the event's own buffer can go at once). Bytes once written never change:
 * `packed()` and the views `entries()` answers stay valid while more are appended.
 */
export class PackedChunk {
  private bytes = EMPTY;
  private used = 0;
  /** entries so far */
  count = 0;
  /** time (ms) of the first entry and of the newest */
  firstAt = 0;
  lastAt = 0;
  /** its put was issued (a sealed chunk, until committed) */
  issued = false;

  constructor(
    /** offset of its first entry */
    readonly start: number,
  ) {}

  append(t: number, data: Uint8Array): void {
    const end = this.used + ENTRY_HEAD + data.length;
    if (end > this.bytes.length) {
      const grown = Buffer.allocUnsafe(Math.max(end, this.bytes.length * 2, (ENTRY_HEAD + data.length) * FIRST_ROOM));
      grown.set(this.bytes.subarray(0, this.used));
      this.bytes = grown;
    }
    this.bytes.writeDoubleLE(t, this.used);
    this.bytes.writeUInt32LE(data.length, this.used + 8);
    this.bytes.set(data, this.used + ENTRY_HEAD);
    this.used = end;
    if (this.count++ === 0) this.firstAt = t;
    this.lastAt = t;
  }

  /** The chunk as stored. */
  packed(): Buffer {
    return this.bytes.subarray(0, this.used);
  }

  /** Its entries, as views into its bytes. */
  entries(): ChunkEntries {
    return readChunk(this.packed())!;
  }
}

