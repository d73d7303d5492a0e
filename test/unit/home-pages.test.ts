/**
 * The walk over a home's hubs that the export, the erasure and the rules' replay share: every page
 * until a short one, and a listing whose cursor does not move on stops with an error instead of
 * reading the same page for ever.
 */
import { describe, expect, it } from 'vitest';
import { homePages } from '../../src/ports/hub-registry/hub-registry.js';

const hubs = (...ids: string[]) => ids.map((hubId) => ({ hubId }));

async function walk(read: (after: string | undefined) => Promise<Array<{ hubId: string }>>, size: number): Promise<string[][]> {
  const out: string[][] = [];
  for await (const page of homePages('home-1', read, size)) out.push(page.map((h) => h.hubId));
  return out;
}

describe('homePages', () => {
  it('reads after the last id of each page until a short one, a full last page followed by an empty one', async () => {
    const all = ['a', 'b', 'c', 'd'];
    const asked: Array<string | undefined> = [];
    const read = async (after: string | undefined) => {
      asked.push(after);
      return hubs(...all.filter((id) => after === undefined || id > after).slice(0, 2));
    };
    expect(await walk(read, 2)).toEqual([['a', 'b'], ['c', 'd'], []]);
    expect(asked).toEqual([undefined, 'b', 'd']);
    asked.length = 0;
    expect(await walk(read, 3)).toEqual([['a', 'b']]);
  });

  it('stops with an error when the cursor does not move on', async () => {
    await expect(walk(async () => hubs('a', 'b'), 2)).rejects.toMatchObject({ code: 'internal', message: expect.stringContaining('listed out of order (b after b)') });
  });
});
