/**
 * The revocation list's pages from one read and sort of the set (src/api/revocation-list.ts): each
 * page read and sorted the whole set, at 1,000,000 seconds of the loop a page (review diff18).
 */
import { expect, it } from 'vitest';
import type { TokenRevocation } from '../../proto/subjects.js';
import { RevocationPages, revocationPage, revocationsQuery, type RevocationsQuery } from '../../src/api/revocation-list.js';

const set = (n: number): TokenRevocation[] => Array.from({ length: n }, (_, i) => ({ jti: `j-${i}`, exp: 2_000_000_000 + (i % 7) }));
const query = (after?: string | null): RevocationsQuery => revocationsQuery(new URLSearchParams(after ? `limit=10&after=${after}` : 'limit=10'));

it('pages through every revocation once from one read, in the order a page of the whole set gives', async () => {
  const all = set(95);
  let reads = 0;
  const pages = new RevocationPages(async () => (reads++, all));
  const listed: string[] = [];
  let next: string | null = null;
  do {
    const page = await pages.page(query(next));
    listed.push(...page.revocations.map((r) => r.jti!));
    next = page.next;
  } while (next !== null);
  expect(reads).toBe(1);
  expect(listed).toHaveLength(95);
  expect(new Set(listed).size).toBe(95);
  expect(listed).toEqual(revocationPage(all, { limit: 1_000 }).revocations.map((r) => r.jti));
});

it('reads again after keepMs, and at once after a revocation here; a read begun before one is not kept', async () => {
  let now = 0;
  let all = set(3);
  let reads = 0;
  let hold: (() => void) | undefined;
  const pages = new RevocationPages(
    async () => {
      reads++;
      if (hold === undefined) return all;
      const snapshot = all;
      await new Promise<void>((r) => (hold = r));
      return snapshot;
    },
    30_000,
    () => now,
  );
  expect((await pages.page(query())).total).toBe(3);
  now += 29_999;
  expect((await pages.page(query())).total).toBe(3);
  expect(reads).toBe(1);
  now += 1;
  all = set(4);
  expect((await pages.page(query())).total).toBe(4);
  expect(reads).toBe(2);
  all = set(5);
  pages.changed();
  expect((await pages.page(query())).total).toBe(5);
  expect(reads).toBe(3);
  // a read under way when a revocation is made: its answer serves its page, not the next
  hold = () => undefined;
  pages.changed();
  const slow = pages.page(query());
  await new Promise((r) => setImmediate(r));
  all = set(6);
  pages.changed();
  hold();
  expect((await slow).total).toBe(5);
  hold = undefined;
  expect((await pages.page(query())).total).toBe(6);
});
