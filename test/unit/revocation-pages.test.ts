/**
 * The revocation list's pages from one read and sort of the set (src/api/revocation-list.ts): each
 * page read and sorted the whole set, at 1,000,000 seconds of the loop a page (review diff18).
 */
import { expect, it, vi } from 'vitest';
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

it('keeps the list keepMs and then lets it go; a revocation made here goes in at once, one made during a read too', async () => {
  vi.useFakeTimers();
  try {
    let all = set(3);
    let reads = 0;
    let release: (() => void) | undefined;
    const pages = new RevocationPages(async () => {
      reads++;
      const snapshot = all;
      if (release !== undefined) await new Promise<void>((r) => (release = r));
      return snapshot;
    }, 30_000);
    expect((await pages.page(query())).total).toBe(3);
    // another node's revocation: seen once the kept list is let go
    all = set(4);
    vi.advanceTimersByTime(29_999);
    expect((await pages.page(query())).total).toBe(3);
    vi.advanceTimersByTime(1);
    expect((await pages.page(query())).total).toBe(4);
    expect(reads).toBe(2);
    // this node's: at once, in its place, without a read; one of the same key replaced
    pages.added({ jti: 'new', exp: 2_100_000_000 });
    pages.added({ jti: 'j-0', exp: 2_100_000_001 });
    const page = await pages.page(query());
    expect(page.total).toBe(5);
    expect(page.revocations.slice(0, 2).map((r) => r.jti)).toEqual(['j-0', 'new']);
    expect(reads).toBe(2);
    // made while a read was under way (which began before it): in that read's answer
    vi.advanceTimersByTime(30_000);
    release = () => undefined;
    const slow = pages.page(query());
    await vi.advanceTimersByTimeAsync(0);
    pages.added({ jti: 'during', exp: 2_200_000_000 });
    release();
    expect((await slow).revocations[0]!.jti).toBe('during');
    expect(reads).toBe(3);
  } finally {
    vi.useRealTimers();
  }
});

it('lets the kept list go past 100 revocations put into it (each insert walks the list: a storm beside a listing)', async () => {
  let reads = 0;
  const pages = new RevocationPages(async () => (reads++, set(10)));
  await pages.page(query());
  for (let i = 0; i < 100; i++) pages.added({ jti: `storm-${i}`, exp: 2_100_000_000 + i });
  expect((await pages.page(query())).total).toBe(110);
  expect(reads).toBe(1);
  pages.added({ jti: 'storm-100', exp: 2_100_000_100 });
  await pages.page(query());
  expect(reads).toBe(2);
});
