import { describe, expect, it } from 'vitest';
import { packChunk, readChunk } from '../../src/ports/history/history-chunk.js';

const entries = (bytes: Uint8Array) => {
  const c = readChunk(bytes);
  return c && c.t.map((t, i) => [t, Array.from(c.d[i]!)]);
};

describe('history chunk bytes', () => {
  it('reads back every entry in order, with its time, empty and large entries among them', () => {
    const t: number[] = [];
    const d: Uint8Array[] = [];
    for (let i = 0; i < 32; i++) {
      t.push(1_700_000_000_000 + i * 0.5);
      d.push(Uint8Array.from({ length: i === 31 ? 70_000 : i % 7 }, (_, k) => (i * 31 + k) & 0xff));
    }
    expect(entries(packChunk({ t, d }))).toEqual(t.map((time, i) => [time, Array.from(d[i]!)]));
  });

  it('copies the bytes: the events may be changed after, and views at an offset read alike', () => {
    const data = Uint8Array.from([1, 2, 3]);
    const packed = packChunk({ t: [5], d: [data] });
    data[0] = 9;
    expect(entries(packed)).toEqual([[5, [1, 2, 3]]]);
    // as the store may hand it back: a view into a larger buffer
    const outer = new Uint8Array(packed.length + 3);
    outer.set(packed, 3);
    expect(entries(outer.subarray(3))).toEqual([[5, [1, 2, 3]]]);
  });

  it('answers undefined for bytes that are not a whole chunk: cut in a head, cut in the data, a length past the end', () => {
    const whole = packChunk({ t: [1], d: [Uint8Array.from([1, 2, 3, 4])] });
    expect(readChunk(whole.subarray(0, 6))).toBeUndefined();
    expect(readChunk(whole.subarray(0, whole.length - 1))).toBeUndefined();
    const forged = Uint8Array.from(whole);
    new DataView(forged.buffer).setUint32(8, 0xffffffff, true);
    expect(readChunk(forged)).toBeUndefined();
    expect(readChunk(new Uint8Array(0))).toEqual({ t: [], d: [] });
  });
});
