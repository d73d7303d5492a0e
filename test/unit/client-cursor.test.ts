import { describe, expect, it } from 'vitest';
import type { AppEventMessage } from '../../proto/app.js';
import { HomeCursor } from '../../src/client/cursor.js';
import { backoffDelay, backoffOptions } from '../../src/client/backoff.js';

const evt = (offset: number | null, epoch = 'e1'): AppEventMessage => ({
  op: 'evt',
  kind: 'event',
  home: 'h',
  hub: 'hub',
  device: 'd',
  event: 'press',
  ts: 0,
  ...(offset === null ? {} : { pos: { epoch, offset } }),
});
const offsets = (events: AppEventMessage[]) => events.map((e) => e.pos?.offset ?? null);

describe('HomeCursor: each event once, in offset order', () => {
  it('delivers the next offset, drops duplicates, holds events past a gap until it is filled', () => {
    const c = new HomeCursor();
    expect(c.start({ epoch: 'e1', offset: 4 })).toEqual([]);
    expect(offsets(c.place(evt(5)))).toEqual([5]);
    expect(offsets(c.place(evt(5)))).toEqual([]);
    expect(offsets(c.place(evt(3)))).toEqual([]);
    expect(offsets(c.place(evt(8)))).toEqual([]);
    expect(offsets(c.place(evt(7)))).toEqual([]);
    expect(c.gapOpen).toBe(true);
    expect(offsets(c.place(evt(6)))).toEqual([6, 7, 8]);
    expect(c.gapOpen).toBe(false);
    expect(c.pos).toEqual({ epoch: 'e1', offset: 8 });
  });

  it('delivers events without a position and does not move', () => {
    const c = new HomeCursor();
    c.start({ epoch: 'e1', offset: 1 });
    expect(offsets(c.place(evt(null)))).toEqual([null]);
    expect(c.pos).toEqual({ epoch: 'e1', offset: 1 });
  });

  it('takes the first position it sees when it has none, and keeps the larger of it and a later start', () => {
    const c = new HomeCursor();
    expect(offsets(c.place(evt(10)))).toEqual([10]);
    c.start({ epoch: 'e1', offset: 9 });
    expect(c.pos).toEqual({ epoch: 'e1', offset: 10 });
    c.start({ epoch: 'e1', offset: 12 });
    expect(c.pos).toEqual({ epoch: 'e1', offset: 12 });
  });

  it('does not deliver an event of another epoch; a jump into that epoch releases what follows it', () => {
    const c = new HomeCursor();
    c.start({ epoch: 'e1', offset: 1 });
    expect(offsets(c.place(evt(2, 'e2')))).toEqual([]);
    expect(offsets(c.place(evt(4)))).toEqual([]); // held: past a gap in e1
    expect(c.jump({ epoch: 'e2', offset: 1 })).toEqual([]); // held events of e1 mean nothing in e2
    expect(c.gapOpen).toBe(false);
    expect(offsets(c.place(evt(2, 'e2')))).toEqual([2]);
  });

  it('a jump drops held events up to the new position and releases those right after it', () => {
    const c = new HomeCursor();
    c.start({ epoch: 'e1', offset: 0 });
    for (const o of [3, 5, 6]) c.place(evt(o));
    expect(offsets(c.jump({ epoch: 'e1', offset: 4 }))).toEqual([5, 6]);
    expect(c.gapOpen).toBe(false);
  });
});

describe('backoff: exponential, capped, jittered', () => {
  const o = backoffOptions({ initialMs: 100, maxMs: 1_000, factor: 2, jitter: 0.5 });

  it('stays within [ceiling × (1 − jitter), ceiling] for the extremes of the random source', () => {
    const ceilings = [100, 200, 400, 800, 1_000, 1_000];
    ceilings.forEach((ceiling, attempt) => {
      expect(backoffDelay(attempt, o, () => 0)).toBe(ceiling);
      expect(backoffDelay(attempt, o, () => 0.999_999)).toBe(Math.round(ceiling * 0.5));
    });
    for (let attempt = 0; attempt < 60; attempt++) {
      for (const r of [0, 0.25, 0.5, 0.75, 0.999]) {
        const d = backoffDelay(attempt, o, () => r);
        const ceiling = Math.min(1_000, 100 * 2 ** attempt);
        expect(d).toBeGreaterThanOrEqual(Math.floor(ceiling / 2));
        expect(d).toBeLessThanOrEqual(ceiling);
      }
    }
  });

  it('spreads clients: different random draws give different delays', () => {
    const draws = [0.1, 0.4, 0.7].map((r) => backoffDelay(3, o, () => r));
    expect(new Set(draws).size).toBe(3);
  });

  it('full jitter reaches down to 0; no jitter is the ceiling exactly', () => {
    expect(backoffDelay(2, backoffOptions({ initialMs: 100, jitter: 1 }), () => 0.999_999)).toBe(0);
    expect(backoffDelay(2, backoffOptions({ initialMs: 100, jitter: 0 }), () => 0.7)).toBe(400);
  });

  it('refuses options out of range, naming them', () => {
    expect(() => backoffOptions({ jitter: 2 })).toThrow(/backoff\.jitter/);
    expect(() => backoffOptions({ initialMs: 0 })).toThrow(/backoff\.initialMs/);
    expect(() => backoffOptions({ initialMs: 100, maxMs: 10 })).toThrow(/backoff\.maxMs/);
    expect(() => backoffOptions({ factor: 0.5 })).toThrow(/backoff\.factor/);
  });
});
