/**
 * The memory history keeps what it is given for as long as its retention says (hours). What the
 * node gives it is msgpackr's output: a view of an 8 KB buffer shared with later payloads. A kept
 * view would keep that buffer alive whole, so the history keeps its own copy.
 */
import { describe, expect, it } from 'vitest';
import { encodeBus } from '../../src/protocol/codec.js';
import { MemoryEventHistory } from '../../src/ports/history/history-memory.js';

describe('MemoryEventHistory', () => {
  it('keeps a copy of each payload, not a view of the encoder buffer it came in', async () => {
    const history = new MemoryEventHistory({ maxEvents: 10, maxAgeMs: 60_000 });
    const payload = encodeBus({ op: 'evt', kind: 'state', home: 'h', hub: 'hub', device: 'd', attrs: { on: true }, version: 1, ts: 1 });
    expect(payload.buffer.byteLength, 'the encoder hands out views of a larger buffer').toBeGreaterThan(payload.length);
    const pos = history.appendNow('h', payload);
    const read = await history.read('h', { epoch: pos.epoch, offset: 0 }, pos.offset, 10);
    expect(read.ok).toBe(true);
    const kept = read.ok ? read.entries[0]!.data : new Uint8Array();
    expect(kept).toEqual(new Uint8Array(payload));
    expect(kept.buffer.byteLength, 'a buffer of its own').toBe(kept.length);
  });
});
