import { expect, it } from 'vitest';
import { MemoryNonceStore } from '../../src/ports/hub-registry/hub-registry-memory.js';

/** The memory nonce store (DATA_DIR=:memory:) forgets what expired as new claims come: its map stays bounded (a mutation review of 2026-12-06 found the sweep held by no test). */

it('holds the claims of one ttl, not every claim ever made', async () => {
  let wall = 1_000_000;
  let steady = 5_000;
  const nonces = new MemoryNonceStore(() => wall, () => steady);
  for (let i = 0; i < 1_000; i++) {
    expect(await nonces.claim(`n-${i}`, 100)).toBe(true);
    wall += 10;
    steady += 10;
  }
  // a claim lives 100 ms and one came every 10 ms: about ten are held
  expect(nonces.size).toBeLessThanOrEqual(11);
  // one still within its ttl is refused, as before
  expect(await nonces.claim('n-999', 100)).toBe(false);
});
