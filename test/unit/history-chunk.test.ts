import { describe, expect, it } from 'vitest';
import { PackedChunk, readChunk } from '../../src/ports/history/history-chunk.js';

const entries = (bytes: Uint8Array) => {
  const c = readChunk(bytes, 'home-1', 7);
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
    expect(entries(chunk.packed('home-1'))).toEqual(t.map((time, i) => [time, Array.from(d[i]!)]));
    expect(chunk.entries().t).toEqual(t);
    expect([chunk.start, chunk.count, chunk.firstAt, chunk.lastAt]).toEqual([7, 32, t[0], t[31]]);
  });

  it('copies the bytes: the events may be changed after, and views at an offset read alike', () => {
    const data = Uint8Array.from([1, 2, 3]);
    const chunk = packed([5], [data]);
    data[0] = 9;
    expect(entries(chunk.packed('home-1'))).toEqual([[5, [1, 2, 3]]]);
    // as the store may hand it back: a view into a larger buffer
    const outer = new Uint8Array(chunk.packed('home-1').length + 3);
    outer.set(chunk.packed('home-1'), 3);
    expect(entries(outer.subarray(3))).toEqual([[5, [1, 2, 3]]]);
  });

  it('leaves what it answered before as it was while entries are appended and its buffer grows', () => {
    const chunk = new PackedChunk(1);
    chunk.append(1, Uint8Array.from([1]));
    const before = chunk.packed('h');
    const views = chunk.entries();
    const copy = Uint8Array.from(before);
    for (let i = 2; i < 40; i++) chunk.append(i, Uint8Array.from({ length: 50 }, () => i));
    expect(Uint8Array.from(before)).toEqual(copy);
    expect(Array.from(views.d[0]!)).toEqual([1]);
    expect(chunk.entries().t).toEqual(Array.from({ length: 39 }, (_, i) => i + 1));
  });

  it('answers undefined for bytes that are not a whole chunk: cut in its check, a head or the data, a length past the end, a byte changed', () => {
    const whole = packed([1], [Uint8Array.from([1, 2, 3, 4])]).packed('home-1');
    expect(entries(whole)).toEqual([[1, [1, 2, 3, 4]]]);
    for (const cut of [0, 2, 10, whole.length - 1]) expect(readChunk(whole.subarray(0, cut), 'home-1', 7)).toBeUndefined();
    const forged = Uint8Array.from(whole);
    new DataView(forged.buffer).setUint32(12, 0xffffffff, true);
    expect(readChunk(forged, 'home-1', 7)).toBeUndefined();
    const flipped = Uint8Array.from(whole);
    flipped[flipped.length - 1]! ^= 1;
    expect(readChunk(flipped, 'home-1', 7)).toBeUndefined();
    expect(new PackedChunk(1).entries()).toEqual({ t: [], d: [] });
    expect(readChunk(new PackedChunk(1).packed('home-1'), 'home-1', 1)).toEqual({ t: [], d: [] });
  });

  it('answers undefined, unread, for bytes longer than a chunk can be (a damaged compression header claims up to 4 GiB)', () => {
    const bytes = packed([1], [Uint8Array.from({ length: 100 }, (_, i) => i)]).packed('home-1');
    expect(readChunk(bytes, 'home-1', 7, bytes.length)).toBeDefined();
    expect(readChunk(bytes, 'home-1', 7, bytes.length - 1)).toBeUndefined();
  });

  it("answers undefined for another chunk's bytes: another home's, or another start's", () => {
    const bytes = packed([1], [Uint8Array.from([1, 2, 3, 4])]).packed('home-1');
    expect(readChunk(bytes, 'home-2', 7)).toBeUndefined();
    expect(readChunk(bytes, 'home-1', 8)).toBeUndefined();
    expect(readChunk(bytes, 'home-1', 7)).toBeDefined();
  });
});
