/**
 * A device's desired state is met by what its hub reports. A hub that holds a fraction in a C
 * `float` writes float32 (PROTOCOL.md §1): compared exactly, 21.3 never met 21.299999237060547,
 * and every reconnect's welcome sent the setpoint again (review "msgpack").
 */
import { describe, expect, it } from 'vitest';
import { decodeValue } from '../../src/protocol/codec.js';
import { desiredDelta, hubDelta, reportedMeets } from '../../src/ports/shadow-store/shadow-store.js';

/** 21.3 as a C firmware's msgpack encoder writes a `float`: 0xca and four bytes, decoded as the node decodes it. */
const float32 = (n: number): number => {
  const bytes = Buffer.alloc(5);
  bytes[0] = 0xca;
  bytes.writeFloatBE(n, 1);
  return decodeValue(bytes) as number;
};

describe('desired state met by a report', () => {
  it('takes a float32 report of a fraction as the value it was sent, both ways', () => {
    expect(float32(21.3)).not.toBe(21.3);
    expect(desiredDelta({ desired: { setpoint: 21.3 }, reported: { setpoint: float32(21.3) } })).toBeNull();
    // desired written as float32 by a msgpack app, reported as float64 by the hub
    expect(desiredDelta({ desired: { setpoint: float32(21.3) }, reported: { setpoint: 21.3 } })).toBeNull();
    expect(hubDelta({ thermo: { desired: { setpoint: 21.3, mode: 'heat' }, reported: { setpoint: float32(21.3), mode: 'heat' } } } as never)).toEqual({});
  });

  it('still asks for what differs by more than a float32 rounds: another value, an integer, another type', () => {
    expect(desiredDelta({ desired: { setpoint: 21.3 }, reported: { setpoint: float32(21.4) } })).toEqual({ setpoint: 21.3 });
    // float32 holds integers exactly only to 2^24: 16,777,217 is no 16,777,216
    expect(reportedMeets(16_777_216, 16_777_217)).toBe(false);
    expect(reportedMeets('21.3', 21.3)).toBe(false);
    expect(reportedMeets(null, 21.3)).toBe(false);
    expect(desiredDelta({ desired: { on: true, level: 3 }, reported: { level: 3 } })).toEqual({ on: true });
  });
});
