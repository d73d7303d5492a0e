/** Fair eviction's parts: which bucket an entry counts in, and which buckets lose entries first. */
import { describe, expect, it } from 'vitest';
import { BucketCounts, bucketOf } from '../../src/ports/audit/audit-buckets.js';
import type { AuditEntry } from '../../src/ports/audit/audit.js';

const entry = (more: Partial<AuditEntry>): AuditEntry => ({ id: 'e', at: 0, actor: { kind: 'user', sub: 'alice' }, from: { node: 'n' }, action: 'command', outcome: 'ok', ...more });

describe('bucketOf', () => {
  it('a home and an actor; no home is a home of its own', () => {
    const names = [
      entry({ homeId: 'h1' }),
      entry({ homeId: 'h2' }),
      entry({ homeId: 'h1', actor: { kind: 'user', sub: 'bob' } }),
      entry({ homeId: 'h1', actor: { kind: 'rule', sub: 'alice' } }),
      entry({ homeId: 'h1', actor: { kind: 'admin' } }),
      entry({ homeId: 'h2', actor: { kind: 'admin' } }),
      entry({}),
      entry({ homeId: '' }),
    ].map(bucketOf);
    expect(new Set(names).size).toBe(names.length - 1);
    expect(bucketOf(entry({}))).toBe(bucketOf(entry({ homeId: '' })));
  });

  it("a user's failed calls share one bucket whatever the home; the admin's and a rule's keep a bucket per home", () => {
    const refused = (homeId: string, actor: AuditEntry['actor']) => bucketOf(entry({ homeId, actor, outcome: 'forbidden' }));
    const mallory = { kind: 'user', sub: 'mallory' } as const;
    expect(refused('h1', mallory)).toBe(refused('h2', mallory));
    expect(refused('h1', mallory)).toBe(bucketOf(entry({ actor: mallory, outcome: 'forbidden' })));
    expect(refused('h1', mallory)).not.toBe(bucketOf(entry({ homeId: 'h1', actor: mallory })));
    expect(refused('h1', mallory)).not.toBe(refused('h1', { kind: 'user', sub: 'eve' }));
    expect(refused('h1', { kind: 'admin' })).not.toBe(refused('h2', { kind: 'admin' }));
    expect(refused('h1', { kind: 'rule', sub: 'r' })).not.toBe(refused('h2', { kind: 'rule', sub: 'r' }));
  });
});

describe('BucketCounts', () => {
  it('plans removals from the largest bucket, one entry at a time, down to the level of the next', () => {
    const c = new BucketCounts();
    c.add('a', 10);
    c.add('b', 6);
    c.add('c', 2);
    c.add('__proto__', 1);
    expect(Object.fromEntries(c.plan(6))).toEqual({ a: 5, b: 1 });
    // a 5, b 5, c 2: the two largest take turns
    expect([...c.plan(6).values()].sort()).toEqual([3, 3]);
    expect(c.largest()).toBe('c');
    expect([...c.plan(100)].sort()).toEqual([['__proto__', 1], ['a', 2], ['b', 2], ['c', 2]]);
    expect(c.largest()).toBeUndefined();
    expect(c.buckets).toBe(0);
  });

  it('remove takes one; a bucket it empties is gone; an unknown one is ignored', () => {
    const c = new BucketCounts();
    c.add('a');
    c.add('b', 2);
    c.remove('b');
    c.remove('b');
    c.remove('zzz');
    expect(c.largest()).toBe('a');
    expect(c.buckets).toBe(1);
  });
});
