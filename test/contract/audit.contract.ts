import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AuditEntry, AuditLog, AuditQuery, AuditRetention } from '../../src/ports/audit/audit.js';

/** An audit log under test; `fault` (where the adapter can be broken) makes its next writes fail. */
export interface AuditLogFixture {
  log: AuditLog;
  fault?(): Promise<void>;
  close(): Promise<void>;
}

/** Called once per test; a real backend should use a fresh key prefix or directory per call. */
export type AuditLogFactory = (retention: AuditRetention) => Promise<AuditLogFixture>;

const DAY = 86_400_000;
const RETENTION: AuditRetention = { maxAgeMs: DAY, maxEntries: 10_000 };

/** The promises of `AuditLog` (src/ports/audit/audit.ts), for any implementation. */
export function auditLogContract(name: string, make: AuditLogFactory): void {
  describe(name, () => {
    let fx: AuditLogFixture | undefined;
    let base: number;
    let seq: number;

    const open = async (retention: AuditRetention = RETENTION) => {
      fx = await make(retention);
      return fx.log;
    };
    /** An entry `i` ms after the test's base time, with what is given. */
    const entry = (i: number, more: Partial<AuditEntry> = {}): AuditEntry => ({
      id: `e-${++seq}-${randomUUID()}`,
      at: base + i,
      actor: { kind: 'user', sub: 'alice' },
      from: { ip: '127.0.0.1', node: 'node-a' },
      action: 'command',
      outcome: 'ok',
      ...more,
    });
    /** Every page of a query, following `next`. */
    const all = async (log: AuditLog, q: Omit<AuditQuery, 'limit'>, limit = 100) => {
      const out: AuditEntry[] = [];
      let cursor: string | undefined;
      for (let pages = 0; pages < 1_000; pages++) {
        const page = await log.list({ ...q, limit, ...(cursor ? { cursor } : {}) });
        out.push(...page.entries);
        if (page.next === null) return out;
        cursor = page.next;
      }
      throw new Error('no end of pages');
    };

    beforeEach(() => {
      base = Date.now() - 60_000;
      seq = 0;
    });

    afterEach(async () => {
      await fx?.close();
      fx = undefined;
    });

    it('lists nothing when nothing was recorded', async () => {
      const log = await open();
      expect(await log.list({ limit: 10 })).toEqual({ entries: [], next: null });
    });

    it('lists what was recorded, newest first, each field as given', async () => {
      const log = await open();
      const full = entry(2, { actor: { kind: 'admin' }, action: 'hub.move', homeId: 'home-1', hubId: 'hub-1', deviceId: 'd-1', target: 'r-1', outcome: 'not_found', requestId: 'req-1', detail: 'from home-0' });
      const rule = entry(1, { actor: { kind: 'rule', sub: 'r-9' }, from: { node: 'node-b' } });
      const oldest = entry(0);
      for (const e of [oldest, rule, full]) log.record(e);
      await log.flushed();
      expect(await log.list({ limit: 10 })).toEqual({ entries: [full, rule, oldest], next: null });
      expect(log.lost).toBe(0);
    });

    it('record returns at once and never throws; the entry is listed once flushed', async () => {
      const log = await open();
      const e = entry(0);
      expect(log.record(e)).toBeUndefined();
      await log.flushed();
      expect((await log.list({ limit: 1 })).entries).toEqual([e]);
    });

    it('filters by home, hub, actor, action prefix, outcome and time, each alone and together', async () => {
      const log = await open();
      const es = [
        entry(0, { homeId: 'h1', hubId: 'a', action: 'command' }),
        entry(1, { homeId: 'h1', hubId: 'b', action: 'rule.create', actor: { kind: 'user', sub: 'bob' } }),
        entry(2, { homeId: 'h2', hubId: 'a', action: 'rule.delete', outcome: 'not_found' }),
        entry(3, { action: 'token.issue', actor: { kind: 'admin' }, target: 'alice' }),
        entry(4, { homeId: 'h1', hubId: 'a', action: 'command', outcome: 'hub_offline', actor: { kind: 'rule', sub: 'r-1' } }),
      ];
      for (const e of es) log.record(e);
      await log.flushed();
      const ids = async (q: Omit<AuditQuery, 'limit'>) => (await all(log, q)).map((e) => es.findIndex((x) => x.id === e.id));
      expect(await ids({ homeId: 'h1' })).toEqual([4, 1, 0]);
      expect(await ids({ hubId: 'a' })).toEqual([4, 2, 0]);
      expect(await ids({ actor: 'bob' })).toEqual([1]);
      expect(await ids({ actor: 'admin' })).toEqual([3]);
      expect(await ids({ actor: 'r-1' })).toEqual([4]);
      expect(await ids({ action: 'rule.' })).toEqual([2, 1]);
      expect(await ids({ action: 'command' })).toEqual([4, 0]);
      expect(await ids({ outcome: 'ok' })).toEqual([3, 1, 0]);
      expect(await ids({ outcome: 'error' })).toEqual([4, 2]);
      expect(await ids({ outcome: 'not_found' })).toEqual([2]);
      expect(await ids({ since: base + 1, until: base + 4 })).toEqual([3, 2, 1]);
      expect(await ids({ homeId: 'h1', hubId: 'a', outcome: 'error' })).toEqual([4]);
      expect(await ids({ homeId: 'h1', since: base + 1 })).toEqual([4, 1]);
      expect(await ids({ homeId: 'h3' })).toEqual([]);
    });

    it('tells actors of one name apart by kind: a user whose sub is admin, the admin token, a rule (review "unicode")', async () => {
      const log = await open();
      const es = [entry(0, { actor: { kind: 'admin' } }), entry(1, { actor: { kind: 'user', sub: 'admin' } }), entry(2, { actor: { kind: 'rule', sub: 'admin' } }), entry(3, { actor: { kind: 'user', sub: 'bob' } })];
      for (const e of es) log.record(e);
      await log.flushed();
      const ids = async (q: Omit<AuditQuery, 'limit'>) => (await all(log, q)).map((e) => es.findIndex((x) => x.id === e.id));
      expect(await ids({ actor: 'admin' })).toEqual([2, 1, 0]);
      expect(await ids({ actor: 'admin', actorKind: 'admin' })).toEqual([0]);
      expect(await ids({ actor: 'admin', actorKind: 'user' })).toEqual([1]);
      expect(await ids({ actorKind: 'user' })).toEqual([3, 1]);
      expect(await ids({ actorKind: 'system' })).toEqual([]);
    });

    it('pages with the cursor: newest first, none twice, none skipped, next null at the end', async () => {
      const log = await open();
      const es = Array.from({ length: 25 }, (_, i) => entry(i, { homeId: i % 2 === 0 ? 'even' : 'odd' }));
      for (const e of es) log.record(e);
      await log.flushed();
      const first = await log.list({ limit: 10 });
      expect(first.entries).toEqual(es.slice(15).reverse());
      expect(first.next).not.toBeNull();
      expect(await all(log, {}, 10)).toEqual([...es].reverse());
      expect(await all(log, { homeId: 'even' }, 4)).toEqual(es.filter((_, i) => i % 2 === 0).reverse());
      // entries recorded after the first page was read come before it: the following pages are unchanged
      log.record(entry(100));
      await log.flushed();
      const second = await log.list({ limit: 10, cursor: first.next! });
      expect(second.entries).toEqual(es.slice(5, 15).reverse());
    });

    it('a damaged cursor or one of another store answers the first page', async () => {
      const log = await open();
      const e = entry(0);
      log.record(e);
      await log.flushed();
      for (const cursor of ['%%%', 'W10', '0-0x', 'bm90IGpzb24']) expect((await log.list({ limit: 5, cursor })).entries, cursor).toEqual([e]);
    });

    it('retention by age: an entry older than maxAgeMs is never listed', async () => {
      const log = await open({ maxAgeMs: 60 * 60_000, maxEntries: 1_000 });
      const old = entry(-2 * 60 * 60_000, { homeId: 'h' });
      const fresh = entry(0, { homeId: 'h' });
      log.record(old);
      log.record(fresh);
      await log.flushed();
      expect((await log.list({ limit: 10 })).entries).toEqual([fresh]);
      expect((await log.list({ limit: 10, homeId: 'h' })).entries).toEqual([fresh]);
    });

    it('retention by count: the newest maxEntries are kept, the oldest removed (about: at most twice as many)', async () => {
      const log = await open({ maxAgeMs: DAY, maxEntries: 100 });
      const es = Array.from({ length: 350 }, (_, i) => entry(i, { homeId: 'h' }));
      for (const e of es) log.record(e);
      await log.flushed();
      const kept = await all(log, {}, 500);
      expect(kept.slice(0, 100)).toEqual(es.slice(250).reverse());
      expect(kept.length).toBeLessThanOrEqual(200);
      expect(kept).toEqual(es.slice(350 - kept.length).reverse());
      const home = await all(log, { homeId: 'h' }, 500);
      expect(home.slice(0, 100)).toEqual(es.slice(250).reverse());
      expect(home.length).toBeLessThanOrEqual(200);
    });

    it("past maxEntries the largest bucket loses its oldest first: one home's flood evicts none of a quieter home's entries", async () => {
      const log = await open({ maxAgeMs: DAY, maxEntries: 100 });
      const quiet = Array.from({ length: 20 }, (_, i) => entry(i, { homeId: 'quiet' }));
      const flood = Array.from({ length: 1_000 }, (_, i) => entry(100 + i, { homeId: 'busy', actor: { kind: 'user', sub: 'bob' } }));
      for (const e of [...quiet, ...flood]) log.record(e);
      await log.flushed();
      expect(await all(log, { homeId: 'quiet' })).toEqual([...quiet].reverse());
      const kept = await all(log, { homeId: 'busy' }, 500);
      expect(kept.length).toBeGreaterThanOrEqual(80);
      expect(kept.length).toBeLessThanOrEqual(180);
      expect(kept).toEqual(flood.slice(1_000 - kept.length).reverse());
    });

    it("one user's refused calls, on one home or spread over many, evict none of those homes' own entries", async () => {
      const log = await open({ maxAgeMs: DAY, maxEntries: 100 });
      const own = [
        ...Array.from({ length: 20 }, (_, i) => entry(i, { homeId: 'victim' })),
        ...Array.from({ length: 20 }, (_, i) => entry(20 + i, { homeId: 'other', actor: { kind: 'rule', sub: 'r-1' } })),
      ];
      const mallory = { kind: 'user', sub: 'mallory' } as const;
      const refused = Array.from({ length: 600 }, (_, i) => entry(100 + i, { homeId: i % 2 === 0 ? 'victim' : `h-${i}`, actor: mallory, action: 'rule.create', outcome: 'forbidden' }));
      for (const e of [...own, ...refused]) log.record(e);
      await log.flushed();
      expect(await all(log, { homeId: 'victim', actor: 'alice' })).toEqual(own.slice(0, 20).reverse());
      expect(await all(log, { homeId: 'other' })).toEqual(own.slice(20).reverse());
      const kept = await all(log, { actor: 'mallory' }, 500);
      expect(kept.length).toBeGreaterThanOrEqual(60);
      expect(kept).toEqual(refused.slice(600 - kept.length).reverse());
    });

    it("after a home's erasure its users' view (afterErasure) starts anew, whatever the time bounds and cursor; the rest see all", async () => {
      const log = await open();
      const before = [entry(1, { homeId: 'h1' }), entry(2, { homeId: 'h1', deviceId: 'lock' })];
      const failed = entry(3, { homeId: 'h1', action: 'home.erase', outcome: 'unavailable', actor: { kind: 'admin' } });
      const erased = entry(4, { homeId: 'h1', action: 'home.erase', actor: { kind: 'admin' } });
      const other = entry(5, { homeId: 'h2' });
      const after = entry(6, { homeId: 'h1', actor: { kind: 'user', sub: 'bob' } });
      for (const e of [...before, failed, erased, other, after]) log.record(e);
      await log.flushed();
      const users = (q: Omit<AuditQuery, 'limit'>) => all(log, { ...q, homeId: 'h1', afterErasure: true }, 2);
      expect(await users({})).toEqual([after]);
      // no bound reaches before it: a time range or a cursor of the earlier entries
      expect(await users({ until: base + 3 })).toEqual([]);
      expect(await users({ since: base })).toEqual([after]);
      const page = await log.list({ homeId: 'h1', limit: 1 });
      expect(await all(log, { homeId: 'h1', afterErasure: true, ...(page.next ? { cursor: page.next } : {}) })).toEqual([]);
      // the trail itself keeps them: the admin's view, another home's users
      expect(await all(log, { homeId: 'h1' })).toEqual([after, erased, failed, ...before].sort((a, b) => b.at - a.at));
      expect(await all(log, { homeId: 'h2', afterErasure: true })).toEqual([other]);
      // a second erasure moves the start again
      const again = entry(7, { homeId: 'h1', action: 'home.erase', actor: { kind: 'admin' } });
      log.record(again);
      await log.flushed();
      expect(await users({})).toEqual([]);
    });

    it('hostile ids are data: homes, hubs, devices and actors named like Object.prototype members', async () => {
      const log = await open();
      const names = ['__proto__', 'constructor', 'toString'];
      const es = names.map((n, i) => entry(i, { homeId: n, hubId: n, deviceId: n, target: n, actor: { kind: 'user', sub: n } }));
      for (const e of es) log.record(e);
      await log.flushed();
      for (const [i, n] of names.entries()) {
        expect((await log.list({ limit: 10, homeId: n })).entries, n).toEqual([es[i]]);
        expect((await log.list({ limit: 10, hubId: n })).entries, n).toEqual([es[i]]);
        expect((await log.list({ limit: 10, actor: n })).entries, n).toEqual([es[i]]);
      }
      expect(({} as Record<string, unknown>).homeId).toBeUndefined();
    });

    it('a write that fails is counted in lost, never thrown at the caller', async () => {
      const log = await open();
      if (!fx?.fault) return; // an adapter that cannot fail this way (memory)
      await fx.fault();
      expect(() => log.record(entry(0))).not.toThrow();
      await log.flushed();
      expect(log.lost).toBe(1);
    });
  });
}
