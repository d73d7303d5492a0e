/**
 * The watch of Redis's data (redis-data-watch.ts) over a store standing in for Redis's two keys (the
 * record's salt, the loss note, written as the Redis adapter's scripts write it): the salt a node
 * started with gone or replaced is a loss, said once and noted with that salt; a node started during
 * a loss learns of it from the note; the loss ends when that salt is back (a restore) or an operator
 * accepts it, never because another node's start wrote a salt of its own; a Redis that does not
 * answer says nothing of its data (reviews "redisloss", "diff28", "diff29").
 */
import { describe, expect, it } from 'vitest';
import { RedisDataWatch } from '../../src/compose/redis-data-watch.js';
import { createLogger } from '../../src/log/logger.js';

/** Redis's two keys; `away` makes every call fail. */
class Store {
  salt: string | undefined = 'salt-1';
  note: string | undefined;
  away = false;
  /** what happens in Redis between a node's read and its next call (another client's command) */
  afterRead: (() => void) | undefined;
  async readMark() {
    if (this.away) throw new Error('ECONNREFUSED');
    const then = this.afterRead;
    this.afterRead = undefined;
    queueMicrotask(() => then?.());
    return { ...(this.salt !== undefined ? { salt: this.salt } : {}), ...(this.note !== undefined ? { note: this.note } : {}) };
  }
  async noteLost(note: string, seen: { salt?: string; note?: string }) {
    if (this.away) throw new Error('ECONNREFUSED');
    if (this.note === seen.note && this.salt === seen.salt) this.note = note;
  }
  async noteAccepted(salt: string) {
    if (this.note === 'accepted') this.note = `accepted:${salt}`;
  }
  async clearNote(note: string) {
    if (this.note === note) this.note = undefined;
  }
  async saltOr(fresh: string) {
    this.salt ??= fresh;
    return this.salt;
  }
  /** FLUSHALL */
  empty() {
    this.salt = undefined;
    this.note = undefined;
  }
  /** what a backup made before the loss brings back */
  restore(salt: string) {
    this.salt = salt;
    this.note = undefined;
  }
}

/** A node's watch over `store`; `start` as the node does, after its start wrote a salt if none was there. */
async function nodeOn(store: Store, ownSalt: string) {
  store.salt ??= ownSalt;
  const told = { n: 0 };
  let made = 0;
  const watch = new RedisDataWatch({
    readMark: () => store.readMark(),
    noteLost: (n, seen) => store.noteLost(n, seen),
    noteAccepted: (s) => store.noteAccepted(s),
    clearNote: (n) => store.clearNote(n),
    saltOr: (fresh) => store.saltOr(fresh),
    freshSalt: () => `${ownSalt}-made-${++made}`,
    log: createLogger('silent'),
    onLost: () => told.n++,
    everyMs: 600_000,
  });
  await watch.start();
  return { watch, told, lost: () => watch.lostSince !== null };
}

