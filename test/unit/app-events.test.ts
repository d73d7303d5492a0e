import { unpack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import type { AppEventMessage } from '../../proto/app.js';
import { appEventBytes, appEventJson, positionOf, withPosition } from '../../src/protocol/app-events.js';
import { decodeValue, encodeBus, encodeValue } from '../../src/protocol/codec.js';

const events: AppEventMessage[] = [
  { op: 'evt', kind: 'state', home: 'home-1', hub: 'h1', device: 'd1', attrs: { on: true, level: 0.5 }, version: 7, ts: 1_700_000_000_000 },
  { op: 'evt', kind: 'devices', home: 'h', hub: 'h', joined: [{ d: 'x', k: 'plug' }], left: ['y'], ts: 1 },
  { op: 'evt', kind: 'offline', home: '__proto__', hub: 'toString', reason: '1006', ts: 2 },
];
const offsets = [0, 1, 127, 128, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER];

describe('event positions in the bus bytes', () => {
  it('inserts pos as the second key: the bytes decode to the event with its position, read back without decoding', () => {
    for (const event of events) {
      for (const offset of offsets) {
        for (const epoch of ['a1b2c3d4e5f6', 'e'.repeat(40)]) {
          const bytes = withPosition(encodeBus(event), { epoch, offset });
          expect(decodeValue(bytes)).toEqual({ ...event, pos: { epoch, offset } });
          expect(Object.keys(decodeValue(bytes) as object).slice(0, 2)).toEqual(['op', 'pos']);
          expect(positionOf(bytes)).toEqual({ epoch, offset });
          // msgpackr's defaults too (an app's decoder): past 2^32 a number, as every other the node sends, never a BigInt
          expect(unpack(bytes)).toEqual({ ...event, pos: { epoch, offset } });
          // still the app shape: passed through to msgpack apps as it is, converted once for JSON apps
          expect(appEventBytes(bytes)).toBe(bytes);
          expect(JSON.parse(appEventJson(bytes))).toEqual({ ...event, pos: { epoch, offset } });
        }
      }
    }
  });

  it('reads each event\'s own epoch when epochs alternate, also from a buffer reused after the read', () => {
    const bare = encodeBus(events[0]!);
    const a = withPosition(bare, { epoch: 'aaaaaaaaaaaa', offset: 1 });
    const b = withPosition(bare, { epoch: 'bbbbbbbbbbbb', offset: 2 });
    for (let i = 0; i < 3; i++) {
      expect(positionOf(a)).toEqual({ epoch: 'aaaaaaaaaaaa', offset: 1 });
      expect(positionOf(b)).toEqual({ epoch: 'bbbbbbbbbbbb', offset: 2 });
    }
    // a socket's buffer, read and then filled with the next event of another epoch
    const reused = Buffer.from(a);
    expect(positionOf(reused)?.epoch).toBe('aaaaaaaaaaaa');
    reused.set(b);
    expect(positionOf(reused)?.epoch).toBe('bbbbbbbbbbbb');
    expect(positionOf(a)?.epoch).toBe('aaaaaaaaaaaa');
  });

  it('finds no position in an event without one or of another shape', () => {
    expect(positionOf(encodeBus(events[0]!))).toBeNull();
    expect(positionOf(encodeValue({ kind: 'state', pos: { epoch: 'x', offset: 1 } }))).toBeNull();
    expect(positionOf(Uint8Array.from([0x81]))).toBeNull();
    expect(positionOf(new Uint8Array(0))).toBeNull();
  });

  it('re-encodes an event of another shape (a bare HubEvent from another publisher)', () => {
    const { op: _op, ...bare } = events[0]!;
    const bytes = withPosition(encodeValue(bare), { epoch: 'e1', offset: 3 });
    expect(decodeValue(bytes)).toEqual({ op: 'evt', ...bare, pos: { epoch: 'e1', offset: 3 } });
    expect(positionOf(bytes)).toEqual({ epoch: 'e1', offset: 3 });
  });
});
