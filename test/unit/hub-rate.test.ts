import { describe, expect, it } from 'vitest';
import { admit, admitPing, fillBudget, spend, type RateBudget, type RateLimit } from '../../src/actors/hub-rate.js';
import type { HubToServerFrame } from '../../proto/frames.js';

const report: HubToServerFrame = { t: 4, s: 1, r: {} };
const result: HubToServerFrame = { t: 8, id: 1, ok: true };
const heartbeat: HubToServerFrame = { t: 3 };
const T = 1_700_000_000_000;

/** A budget as a session holds it, with the gate's answer for one frame. */
class Gate implements RateBudget {
  rateTokens = 0;
  rateRefilled = 0;
  rateHeartbeat = 0;
  rateViolations: RateBudget['rateViolations'] = null;
  /** ids of the commands the session waits for */
  readonly pending = new Set<number>([1]);
  constructor(rate: RateLimit, t: number) {
    fillBudget(this, rate, t);
  }
  awaits(commandId: number): boolean {
    return this.pending.has(commandId);
  }
  admit(frame: HubToServerFrame, now: number, rate: RateLimit) {
    return admit(this, frame, now, rate);
  }
}

describe('the rate budget', () => {
  it('lets the burst through, then refuses until tokens refill', () => {
    const rate = { ratePerSec: 10, rateBurst: 2 };
    const gate = new Gate(rate, T);
    expect([gate.admit(report, T, rate), gate.admit(report, T, rate), gate.admit(report, T, rate)]).toEqual(['pass', 'pass', 'refuse']);
    expect(gate.admit(report, T + 100, rate)).toBe('pass'); // 100 ms at 10/s: one token
  });

  it('charges a report one token per 64 devices it changes (at least one, at most the burst): frames of 256 devices were 12,800 events a second (review complexity)', () => {
    const devices = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`d${i}`, { on: true }]));
    const rate = { ratePerSec: 50, rateBurst: 12 };
    const gate = new Gate(rate, T);
    // 64 devices: one token, as one device (as when frames alone were counted)
    for (let i = 0; i < 8; i++) expect(gate.admit({ t: 4, s: i + 1, r: devices(64) }, T, rate)).toBe('pass');
    // 4 left: 65 devices take two, 256 would take 4
    expect(gate.admit({ t: 4, s: 9, r: devices(65) }, T, rate)).toBe('pass');
    expect(gate.rateTokens).toBe(2_000);
    expect(gate.admit({ t: 4, s: 10, r: devices(256) }, T, rate)).toBe('refuse');
    expect(gate.admit({ t: 4, s: 10, r: devices(256) }, T + 40, rate)).toBe('pass'); // 40 ms at 50/s: two tokens more
    expect(gate.rateTokens).toBe(0);
    // more devices than the burst's tokens (a frame of 1,000): passes a full bucket, never refused for good
    const small = { ratePerSec: 50, rateBurst: 10 };
    const full = new Gate(small, T);
    expect(full.admit({ t: 4, s: 1, r: devices(1_000) }, T, small)).toBe('pass');
    expect(full.rateTokens).toBe(0);
  });

  it('never charges results of pending commands, and one heartbeat per second', () => {
    const rate = { ratePerSec: 0.001, rateBurst: 1 };
    const gate = new Gate(rate, T);
    for (let i = 0; i < 50; i++) expect(gate.admit(result, T, rate)).toBe('pass');
    expect(gate.admit(heartbeat, T, rate)).toBe('pass'); // free
    expect(gate.admit(heartbeat, T + 10, rate)).toBe('pass'); // charged: the one token
    expect(gate.admit(heartbeat, T + 20, rate)).toBe('refuse');
    expect(gate.admit(heartbeat, T + 1_000, rate)).toBe('pass'); // free again a second after the last free one
  });

  it('lets one WebSocket ping a second through free (the heartbeat\'s allowance), charges the others, and closes a flood past the burst of refusals (review conn)', () => {
    const rate = { ratePerSec: 0.001, rateBurst: 2 };
    const gate = new Gate(rate, T);
    expect(admitPing(gate, T, rate)).toBe('pass'); // free
    expect([admitPing(gate, T + 1, rate), admitPing(gate, T + 2, rate)]).toEqual(['pass', 'pass']); // the two tokens
    expect([admitPing(gate, T + 3, rate), admitPing(gate, T + 4, rate), admitPing(gate, T + 5, rate)]).toEqual(['refuse', 'refuse', 'close']);
    // a heartbeat and a ping share the one free a second
    const other = new Gate({ ratePerSec: 0.001, rateBurst: 1 }, T);
    expect(other.admit(heartbeat, T, rate)).toBe('pass');
    expect(admitPing(other, T + 10, { ratePerSec: 0.001, rateBurst: 1 })).toBe('pass'); // charged: the one token
    expect(admitPing(other, T + 1_000, { ratePerSec: 0.001, rateBurst: 1 })).toBe('pass'); // free again
  });

  it('charges a result for no pending command like any frame: refused past the budget, closed past the burst of refusals', () => {
    const rate = { ratePerSec: 0.001, rateBurst: 2 };
    const gate = new Gate(rate, T);
    const stray: HubToServerFrame = { t: 8, id: 999, ok: true };
    const verdicts = [0, 1, 2, 3, 4].map(() => gate.admit(stray, T, rate));
    expect(verdicts).toEqual(['pass', 'pass', 'refuse', 'refuse', 'close']);
    // the answer to a command still waiting passes, budget spent or not
    expect(gate.admit(result, T, rate)).toBe('pass');
    gate.pending.delete(1); // answered: the same id again is stray
    expect(gate.admit(result, T, rate)).toBe('close');
  });

  it('never charges an error frame answering a pending command (ref = its id); charges one naming none like any frame', () => {
    const rate = { ratePerSec: 0.001, rateBurst: 1 };
    const gate = new Gate(rate, T);
    const refusal: HubToServerFrame = { t: 10, c: 103, e: 'invalid_field', tmp: false, ref: 1 };
    for (let i = 0; i < 10; i++) expect(gate.admit(refusal, T, rate)).toBe('pass');
    const stray: HubToServerFrame = { t: 10, c: 103, e: 'invalid_field', tmp: false, ref: 999 };
    const unnamed: HubToServerFrame = { t: 10, c: 500, e: 'internal', tmp: true };
    expect([gate.admit(stray, T, rate), gate.admit(unnamed, T, rate), gate.admit(stray, T, rate)]).toEqual(['pass', 'refuse', 'close']);
  });

  it('gives a result read only as far as its id (spend) the verdict admit gives a frame that is not free', () => {
    const rate = { ratePerSec: 0.001, rateBurst: 1 };
    const a = new Gate(rate, T);
    const b = new Gate(rate, T);
    const byFrame = [0, 1, 2, 3].map(() => a.admit(report, T, rate));
    const bySpend = [0, 1, 2, 3].map(() => spend(b, T, rate));
    expect(bySpend).toEqual(byFrame);
    expect(bySpend).toEqual(['pass', 'refuse', 'close', 'close']);
  });

  it('closes only after more refusals than the burst within one 10 s window', () => {
    const rate = { ratePerSec: 0.001, rateBurst: 2 };
    const gate = new Gate(rate, T);
    gate.admit(report, T, rate);
    gate.admit(report, T, rate);
    expect([gate.admit(report, T, rate), gate.admit(report, T, rate)]).toEqual(['refuse', 'refuse']);
    // a new window: the count starts again
    expect([gate.admit(report, T + 10_001, rate), gate.admit(report, T + 10_001, rate)]).toEqual(['refuse', 'refuse']);
    expect(gate.admit(report, T + 10_002, rate)).toBe('close');
  });
});
