/**
 * A home's export built and serialised in slices (src/api/sliced.ts): the same text as
 * JSON.stringify, with the loop turning between slices; and paced per home
 * (src/api/export-pace.ts): a large export makes its home wait nine times its build, a small one
 * none, the homes waiting forgotten once their wait is over.
 */
import { describe, expect, it } from 'vitest';
import { ExportPace } from '../../src/api/export-pace.js';
import { mapInSlices, stringifyInSlices } from '../../src/api/sliced.js';
import { TierError } from '../../src/errors.js';

describe('stringifyInSlices', () => {
  it('writes what JSON.stringify writes', async () => {
    const docs = [
      {},
      { a: 1, b: 'two', c: null, d: undefined, e: [], f: [1, undefined, () => 1, { g: undefined }], h: { i: [1, 2] }, j: () => 1 },
      { homeId: 'h"\u2028', hubs: [{ hubId: 'x', devices: { lamp: { reported: { on: true } } } }], events: Array.from({ length: 500 }, (_, i) => ({ offset: i, event: { s: `é${i}` } })) },
    ];
    for (const doc of docs) expect(await stringifyInSlices(doc)).toBe(JSON.stringify(doc));
  });

  it('lets the loop turn while a large document is written', async () => {
    const doc = { events: Array.from({ length: 20_000 }, (_, i) => ({ offset: i, event: { text: 'x'.repeat(200), i } })) };
    let turned = false;
    setImmediate(() => (turned = true));
    // a slice of 0 ms: the loop turns at every look at the clock
    const text = await stringifyInSlices(doc, 0);
    expect(turned).toBe(true);
    expect(text).toBe(JSON.stringify(doc));
  });

  it('mapInSlices maps in order, turning between slices', async () => {
    let turned = false;
    setImmediate(() => (turned = true));
    const meter = { ms: 0 };
    expect(await mapInSlices([...Array(100).keys()], (n) => n * 2, 0, meter)).toEqual([...Array(100).keys()].map((n) => n * 2));
    expect(turned).toBe(true);
    // the loop time of its slices, not the turns between them
    expect(meter.ms).toBeGreaterThan(0);
  });
});

describe('ExportPace', () => {
  it('a large export makes its home wait nine times its build; a small one, and other homes, none', () => {
    let now = 0;
    const pace = new ExportPace(0.1, 50, () => now);
    pace.built('small', 49);
    expect(() => pace.check('small')).not.toThrow();
    pace.built('big', 400);
    now = 100;
    let refusal: unknown;
    try {
      pace.check('big');
    } catch (err) {
      refusal = err;
    }
    expect(refusal).toBeInstanceOf(TierError);
    expect(refusal).toMatchObject({ code: 'rate_limited', retryAfterMs: 3_500 });
    expect(() => pace.check('other')).not.toThrow();
    now = 3_600;
    expect(() => pace.check('big')).not.toThrow();
  });

  it('remembers only the homes still waiting', () => {
    let now = 0;
    const pace = new ExportPace(0.1, 50, () => now);
    pace.built('a', 100);
    now = 10_000;
    pace.built('b', 100);
    expect((pace as unknown as { until: Map<string, number> }).until.size).toBe(1);
  });
});
