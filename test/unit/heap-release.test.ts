import { describe, expect, it } from 'vitest';
import { HeapRelease, loadGc } from '../../src/compose/heap-release.js';

const turn = () => new Promise((r) => setImmediate(r));

describe('HeapRelease', () => {
  it('collects once per interval, after the refusal that asked was answered', async () => {
    let now = 0;
    let collected = 0;
    const release = new HeapRelease(() => collected++, 5_000, () => now);
    release.pressed();
    expect(collected).toBe(0); // not within the refusal's own turn
    await turn();
    expect(collected).toBe(1);
    now = 4_999;
    release.pressed();
    await turn();
    expect(collected).toBe(1);
    now = 5_000;
    release.pressed();
    release.pressed();
    await turn();
    expect(collected).toBe(2);
    expect(release.count).toBe(2);
    expect(release.seconds).toBeGreaterThanOrEqual(0);
  });

  it('gets V8\'s collection without --expose-gc, and leaves the globals alone', () => {
    const hadGlobal = typeof (globalThis as { gc?: unknown }).gc === 'function';
    const gc = loadGc();
    if (typeof gc !== 'function') throw new Error(gc.unavailable);
    gc();
    expect(typeof (globalThis as { gc?: unknown }).gc === 'function').toBe(hadGlobal);
  });
});
