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
