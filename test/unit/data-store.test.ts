/**
 * Opening the embedded store: every way it can fail ends in a DataStoreError naming the path and
 * what to do, and nothing is changed; a damaged file is refused before LMDB maps it (LMDB trusts
 * the file: a garbage file crashed the process with a segfault before this check).
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DataStoreError, openDataStore, storedLayout, type DataStore } from '../../src/ports/lmdb.js';
import { ownIdentity, processIdentity } from '../../src/ports/process-identity.js';
import { sideUnusable } from '../../src/ports/data-store-error.js';

const stores: DataStore[] = [];
afterEach(async () => {
  await Promise.allSettled(stores.splice(0).map((s) => s.close()));
});
const dir = () => mkdtempSync(join(tmpdir(), 'store-'));
const open = (d: string) => {
  const s = openDataStore(d);
  stores.push(s);
  return s;
};
const refusal = (d: string): DataStoreError => {
  try {
    open(d);
  } catch (err) {
    return err as DataStoreError;
  }
  throw new Error('opened');
};

describe('openDataStore', () => {
  it("makes its files the owner's alone in a directory it did not make, and leaves an existing file's mode", () => {
    const d = dir();
    chmodSync(d, 0o755);
    const a = open(d);
    a.side('events');
    const modes = () => Object.fromEntries(readdirSync(d).filter((f) => f.includes('.mdb')).map((f) => [f, statSync(join(d, f)).mode & 0o777]));
    expect(modes()).toEqual({ 'hubtier.mdb': 0o600, 'hubtier.mdb-lock': 0o600, 'events.mdb': 0o600, 'events.mdb-lock': 0o600 });
    // an operator's choice for a store it had (a backup agent of the group, say) stays
    chmodSync(join(d, 'hubtier.mdb'), 0o640);
    return a.close().then(() => {
      stores.splice(stores.indexOf(a), 1);
      open(d);
      expect(statSync(join(d, 'hubtier.mdb')).mode & 0o777).toBe(0o640);
    });
  });

  it('creates the directory, keeps what was committed across a close, and takes one owner at a time', async () => {
    const d = join(dir(), 'nested', 'data');
    const a = open(d);
    expect(statSync(d).mode & 0o777).toBe(0o700);
    await a.db<number>('t').put('k', 7);
    const second = refusal(d);
    expect(second).toBeInstanceOf(DataStoreError);
    expect(second.message).toMatch(/is in use by another node .*pid \d+.*give each its own DATA_DIR/);
    await a.close();
    stores.splice(stores.indexOf(a), 1);
    expect(open(d).db<number>('t').get('k')).toBe(7);
  });

  it('takes over the lock of an owner that is gone (a crash)', async () => {
    const d = dir();
    const child = spawn(process.execPath, ['-e', '']);
    const pid = await new Promise<number>((resolve) => child.on('exit', () => resolve(child.pid!)));
    writeFileSync(join(d, 'node.lock'), `${pid}\nnode crashed\n`);
    const s = open(d);
    expect(readFileSync(join(d, 'node.lock'), 'utf8').split('\n')[0]).toBe(String(process.pid));
    await s.db<number>('t').put('k', 1);
  });

  it("takes over a lock naming its own pid from an earlier process (pid 1 in a restarted container), and one whose pid a later process got", async () => {
    // a kill -9 of pid 1, then the restart is pid 1 again: the lock names this pid with another start
    const restarted = dir();
    writeFileSync(join(restarted, 'node.lock'), `${process.pid}\nnode killed\n${processIdentity(process.pid)}0\n`);
    const a = open(restarted);
    expect(readFileSync(join(restarted, 'node.lock'), 'utf8').split('\n')).toEqual([String(process.pid), expect.any(String), ownIdentity(), expect.any(String), '']);
    await a.db<number>('t').put('k', 1);
    // a lock of a version that wrote no identity, naming this pid: an earlier process's too
    const older = dir();
    writeFileSync(join(older, 'node.lock'), `${process.pid}\nnode killed\n`);
    await open(older).db<number>('t').put('k', 1);
    // a live process with the lock's pid but another start: the pid was reused
    const live = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
    try {
      const reused = dir();
      writeFileSync(join(reused, 'node.lock'), `${live.pid}\nnode killed\nsome-boot:1\n`);
      await open(reused).db<number>('t').put('k', 1);
      // the same live process with its own identity holds its lock (an earlier release's node, without the flock)
      const held = dir();
      writeFileSync(join(held, 'node.lock'), `${live.pid}\nanother node\n${processIdentity(live.pid!)}\n`);
      expect(refusal(held).message).toMatch(/is in use by another node \(another node, pid \d+\)/);
    } finally {
      live.kill();
    }
  });

  it('refuses a directory it cannot create or write, naming it', () => {
    const err = refusal('/etc/passwd/data');
    expect(err.message).toMatch(/^DATA_DIR \/etc\/passwd\/data: cannot create or write the directory \(ENOTDIR\)/);
  });

  it('refuses a file that is not an LMDB store, and one cut short, without touching either', async () => {
    const garbage = dir();
    writeFileSync(join(garbage, 'hubtier.mdb'), Buffer.alloc(20_000, 7));
    expect(refusal(garbage).message).toMatch(/hubtier\.mdb cannot be read \(.*\): the file is corrupt or truncated\. Nothing was changed\. Restore it from a backup/);
    expect(readFileSync(join(garbage, 'hubtier.mdb')).equals(Buffer.alloc(20_000, 7))).toBe(true);

    const cut = dir();
    const s = openDataStore(cut);
    const t = s.db<string>('big');
    for (let i = 0; i < 2_000; i++) void t.put(`k${i}`, 'x'.repeat(500));
    await s.close();
    const file = join(cut, 'hubtier.mdb');
    const half = Math.floor(statSync(file).size / 2);
    truncateSync(file, half);
    expect(refusal(cut).message).toMatch(/truncated: \d+ bytes, its last commit needs \d+/);
    expect(statSync(file).size).toBe(half);
  });

  it('opens a store whose last commit took pages at the end and freed them again (its file shorter than the meta page\'s last page)', async () => {
    const d = dir();
    let s = openDataStore(d);
    for (const name of ['a', 'b', 'c']) for (let i = 0; i < 300; i++) void s.db<string>(name).put(`k${i}`, 'x'.repeat(200));
    await s.close();
    // one commit removing every key of three sub-databases: its new pages at the end are freed before it ends
    s = openDataStore(d);
    for (const name of ['a', 'b', 'c']) for (let i = 0; i < 300; i++) void s.db<string>(name).remove(`k${i}`);
    await s.close();
    const file = readFileSync(join(d, 'hubtier.mdb'));
    const pageSize = file.readUInt32LE(48);
    const newest = [0, pageSize].reduce((a, b) => (file.readBigUInt64LE(b + 152) > file.readBigUInt64LE(a + 152) ? b : a));
    expect(BigInt(file.length)).toBeLessThan((file.readBigUInt64LE(newest + 144) + 1n) * BigInt(pageSize));
    expect(open(d).db<string>('a').getCount()).toBe(0);
  });

  it('says how long its oldest write not yet durable has waited (pendingMs), 0 once none waits', async () => {
    const s = open(dir());
    expect(s.pendingMs()).toBe(0);
    let commit!: () => void;
    const held = s.written(new Promise<void>((r) => (commit = r)));
    await new Promise((r) => setTimeout(r, 30));
    expect(s.pendingMs()).toBeGreaterThanOrEqual(25);
    const quick = s.written(s.db<number>('t').put('k', 1));
    // the oldest still counts while a later write is durable
    await quick;
    expect(s.pendingMs()).toBeGreaterThanOrEqual(25);
    commit();
    await held;
    expect(s.pendingMs()).toBe(0);
  });

  it('flushes a side environment as it flushes the main store (DATA_SYNC)', async () => {
    for (const sync of ['commit', 'os'] as const) {
      const s = openDataStore(dir(), { sync });
      // lmdb-js keeps the flag it was opened with: noSync means commits are never fsynced
      expect((s.side('history') as unknown as { noSync: boolean }).noSync).toBe(sync === 'os');
      expect((s.root as unknown as { noSync: boolean }).noSync).toBe(sync === 'os');
      await s.close();
    }
  });

  it('starts a side environment empty when it is cut short (where the main store is refused), or after an unclean start with DATA_SYNC=os; keeps its commits after one with each commit synced', async () => {
    const fill = async (s: DataStore) => {
      const t = s.side('history').openDB<string, string>({ name: 'h' });
      for (let i = 0; i < 2_000; i++) void t.put(`k${i}`, 'x'.repeat(500));
      await s.close();
    };
    const cut = dir();
    await fill(openDataStore(cut));
    const file = join(cut, 'history.mdb');
    truncateSync(file, Math.floor(statSync(file).size / 2));
    const reopened = open(cut);
    expect(reopened.uncleanStart).toBe(false);
    expect(reopened.side('history').openDB<string, string>({ name: 'h' }).get('k0')).toBeUndefined();

    for (const sync of ['os', 'commit'] as const) {
      const crashed = dir();
      await fill(openDataStore(crashed, { sync }));
      const child = spawn(process.execPath, ['-e', '']);
      const pid = await new Promise<number>((resolve) => child.on('exit', () => resolve(child.pid!)));
      writeFileSync(join(crashed, 'node.lock'), `${pid}\nnode crashed\n`);
      const after = openDataStore(crashed, { sync });
      stores.push(after);
      expect(after.uncleanStart).toBe(true);
      expect(after.side('history').openDB<string, string>({ name: 'h' }).get('k0'), sync).toBe(sync === 'os' ? undefined : 'x'.repeat(500));
    }
  });

  it('opens a store of data layout version 1 or 2 (a new one is stamped 2), refuses a newer one or one no version writes', async () => {
    const d = dir();
    const s = openDataStore(d);
    expect(storedLayout(s.root)).toBe(2);
    await s.root.openDB({ name: 'meta' }).put('layout', { layout: 1, createdAt: 0 });
    await s.close();
    const older = open(d);
    expect(storedLayout(older.root), 'opened as it is: the ports raise it with the records they rewrite').toBe(1);
    await older.root.openDB({ name: 'meta' }).put('layout', { layout: 3, createdAt: 0 });
    await older.close();
    expect(refusal(d).message).toMatch(/has data layout 3; this version reads layouts 1 to 2\. Nothing was changed: a newer version wrote it; run the version that wrote it, or roll back by importing the backup taken before the upgrade into an empty DATA_DIR \(npm run data -- import FILE\)/);
    const s2 = openDataStore(dir());
    const d2 = s2.dir;
    await s2.root.openDB({ name: 'meta' }).put('layout', { layout: 0, createdAt: 0 });
    await s2.close();
    expect(refusal(d2).message).toMatch(/has data layout 0; .*no version writes it/);
  });

  it('leaves nothing locked when it refuses: the directory opens once the problem is gone', () => {
    const d = dir();
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'hubtier.mdb'), Buffer.alloc(9_000, 1));
    refusal(d);
    writeFileSync(join(d, 'hubtier.mdb'), Buffer.alloc(0));
    expect(open(d).dir).toBe(d);
  });
});

describe('sideUnusable', () => {
  it('says of a side file LMDB refuses what the main store says of its own (review upgrade: a bare stack ended the start), and passes a data error on as it is', () => {
    const err = sideUnusable('/data', 'history', new Error('MDB_PROBLEM: Unexpected problem - txn should abort'));
    expect(err).toBeInstanceOf(DataStoreError);
    expect(err.message).toBe('DATA_DIR /data: LMDB cannot use history.mdb (MDB_PROBLEM: Unexpected problem - txn should abort). Nothing was changed. It is damaged: move it aside (a new one starts empty, apps reload, what it held is lost) or restore it from the same backup as the store');
    const own = new DataStoreError('DATA_DIR /data: cannot write', '/data');
    expect(sideUnusable('/data', 'history', own)).toBe(own);
  });
});
