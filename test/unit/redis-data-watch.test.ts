/**
 * The watch of Redis's data (redis-data-watch.ts) over a store standing in for Redis's two keys (the
 * record's salt, the loss note): the salt the node started with gone or replaced is a loss, said
 * once and noted for every node; a node started during a loss learns of it from the note; a restore
 * (the salt back, no note) or an operator deleting the note ends it, and the node takes the salt it
 * finds; a Redis that does not answer says nothing of its data (reviews "redisloss", "diff28").
 */
import { describe, expect, it } from 'vitest';
import { RedisDataWatch } from '../../src/compose/redis-data-watch.js';
import { createLogger } from '../../src/log/logger.js';

/** Redis's two keys; `away` makes every call fail. */
class Store {
  salt: string | undefined = 'salt-1';
  lostAt: number | undefined;
  away = false;
  async readMark() {
    if (this.away) throw new Error('ECONNREFUSED');
    return { ...(this.salt !== undefined ? { salt: this.salt } : {}), ...(this.lostAt !== undefined ? { lostAt: this.lostAt } : {}) };
  }
  async noteLost(at: number) {
    if (this.away) throw new Error('ECONNREFUSED');
    this.lostAt ??= at;
  }
  /** what a backup made before the loss brings back */
  restore(salt: string) {
    this.salt = salt;
    this.lostAt = undefined;
  }
}

function watchOn(store: Store) {
  const told = { n: 0 };
  const watch = new RedisDataWatch({ readMark: () => store.readMark(), noteLost: (at) => store.noteLost(at), log: createLogger('silent'), onLost: () => told.n++, everyMs: 600_000 });
  return { watch, told };
}

describe('RedisDataWatch', () => {
  it('a loss is told once and noted; an outage is not a loss; a restore clears it', async () => {
    const store = new Store();
    const { watch, told } = watchOn(store);
    await watch.start();
    await watch.check();
    expect(watch.lostSince).toBeNull();
    store.away = true;
    await watch.check();
    expect(watch.lostSince).toBeNull();
    store.away = false;
    store.salt = undefined;
    await watch.check();
    expect(watch.lostSince).not.toBeNull();
    expect(told.n).toBe(1);
    expect(store.lostAt).toBeDefined();
    // a node started since wrote a salt of its own: still lost, told once
    store.salt = 'salt-2';
    await watch.check();
    expect(told.n).toBe(1);
    store.restore('salt-1');
    await watch.check();
    expect(watch.lostSince).toBeNull();
    // replaced again: a second loss
    store.salt = 'salt-3';
    await watch.check();
    expect(told.n).toBe(2);
    watch.stop();
  });

  it('a node started during a loss learns of it from the note, and clears with the others at the restore', async () => {
    const store = new Store();
    const early = watchOn(store);
    await early.watch.start();
    store.salt = undefined;
    await early.watch.check();
    // the late node's start wrote a salt of its own into the empty record
    store.salt = 'salt-late';
    const late = watchOn(store);
    await late.watch.start();
    expect(late.watch.lostSince).not.toBeNull();
    expect(late.told.n).toBe(1);
    store.restore('salt-1');
    await Promise.all([early.watch.check(), late.watch.check()]);
    expect([early.watch.lostSince, late.watch.lostSince]).toEqual([null, null]);
    // both took the restored salt: its loss again is seen by both
    store.salt = undefined;
    await Promise.all([early.watch.check(), late.watch.check()]);
    expect([early.told.n, late.told.n]).toEqual([2, 2]);
    early.watch.stop();
    late.watch.stop();
  });

  it('an operator accepting the loss (the note deleted) clears it; the node takes the salt it finds', async () => {
    const store = new Store();
    const { watch, told } = watchOn(store);
    await watch.start();
    store.salt = undefined;
    await watch.check();
    store.salt = 'salt-new';
    await watch.check();
    expect(watch.lostSince).not.toBeNull();
    store.lostAt = undefined;
    await watch.check();
    expect(watch.lostSince).toBeNull();
    await watch.check();
    expect(watch.lostSince).toBeNull();
    expect(told.n).toBe(1);
    watch.stop();
  });
});
