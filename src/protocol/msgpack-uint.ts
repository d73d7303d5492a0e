/**
 * msgpack's unsigned integers as msgpackr writes them (positive fixint, uint8/16/32, and float64
 * from 2^32), written and read by hand where a frame is built or read without msgpackr: the ack
 * (`encodeAck`) and the event's position (`withPosition`, `positionOf`). Past 2^32 a uint64 would
 * reach msgpackr's readers as a BigInt, unlike every other number the node sends (review "wrap").
 */

/** Bytes of the smallest msgpack unsigned integer for n (a safe integer ≥ 0). */
export function uintSize(n: number): number {
  return n < 0x80 ? 1 : n <= 0xff ? 2 : n <= 0xffff ? 3 : n <= 0xffffffff ? 5 : 9;
}

/** Writes the smallest msgpack unsigned integer for n (a safe integer ≥ 0) at `at`. */
export function writeUint(out: Buffer, at: number, n: number): void {
  if (n < 0x80) out[at] = n;
  else if (n <= 0xff) {
    out[at] = 0xcc;
    out[at + 1] = n;
  } else if (n <= 0xffff) {
    out[at] = 0xcd;
    out.writeUInt16BE(n, at + 1);
  } else if (n <= 0xffffffff) {
    out[at] = 0xce;
    out.writeUInt32BE(n, at + 1);
  } else {
    out[at] = 0xcb;
    out.writeDoubleBE(n, at + 1);
  }
}

/**
 * The msgpack unsigned integer at `at` (a float64 too when it holds a safe integer ≥ 0: as written
 * past 2^32), or null when there is none (another type, or cut short).
 */
export function readUint(b: Uint8Array, at: number): number | null {
  const t = b[at];
  if (t === undefined) return null;
  if (t < 0x80) return t;
  if (t === 0xcb) {
    if (at + 9 > b.length) return null;
    const n = new DataView(b.buffer, b.byteOffset + at + 1, 8).getFloat64(0);
    return Number.isSafeInteger(n) && n >= 0 ? n : null;
  }
  const size = t === 0xcc ? 1 : t === 0xcd ? 2 : t === 0xce ? 4 : t === 0xcf ? 8 : 0;
  if (size === 0 || at + 1 + size > b.length) return null;
  let n = 0;
  for (let i = 1; i <= size; i++) n = n * 256 + b[at + i]!;
  return n;
}
