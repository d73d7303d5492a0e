/**
 * An instant in a body, as RFC 3339 `date-time` (`2025-01-31T08:00:00Z`, `2025-01-31T09:00:00.5+01:00`).
 * `Date.parse` is not the check: V8 also takes `1` (2001-01-01), `Tuesday 5` and `12/31/2025`, and
 * years past the range `Date` can print.
 */
import { Type } from '@sinclair/typebox';

/** The schema's pattern; `dateTimeMs` also refuses what it lets through but names no day or time (`02-30`, `24:00`). */
export const DATE_TIME_REGEX = '^(\\d{4})-(\\d{2})-(\\d{2})[Tt](\\d{2}):(\\d{2}):(\\d{2})(\\.\\d{1,9})?(?:[Zz]|([+-])(\\d{2}):(\\d{2}))$';

const DATE_TIME = new RegExp(DATE_TIME_REGEX);

export const DATE_TIME_MESSAGE = 'must be an RFC 3339 date-time, such as 2025-01-31T08:00:00Z';

export const DateTime = (description: string) => Type.String({ maxLength: 64, pattern: DATE_TIME_REGEX, description, errorMessage: DATE_TIME_MESSAGE });

/** ms since the epoch; null unless `s` is an RFC 3339 date-time of a real day and time (a leap second counts as the next one). */
export function dateTimeMs(s: string): number | null {
  const m = DATE_TIME.exec(s);
  if (!m) return null;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const offsetH = Number(m[9] ?? 0);
  const offsetM = Number(m[10] ?? 0);
  if (month < 1 || month > 12 || hour > 23 || minute > 59 || second > 60 || offsetH > 23 || offsetM > 59) return null;
  // not Date.UTC, which takes years 0-99 for 1900-1999; a day the month lacks (02-30) rolls into the next one
  const midnight = new Date(0).setUTCFullYear(year, month - 1, day);
  if (day < 1 || new Date(midnight).getUTCMonth() !== month - 1) return null;
  const fraction = m[7] === undefined ? 0 : Math.floor(Number(`0${m[7]}`) * 1000);
  const offset = (m[8] === '-' ? -1 : 1) * (offsetH * 60 + offsetM) * 60_000;
  return midnight + ((hour * 60 + minute) * 60 + second) * 1000 + fraction - offset;
}
