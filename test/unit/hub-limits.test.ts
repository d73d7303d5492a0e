import { describe, expect, it } from 'vitest';
import { checkReport, DEFAULT_HUB_LIMITS, shadowBytes, type ReportedShadow } from '../../src/actors/hub-limits.js';
import { TierError } from '../../src/errors.js';
import type { Attrs, ReportFrame } from '../../proto/frames.js';

/** A device `m` holding a0..a63: the 64 attributes the default limit allows. */
function fullDevice(): ReportedShadow {
  const attrs: Attrs = {};
  for (let i = 0; i < DEFAULT_HUB_LIMITS.attrsPerDevice; i++) attrs[`a${i}`] = i;
  return ['m', attrs];
}

function check(r: ReportFrame['r'], shadow: ReportedShadow): TierError | number {
  return checkReport({ t: 4, s: 1, r }, shadow, 1, shadowBytes(shadow), DEFAULT_HUB_LIMITS);
}

describe('checkReport: attributes per device', () => {
  it("counts a nil that removes a stored attribute before the patch's new ones, wherever it stands", () => {
    for (const r of [{ m: { a0: null, z: 1 } }, { m: { z: 1, a0: null } }]) {
      const shadow = fullDevice();
      const before = shadowBytes(shadow);
      // a0 (2 + 8 bytes) goes, z (1 + 8) comes: 64 attributes after
      expect(check(r, shadow)).toBe(before - 1);
    }
  });

  it('refuses a 65th attribute, naming it, when the nil removes nothing stored', () => {
    const refused = check({ m: { nope: null, z: 1 } }, fullDevice());
    expect(refused).toBeInstanceOf(TierError);
    expect(refused).toMatchObject({ code: 'limit_exceeded', field: 'r.m.z' });
  });

  it('frees one slot per removal, not more', () => {
    const refused = check({ m: { y: 1, a0: null, z: 2 } }, fullDevice());
    expect(refused).toMatchObject({ code: 'limit_exceeded', field: 'r.m.z' });
  });
});

describe('checkReport: string values and shadow bytes (held only by the compiled node\'s tests until a mutation review, 2026-12-06)', () => {
  const limits = { ...DEFAULT_HUB_LIMITS, valueBytes: 10, shadowBytes: 100 };
  const empty: ReportedShadow = ['x', {}];

  it('refuses a string value past valueBytes, naming it; one at the limit passes', () => {
    expect(checkReport({ t: 4, s: 1, r: { d: { s: 'a'.repeat(11) } } }, empty, 1, 0, limits)).toMatchObject({ code: 'limit_exceeded', field: 'r.d.s' });
    expect(checkReport({ t: 4, s: 1, r: { d: { s: 'a'.repeat(10) } } }, empty, 1, 0, limits)).toBe(1 + 1 + 10);
  });

  it('refuses a report that would take the shadow past shadowBytes, counting what it replaces and removes', () => {
    // 1 device id byte + 9 attributes of 1 + 10 bytes = 100: at the limit
    const nine: Attrs = Object.fromEntries(Array.from({ length: 9 }, (_, i) => [String(i), 'a'.repeat(10)]));
    expect(checkReport({ t: 4, s: 1, r: { d: nine } }, empty, 1, 0, limits)).toBe(100);
    expect(checkReport({ t: 4, s: 1, r: { d: { ...nine, z: 1 } } }, empty, 1, 0, limits)).toMatchObject({ code: 'limit_exceeded', field: 'r' });
    // a shadow at the limit takes a value replaced by a shorter one, and a new one once another is removed
    const full: ReportedShadow = ['d', nine];
    expect(checkReport({ t: 4, s: 1, r: { d: { '0': 'b' } } }, full, 1, 100, limits)).toBe(91);
    expect(checkReport({ t: 4, s: 1, r: { d: { '0': null, z: 1 } } }, full, 1, 100, limits)).toBe(100 - 11 + 9);
  });
});
