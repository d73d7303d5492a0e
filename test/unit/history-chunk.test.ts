import { describe, expect, it } from 'vitest';
import { PackedChunk, readChunk } from '../../src/ports/history/history-chunk.js';

const entries = (bytes: Uint8Array) => {
  const c = readChunk(bytes);
  return c && c.t.map((t, i) => [t, Array.from(c.d[i]!)]);
};

function packed(t: number[], d: Uint8Array[]): PackedChunk {
  const chunk = new PackedChunk(7);
  for (let i = 0; i < t.length; i++) chunk.append(t[i]!, d[i]!);
  return chunk;
}

describe('history chunk bytes', () => {
  it('reads back every entry in order, with its time, empty and large entries among them, through every growth', () => {
    const t: number[] = [];
    const d: Uint8Array[] = [];
    for (let i = 0; i < 32; i++) {
      t.push(1_700_000_000_000 + i * 0.5);
      d.push(Uint8Array.from({ length: i === 31 ? 70_000 : i % 7 }, (_, k) => (i * 31 + k) & 0xff));
    }
    const chunk = packed(t, d);
    expect(entries(chunk.packed())).toEqual(t.map((time, i) => [time, Array.from(d[i]!)]));
    expect(chunk.entries().t).toEqual(t);
    expect([chunk.start, chunk.count, chunk.firstAt, chunk.lastAt]).toEqual([7, 32, t[0], t[31]]);
  });

  it('copies the bytes: the events may be changed after, and views at an offset read alike', () => {
    const data = Uint8Array.from([1, 2, 3]);
    const chunk = packed([5], [data]);
    data[0] = 9;
    expect(entries(chunk.packed())).toEqual([[5, [1, 2, 3]]]);
    // as the store may hand it back: a view into a larger buffer
    const outer = new Uint8Array(chunk.packed().length + 3);
    outer.set(chunk.packed(), 3);
    expect(entries(outer.subarray(3))).toEqual([[5, [1, 2, 3]]]);
  });

  it('leaves what it answered before as it was while entries are appended and its buffer grows', () => {
    const chunk = new PackedChunk(1);
    chunk.append(1, Uint8Array.from([1]));
    const before = chunk.packed();
    const views = chunk.entries();
    const copy = Uint8Array.from(before);
    for (let i = 2; i < 40; i++) chunk.append(i, Uint8Array.from({ length: 50 }, () => i));
    expect(Uint8Array.from(before)).toEqual(copy);
    expect(Array.from(views.d[0]!)).toEqual([1]);
    expect(chunk.entries().t).toEqual(Array.from({ length: 39 }, (_, i) => i + 1));
  });

  it('answers undefined for bytes that are not a whole chunk: cut in a head, cut in the data, a length past the end', () => {
    const whole = packed([1], [Uint8Array.from([1, 2, 3, 4])]).packed();
    expect(readChunk(whole.subarray(0, 6))).toBeUndefined();
    expect(readChunk(whole.subarray(0, whole.length - 1))).toBeUndefined();
    const forged = Uint8Array.from(whole);
    new DataView(forged.buffer).setUint32(8, 0xffffffff, true);
    expect(readChunk(forged)).toBeUndefined();
    expect(readChunk(new Uint8Array(0))).toEqual({ t: [], d: [] });
    expect(new PackedChunk(1).entries()).toEqual({ t: [], d: [] });
  });
});
