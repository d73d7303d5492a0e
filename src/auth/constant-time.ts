import { timingSafeEqual } from 'node:crypto';

/** Equal bytes, compared in constant time once the lengths match (a length is not a secret here). */
export function sameBytes(given: Buffer, expected: Buffer): boolean {
  return given.length === expected.length && timingSafeEqual(given, expected);
}
