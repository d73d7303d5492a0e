import { describe, expect, it } from 'vitest';
import { RateGate } from '../../src/actors/hub-rate.js';
import type { HubToServerFrame } from '../../proto/frames.js';

const report: HubToServerFrame = { t: 4, s: 1, r: {} };
const result: HubToServerFrame = { t: 8, id: 1, ok: true };
const heartbeat: HubToServerFrame = { t: 3 };
const T = 1_700_000_000_000;

describe('RateGate', () => {
  it('lets the burst through, then refuses until tokens refill', () => {
    const gate = new RateGate({ ratePerSec: 10, rateBurst: 2 }, T);
    expect([gate.admit(report, T), gate.admit(report, T), gate.admit(report, T)]).toEqual(['pass', 'pass', 'refuse']);
    expect(gate.admit(report, T + 100)).toBe('pass'); // 100 ms at 10/s: one token
  });

  it('never charges results, and one heartbeat per second', () => {
    const gate = new RateGate({ ratePerSec: 0.001, rateBurst: 1 }, T);
    for (let i = 0; i < 50; i++) expect(gate.admit(result, T)).toBe('pass');
    expect(gate.admit(heartbeat, T)).toBe('pass'); // free
    expect(gate.admit(heartbeat, T + 10)).toBe('pass'); // charged: the one token
    expect(gate.admit(heartbeat, T + 20)).toBe('refuse');
    expect(gate.admit(heartbeat, T + 1_000)).toBe('pass'); // free again a second after the last free one
  });

  it('closes only after more refusals than the burst within one 10 s window', () => {
    const gate = new RateGate({ ratePerSec: 0.001, rateBurst: 2 }, T);
    gate.admit(report, T);
    gate.admit(report, T);
    expect([gate.admit(report, T), gate.admit(report, T)]).toEqual(['refuse', 'refuse']);
    // a new window: the count starts again
    expect([gate.admit(report, T + 10_001), gate.admit(report, T + 10_001)]).toEqual(['refuse', 'refuse']);
    expect(gate.admit(report, T + 10_002)).toBe('close');
  });
});
