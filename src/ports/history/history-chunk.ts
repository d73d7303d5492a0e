import { crc32 } from 'node:zlib';

/**
 * A history chunk as stored: a CRC-32 (uint32, little-endian) of the home's id, the chunk's first
 * offset and the entries, then its entries one after another, each its time (ms, float64) and its
 * length (uint32), both little-endian, then its bytes. With msgpack's walk over a chunk's two
 * arrays, the write-out cost the sockets' thread 0.46 µs per event; packed so, 0.28 (report-path
 * bench profile, BENCHMARKS.md). A chunk is packed as its entries come (PackedChunk).
 *
 * The check binds the bytes to their key: lmdb-js answers a compressed record it cannot
 * decompress (a damaged page) with the last record it did decompress, which may be another
 * home's chunk.
 */
const ENTRY_HEAD = 12;
/** The check before the entries. */
const CHECK = 4;
/** Entries the first allocation of a PackedChunk has room for (as long as its first); then it doubles. */
const FIRST_ROOM = 4;
/**
 * A stored chunk longer than this is damaged, not checked: a damaged compression header can claim
 * up to 4 GiB (32 events of the largest frames, TIER_MAX_FRAME_BYTES 16 MiB, would be 512 MiB).
 */
const MAX_STORED = 512 * 1024 * 1024 + 32 * ENTRY_HEAD + CHECK;

/** Consecutive entries of a home: times (ms) and bytes, index by index. */
export interface ChunkEntries {
  t: number[];
  d: Uint8Array[];
}

const offsetBytes = Buffer.alloc(8);

/** The check of a chunk of `homeId` starting at offset `start` whose entries are `entries`. */
function checkOf(homeId: string, start: number, entries: Uint8Array): number {
  offsetBytes.writeDoubleLE(start, 0);
  return crc32(entries, crc32(offsetBytes, crc32(homeId)));
}

/**
 * The entries of a stored chunk (views into its bytes), or undefined when the bytes are not the
 * chunk of `homeId` at `start`, whole and as written, or are longer than `maxBytes`.
 */
export function readChunk(bytes: Uint8Array, homeId: string, start: number, maxBytes = MAX_STORED): ChunkEntries | undefined {
  if (bytes.length < CHECK || bytes.length > maxBytes) return undefined;
  const entries = bytes.subarray(CHECK);
  const check = bytes[0]! | (bytes[1]! << 8) | (bytes[2]! << 16) | (bytes[3]! << 24);
  if (check >>> 0 !== checkOf(homeId, start, entries)) return undefined;
  return readEntries(entries);
}

/** Entries one after another, as views; undefined when they are not whole. */
function readEntries(bytes: Uint8Array): ChunkEntries | undefined {
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
 * of the next second (and the event's own buffer can go at once). Entries once written never
 * change: the views `entries()` answers stay valid while more are appended.
 */
export class PackedChunk {
  private bytes = EMPTY;
  /** bytes written, the check's room included */
  private used = CHECK;
  /** entries so far */
  count = 0;
  /** time (ms) of the first entry and of the newest */
  firstAt = 0;
  lastAt = 0;
  /** its put was issued (a sealed chunk, until committed) */
  issued = false;
  /** the commit of the transaction its put was issued in (rejects if that failed) */
  commit: Promise<unknown> | null = null;

  constructor(
    /** offset of its first entry */
    readonly start: number,
    /**
     * bytes its first allocation takes at least: the size of the home's last full chunk, so a busy
     * home's chunk is one allocation of its size, not five growing ones ending at twice it (BENCHMARKS.md,
     * 2026-12-03 seventh: 2–3 MB less held and RSS 10–20 MB lower at 20,000 events/s)
     */
    private readonly room = 0,
  ) {}

  /** bytes written so far, the check's room included: what the stored chunk will be before compression */
  get size(): number {
    return this.used;
  }

  append(t: number, data: Uint8Array): void {
    const end = this.used + ENTRY_HEAD + data.length;
    if (end > this.bytes.length) {
      const first = this.bytes.length === 0 ? this.room : 0;
      const grown = Buffer.allocUnsafe(Math.max(end, first, this.bytes.length * 2, CHECK + (ENTRY_HEAD + data.length) * FIRST_ROOM));
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

  /** The chunk as stored, its check over what it holds now (a sealed chunk is packed once, for its put). */
  packed(homeId: string): Buffer {
    if (this.bytes.length < CHECK) this.bytes = Buffer.alloc(CHECK);
    const out = this.bytes.subarray(0, this.used);
    out.writeUInt32LE(checkOf(homeId, this.start, out.subarray(CHECK)), 0);
    return out;
  }

  /** Its entries, as views into its bytes. */
  entries(): ChunkEntries {
    return readEntries(this.bytes.subarray(CHECK, this.used))!;
  }
}