describe('RedisDataWatch', () => {
  it('a loss is told once and noted; an outage is not a loss; a restore clears it', async () => {
    const store = new Store();
    const a = await nodeOn(store, 'unused');
    await a.watch.check();
    expect(a.lost()).toBe(false);
    store.away = true;
    await a.watch.check();
    expect(a.lost()).toBe(false);
    store.away = false;
    store.empty();
    await a.watch.check();
    expect(a.lost()).toBe(true);
    expect(a.told.n).toBe(1);
    expect(JSON.parse(store.note!)).toMatchObject({ salt: 'salt-1' });
    await a.watch.check();
    expect(a.told.n).toBe(1);
    store.restore('salt-1');
    await a.watch.check();
    expect(a.lost()).toBe(false);
    // replaced again: a second loss
    store.salt = 'salt-3';
    await a.watch.check();
    expect(a.told.n).toBe(2);
    a.watch.stop();
  });

  it('a node started during a loss learns of it from the note, and clears with the others at the restore', async () => {
    const store = new Store();
    const early = await nodeOn(store, 'unused');
    store.empty();
    await early.watch.check();
    const late = await nodeOn(store, 'salt-late');
    expect(late.lost()).toBe(true);
    store.restore('salt-1');
    await Promise.all([early.watch.check(), late.watch.check()]);
    expect([early.lost(), late.lost()]).toEqual([false, false]);
    // both took the restored salt: its loss again is seen by both
    store.empty();
    await Promise.all([early.watch.check(), late.watch.check()]);
    expect([early.told.n, late.told.n]).toEqual([2, 2]);
    early.watch.stop();
    late.watch.stop();
  });

  it('emptied a second time with a node restarted between two looks: no one clears, the restarted node learns of it (review diff29 F3)', async () => {
    const store = new Store();
    const a = await nodeOn(store, 'unused');
    store.empty();
    await a.watch.check();
    store.empty();
    const c = await nodeOn(store, 'salt-c');
    expect(c.lost()).toBe(false);
    await a.watch.check();
    expect(a.lost()).toBe(true);
    await c.watch.check();
    expect(c.lost()).toBe(true);
    // the backup still ends it for both
    store.restore('salt-1');
    await Promise.all([a.watch.check(), c.watch.check()]);
    expect([a.lost(), c.lost()]).toEqual([false, false]);
  });

  it('a restore that kept the note beside the salt it names is no loss: the note goes, nothing flaps (review diff30)', async () => {
    const store = new Store();
    const a = await nodeOn(store, 'unused');
    store.empty();
    await a.watch.check();
    const note = store.note;
    // brought back key by key: the old salt, and the note written meanwhile
    store.salt = 'salt-1';
    store.note = note;
    await a.watch.check();
    expect(a.lost()).toBe(false);
    expect(store.note).toBeUndefined();
    for (let i = 0; i < 3; i++) await a.watch.check();
    expect(a.lost()).toBe(false);
    expect(a.told.n).toBe(1);
    // a node started then is not told of a loss either
    store.note = note;
    const late = await nodeOn(store, 'unused');
    expect(late.lost()).toBe(false);
  });

  it("an acceptance between a node's read and its note is kept; a mistyped one is read as meant; a note no node wrote is no loss (review diff31)", async () => {
    const store = new Store();
    const a = await nodeOn(store, 'unused');
    store.empty();
    store.afterRead = () => (store.note = 'accepted');
    await a.watch.check();
    expect(store.note).toBe('accepted');
    await a.watch.check();
    expect(a.lost()).toBe(false);
    const other = new Store();
    const c = await nodeOn(other, 'unused');
    other.empty();
    await c.watch.check();
    other.note = 'Accepted\n';
    await c.watch.check();
    expect(c.lost()).toBe(false);
    other.note = 'not a note';
    await c.watch.check();
    expect(c.lost()).toBe(false);
  });

  it('recheck looks again at once, shared by callers within 50 ms: a hub right after a loss is told to retry (review diff31)', async () => {
    const store = new Store();
    const a = await nodeOn(store, 'unused');
    let reads = 0;
    const read = store.readMark.bind(store);
    store.readMark = async () => {
      reads++;
      return read();
    };
    store.empty();
    expect(await Promise.all([a.watch.recheck(), a.watch.recheck(), a.watch.recheck()])).toEqual([true, true, true]);
    expect(reads).toBe(1);
    expect(await a.watch.recheck(60_000)).toBe(true);
    expect(reads).toBe(1);
  });

  it('an operator accepting the loss clears it on every node, also one that sees the loss only after (review diff29 F4, F5)', async () => {
    const store = new Store();
    const [a, b] = [await nodeOn(store, 'unused'), await nodeOn(store, 'unused')];
    store.empty();
    await a.watch.check();
    // no node restarted: no salt yet. Deleting the note is not accepting: it is noted again
    store.note = undefined;
    await a.watch.check();
    expect(store.note).toBeDefined();
    store.note = 'accepted';
    await a.watch.check();
    expect(a.lost()).toBe(false);
    // no record was there: a wrote one, and the acceptance is bound to it (review diff30: else the next loss went unseen)
    expect(store.salt).toBeDefined();
    expect(store.note).toBe(`accepted:${store.salt}`);
    // b looks only now: the acceptance holds for it too; the data is not what it started with: its caches go
    await b.watch.check();
    expect(b.lost()).toBe(false);
    expect(b.told.n).toBe(1);
    const c = await nodeOn(store, 'salt-new');
    await Promise.all([a.watch.check(), b.watch.check(), c.watch.check()]);
    expect([a.lost(), b.lost(), c.lost()]).toEqual([false, false, false]);
    store.empty();
    await Promise.all([a.watch.check(), b.watch.check(), c.watch.check()]);
    expect([a.lost(), b.lost(), c.lost()]).toEqual([true, true, true]);
  });
});
