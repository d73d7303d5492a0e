/**
 * `before` of a token revocation: an RFC 3339 date-time of a real instant within 30 days of now,
 * or refused `invalid_field` naming `before` (V8's `Date.parse` took `1` for 2001, and a year
 * past what `Date` can print stored the revocation and then answered 500).
 */
import { describe, expect, it } from 'vitest';
import { revokedBefore } from '../../src/api/fleet-routes.js';
import { TierError } from '../../src/errors.js';
import { dateTimeMs } from '../../src/schemas/date-time.js';

const NOW = Date.parse('2025-06-15T12:00:00.000Z');
const DAY = 86_400_000;

describe('RFC 3339 date-times', () => {
  it('reads a real instant with Z or an offset, in any case, with up to 9 fraction digits', () => {
    expect(dateTimeMs('2025-01-31T08:00:00Z')).toBe(Date.parse('2025-01-31T08:00:00.000Z'));
    expect(dateTimeMs('2025-01-31t09:30:00.5+01:30')).toBe(Date.parse('2025-01-31T08:00:00.500Z'));
    expect(dateTimeMs('2025-01-31T03:00:00.123456789-05:00')).toBe(Date.parse('2025-01-31T08:00:00.123Z'));
    expect(dateTimeMs('2024-02-29T00:00:00z')).toBe(Date.parse('2024-02-29T00:00:00.000Z'));
    expect(dateTimeMs('0050-01-01T00:00:00Z')).toBe(Date.parse('0050-01-01T00:00:00.000Z'));
  });

  it.each(['1', '2026', 'Tuesday 5', '12/31/2025', 'yesterday', '', '2025-01-31', '2025-01-31T08:00:00', '2025-01-31 08:00:00Z', '2025-01-31T08:00Z', '2025-02-29T00:00:00Z', '2025-04-31T00:00:00Z', '2025-00-10T00:00:00Z', '2025-13-01T00:00:00Z', '2025-01-00T00:00:00Z', '2025-01-31T24:00:00Z', '2025-01-31T08:60:00Z', '2025-01-31T08:00:00+24:00', '2025-01-31T08:00:00.Z', '+275760-09-13T00:00:00.000Z', '-271821-04-20T00:00:00.000Z', '２０２５-01-31T08:00:00Z'])(
    'refuses %j',
    (s) => expect(dateTimeMs(s)).toBeNull(),
  );
});

describe('a revocation’s before', () => {
  const refusal = (before: string) => {
    try {
      revokedBefore(before, NOW);
    } catch (err) {
      return err instanceof TierError ? { code: err.code, field: err.field, message: err.message } : err;
    }
    return null;
  };

  it('defaults to now, in whole seconds, and takes an instant within 30 days either side', () => {
    expect(revokedBefore(undefined, NOW + 999)).toBe(NOW / 1000);
    expect(revokedBefore('2025-06-14T12:00:00.900Z', NOW)).toBe(NOW / 1000 - 86_400);
    expect(revokedBefore(new Date(NOW + 30 * DAY).toISOString(), NOW)).toBe(NOW / 1000 + 30 * 86_400);
    expect(revokedBefore(new Date(NOW - 30 * DAY).toISOString(), NOW)).toBe(NOW / 1000 - 30 * 86_400);
  });

  it('refuses what is not an RFC 3339 date-time, and instants more than 30 days away, naming before', () => {
    for (const s of ['1', 'Tuesday 5', '12/31/2025', '+275760-09-13T00:00:00.000Z']) {
      expect(refusal(s), s).toEqual({ code: 'invalid_field', field: 'before', message: 'before: must be an RFC 3339 date-time, such as 2025-01-31T08:00:00Z' });
    }
    for (const ms of [NOW + 30 * DAY + 1000, NOW - 30 * DAY - 1000, Date.parse('9999-12-31T23:59:59Z'), Date.parse('2001-01-01T00:00:00Z')]) {
      expect(refusal(new Date(ms).toISOString()), new Date(ms).toISOString()).toEqual({ code: 'invalid_field', field: 'before', message: 'before: must be within 30 days of now (tokens live at most that long)' });
    }
  });
});
