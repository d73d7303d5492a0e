import { describe, expect, it } from 'vitest';
import { MemoryDirectory } from '../../src/ports/directory/directory-memory.js';

describe('MemoryDirectory across a restart', () => {
  it("a hub's first claim in the process goes on from continueFrom; later claims from its own count", async () => {
    const asked: string[] = [];
    const stored: Record<string, number> = { a: 7 };
    const directory = new MemoryDirectory(15_000, Date.now, (hubId) => (asked.push(hubId), stored[hubId] ?? 0));
    expect((await directory.claim('a', 'n1')).epoch).toBe(8);
    expect((await directory.claim('b', 'n1')).epoch).toBe(1);
    // released while the store holds less (the session wrote nothing): remembered in the process
    // from here on, and the claim not asked again, even if what was stored moved
    await directory.release('a', 'n1', 8);
    stored.a = 100;
    expect((await directory.claim('a', 'n1')).epoch).toBe(9);
    expect(asked).toEqual(['a', 'b', 'a']);
  });

  it('a hub released at an epoch the store remembers keeps no entry: its next claim goes on from the store (one number per hub ever connected had stayed)', async () => {
    const stored: Record<string, number> = {};
    const directory = new MemoryDirectory(15_000, Date.now, (hubId) => stored[hubId] ?? 0);
    for (let i = 0; i < 100; i++) {
      const { epoch } = await directory.claim(`h${i}`, 'n1');
      stored[`h${i}`] = epoch; // the session wrote: the shadow store's fence holds its epoch
      await directory.release(`h${i}`, 'n1', epoch);
    }
    expect(directory.size).toBe(0);
    expect((await directory.claim('h5', 'n1')).epoch).toBe(2);
    expect(await directory.lookup('h6')).toBeNull();
  });

  it('without continueFrom a fresh directory starts every hub at 1', async () => {
    expect((await new MemoryDirectory().claim('a', 'n1')).epoch).toBe(1);
  });
});
