import { describe, expect, it } from 'vitest';
import { newSecret } from '../../src/api/fleet.js';

describe('a new hub secret', () => {
  it('is 32 base64url characters of 24 bytes, never starting with - (a spreadsheet would read the cell as a formula)', () => {
    // one draw in 64 started with - before: 10,000 draws all missing it had odds of (63/64)^10000
    const secrets = Array.from({ length: 10_000 }, newSecret);
    for (const s of secrets) expect(s).toMatch(/^[A-Za-z0-9_][A-Za-z0-9_-]{31}$/);
    expect(Buffer.from(secrets[0]!, 'base64url')).toHaveLength(24);
    expect(new Set(secrets).size).toBe(secrets.length);
  });
});
