import { describe, expect, it } from 'vitest';
import { encodeFrame, frames } from '../../load/wire/frames.js';
import { encodeValue } from '../../src/protocol/codec.js';
import { isResultFrame, resultIdOf } from '../../src/protocol/result-peek.js';

describe('isResultFrame (the frames the hub gateway handles at once, not at the end of the turn)', () => {
  it('knows a result as hubs encode it, ok or failed', () => {
    expect(isResultFrame(encodeFrame(frames.result(7, { ok: true, r: { on: true } })))).toBe(true);
    expect(isResultFrame(encodeFrame(frames.result(7, { ok: false, e: 'device_offline' })))).toBe(true);
  });

  it('takes every other frame for the inbox', () => {
    for (const f of [frames.report(1, { d1: { on: true } }), frames.heartbeat(), frames.hello('boot'), frames.devices(2, { f: true, j: [] }), frames.event(3, 'd1', 'press')]) {
      expect(isResultFrame(encodeFrame(f))).toBe(false);
    }
  });

  it('takes a result encoded with `t` not first, or not a map, for the inbox (handled there all the same)', () => {
    expect(isResultFrame(encodeValue({ id: 7, t: 8, ok: true }))).toBe(false);
    expect(isResultFrame(encodeValue([8, 7, true]))).toBe(false);
    expect(isResultFrame(new Uint8Array([0x81, 0xa1, 0x74]))).toBe(false);
  });
});

describe('resultIdOf (the id a stray result is rated by before any decoding)', () => {
  it('reads the id of a result as hubs encode it, in every integer form', () => {
    for (const id of [0, 7, 200, 40_000, 0x7fffffff]) expect(resultIdOf(encodeFrame(frames.result(id, { ok: true, r: { on: true } })))).toBe(id);
  });

  it('reads nothing from other frames, other key orders or a frame cut short (those are decoded in full)', () => {
    expect(resultIdOf(encodeFrame(frames.report(1, { d1: { on: true } })))).toBeNull();
    expect(resultIdOf(encodeValue({ t: 8, ok: true, id: 7 }))).toBeNull();
    expect(resultIdOf(encodeValue({ t: 8, id: 'seven', ok: true }))).toBeNull();
    expect(resultIdOf(new Uint8Array([0x83, 0xa1, 0x74, 0x08, 0xa2, 0x69, 0x64, 0xcd, 0x01]))).toBeNull();
  });
});
