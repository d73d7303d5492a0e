import { describe, expect, it } from 'vitest';
import type { AppEventMessage } from '../../proto/app.js';
import { HomeCursor } from '../../src/client/cursor.js';
import { backoffDelay, backoffOptions } from '../../src/client/backoff.js';
import { appEventJson, withPosition } from '../../src/protocol/app-events.js';
import { encodeBus } from '../../src/protocol/codec.js';
import { encodeStateEvent } from '../../src/protocol/state-event.js';

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
/** What the app is handed of what the cursor returned: not the events it marked skipped. */
const handed = (c: HomeCursor, events: AppEventMessage[]) => events.filter((e) => !c.skipped.has(e));

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

  it('does not deliver again, at its position, an event it delivered without one', () => {
    // the history stored an event as Redis died: it went out live without a position, newer ones
    // followed, and a gap's fill hands it over again with its position once Redis is back
    const state = (ts: number, offset: number | null): AppEventMessage => ({
      op: 'evt',
      kind: 'state',
      home: 'h',
      hub: 'hub',
      device: 'd',
      attrs: { on: ts % 2 === 0 },
      version: ts,
      ts,
      ...(offset === null ? {} : { pos: { epoch: 'e1', offset } }),
    });
    const c = new HomeCursor();
    c.start({ epoch: 'e1', offset: 1 });
    const returned = [state(1, null), state(2, null), state(3, null), state(1, 2), state(4, 3)].flatMap((e) => c.place(e));
    // the one again is returned in its place, marked skipped: the app's position moves past it
    expect(returned.map((e) => [e.ts, e.pos?.offset ?? null, c.skipped.has(e)])).toEqual([[1, null, false], [2, null, false], [3, null, false], [1, 2, true], [4, 3, false]]);
    expect(c.pos).toEqual({ epoch: 'e1', offset: 3 });
    // once only: the same content at a later position is another event
    expect(offsets(c.place(state(1, 4)))).toEqual([4]);
    // held past a gap, then released by the event that fills it
    c.place(state(7, null));
    expect(offsets(c.place(state(7, 6)))).toEqual([]);
    const released = c.place(state(5, 5));
    expect(released.map((e) => [e.pos?.offset, c.skipped.has(e)])).toEqual([[5, false], [6, true]]);
    expect(c.pos).toEqual({ epoch: 'e1', offset: 6 });
  });

  it('delivers a second press of the same content but another `src` (another hub frame) after one without a position', () => {
    // a hub whose clock is not set repeats `ts`: only `src` tells its second press from the first
    // coming again (review "retries")
    const press = (src: string, offset: number | null) => ({ ...evt(offset), ts: 0, src }) as AppEventMessage;
    const c = new HomeCursor();
    c.start({ epoch: 'e1', offset: 10 });
    expect(handed(c, c.place(press('AbCdEfGh.1', null)))).toHaveLength(1);
    expect(offsets(handed(c, c.place(press('AbCdEfGh.2', 11))))).toEqual([11]);
    // the first coming again with its position is still known as such
    c.place(press('AbCdEfGh.3', null));
    expect(handed(c, c.place(press('AbCdEfGh.3', 12)))).toEqual([]);
  });

  it('knows the node\'s JSON of an event with its position for the same event as without one', () => {
    // the content compared is what the node sends: its bus bytes, with `pos` put in or not
    const sent: AppEventMessage[] = [
      { op: 'evt', kind: 'state', home: 'h', hub: 'hub', device: 'd', attrs: { on: true, level: 0.25, name: 'x' }, version: 9, ts: 1_700_000_000_123 },
      { op: 'evt', kind: 'event', home: 'h', hub: 'hub', device: 'd', event: 'press', params: { n: 2 }, ts: 1_700_000_000_124 },
    ];
    for (const event of sent) {
      const bare = event.kind === 'state' ? encodeStateEvent(event) : encodeBus(event);
      const c = new HomeCursor();
      c.start({ epoch: 'e1', offset: 0 });
      expect(c.place(JSON.parse(appEventJson(bare)))).toHaveLength(1);
      expect(handed(c, c.place(JSON.parse(appEventJson(withPosition(bare, { epoch: 'e1', offset: 1 })))))).toEqual([]);
      expect(c.pos).toEqual({ epoch: 'e1', offset: 1 });
    }
  });

  it('remembers the newest 64 events it delivered without a position', () => {
    const c = new HomeCursor();
    c.start({ epoch: 'e1', offset: 0 });
    const at = (ts: number, offset: number | null): AppEventMessage => ({ ...evt(offset), ts });
    for (let ts = 1; ts <= 65; ts++) c.place(at(ts, null));
    expect(offsets(handed(c, c.place(at(1, 1))))).toEqual([1]);
    expect(offsets(handed(c, c.place(at(2, 2))))).toEqual([]);
  });

  it('forgets them after 1,000 events with a position', () => {
    const c = new HomeCursor();
    c.start({ epoch: 'e1', offset: 0 });
    const at = (ts: number, offset: number | null): AppEventMessage => ({ ...evt(offset), ts });
    c.place(at(-1, null));
    c.place(at(-2, null));
    for (let o = 1; o <= 999; o++) expect(offsets(handed(c, c.place(at(o, o))))).toEqual([o]);
    expect(offsets(handed(c, c.place(at(-1, 1000))))).toEqual([]);
    c.place(at(-3, null));
    for (let o = 1001; o <= 2001; o++) c.place(at(o, o));
    expect(offsets(handed(c, c.place(at(-3, 2002))))).toEqual([2002]);
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
