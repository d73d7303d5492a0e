import { describe, expect, it } from 'vitest';
import { MemoryDirectory } from '../../src/ports/directory/directory-memory.js';

describe('MemoryDirectory across a restart', () => {
  it("a hub's first claim in the process goes on from continueFrom; later claims from its own count", async () => {
    const asked: string[] = [];
    const stored: Record<string, number> = { a: 7 };
    const directory = new MemoryDirectory(15_000, Date.now, (hubId) => (asked.push(hubId), stored[hubId] ?? 0));
    expect((await directory.claim('a', 'n1')).epoch).toBe(8);
    expect((await directory.claim('b', 'n1')).epoch).toBe(1);
    await directory.release('a', 'n1', 8);
    // remembered in the process from here on: not asked again, even if what was stored moved
    stored.a = 100;
    expect((await directory.claim('a', 'n1')).epoch).toBe(9);
    expect(asked).toEqual(['a', 'b']);
  });

  it('without continueFrom a fresh directory starts every hub at 1', async () => {
    expect((await new MemoryDirectory().claim('a', 'n1')).epoch).toBe(1);
  });
});
