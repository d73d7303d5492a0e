/**
 * The embedded default's store on local disk: one LMDB environment per node in DATA_DIR, shared
 * by the LMDB adapters of every port (one named sub-database each). What the adapters share:
 * opening with a clear error for each way it can fail, one owner per directory, the sync setting.
 *
 * Durability: lmdb-js commits the writes of one event-loop turn as one transaction; a write's
 * promise resolves once that transaction is committed: a process crash (`kill -9`) loses nothing
 * committed. With `sync: 'commit'` (default) lmdb-js syncs each commit to disk, but overlapping:
 * the promise resolves before the fsync, so a write that must survive a power loss goes through
 * `written()`. With `sync: 'os'` the OS writes the pages when it chooses.
 */
import { accessSync, chmodSync, constants, existsSync, renameSync, rmSync } from 'node:fs';
import { makeDirs } from './make-dirs.js';
import { join, resolve } from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { checkLmdbFile } from './lmdb-file-check.js';
import { watchDataDir, type DirWatch } from './data-dir-watch.js';
import { commitFailureCause, describeWriteError, errnoName, watchCommits, type CommitWatch } from './lmdb-commit-failures.js';
import { DataStoreError, deniedAccess, deniedError } from './data-store-error.js';
import { unusableFile } from './data-dir-access.js';
import { claimDirectory, LOCK_FILE } from './dir-lock.js';
import { exitAtOnce } from './exit-at-once.js';
import { diskRoom, diskSpace } from './disk-room.js';
import { PendingWrites } from './write-stall.js';

export { DataStoreError };

export type DataSync = 'commit' | 'os';

export interface DataStoreOptions {
  /** @default 'commit' */
  sync?: DataSync;
  /** written into the lock file, for the message a second node gets */
  owner?: string;
  /** @default 4 GiB: the map size (address space, not memory: LMDB grows the file as needed) */
  mapSize?: number;
  /**
   * At a commit the disk refused (full, failing), or DATA_DIR gone from under the store
   * (`watchDirMs`): the DataStoreError naming DATA_DIR and what went wrong. lmdb-js is not safe to write after one (lmdb-commit-failures.ts): the default writes
   * `data error: …` to stderr and exits 1, as a start that finds the directory unusable does.
   */
  onCommitFailure?: (err: DataStoreError) => void;
  /**
   * ms between looks that DATA_DIR still holds the lock and store files this process opened
   * (data-dir-watch.ts); 0: none (the command-line tools, tests). On one gone or replaced,
   * `onCommitFailure` is called as for a failed commit: what the node writes from then on is lost
   * at its next start, so it must stop acknowledging. @default 0
   */
  watchDirMs?: number;
  /**
   * bytes the store's files must keep room to grow by (disk-room.ts): below it an open is refused,
   * and a running node (with `watchDirMs`) stops as on a failed commit, before the disk refuses a
   * write. @default 0: none
   */
  reserveBytes?: number;
  /** told what the node runs without (flock unavailable: dir-lock.ts); @default a `data warning: …` line on stderr */
  warn?: (message: string) => void;
}

/**
 * The layout version this code writes (meta `layout`). 1: releases before 2026-12-05 (those of
 * 2026-12-03 and 12-04 rewrote the shadow records and left it at 1: their marker tells them apart,
 * shadow-store-lmdb-migrate.ts); 2: since 2026-12-05, shadow records of numbered hubs. A store of
 * version 1 is opened, its records rewritten at open with the version raised in the same
 * transaction (markLayout); a newer one is refused, never rewritten.
 */
export const DATA_LAYOUT_VERSION = 2;
/** The oldest version this code opens. */
const OLDEST_LAYOUT_VERSION = 1;
/** What a refusal of data written by a newer version says to do. */
export const NEWER_LAYOUT_FIX = 'run the version that wrote it, or roll back by importing the backup taken before the upgrade into an empty DATA_DIR (npm run data -- import FILE)';
/** The store's file in DATA_DIR. */
export const STORE_FILE = 'hubtier.mdb';
const FILE = STORE_FILE;
const LOCK = LOCK_FILE;

export interface DataStore {
  /** the directory (absolute) */
  readonly dir: string;
  readonly sync: DataSync;
  /** true when the last process using the directory did not stop cleanly (its lock was left behind) */
  readonly uncleanStart: boolean;
  /** a named sub-database of msgpack values (one per port) */
  db<V = unknown>(name: string): Database<V, string | number | Array<string | number>>;
  readonly root: RootDatabase;
  /**
   * A second environment in the directory (`<name>.mdb`) for data written behind the main store's
   * (the history): its commits do not grow the main store's, and are flushed to disk as the main
   * store's are (DATA_SYNC), each on its own schedule. Opened at the first call; flushed and closed
   * with the store. When the file is damaged (moved aside as `<name>.mdb.damaged-<time>`, with a
   * warning), or after an unclean start with DATA_SYNC=os whose lock names another boot (or none: a
   * machine crash may have torn a commit), it starts empty;
   * after one with each commit synced, or a process crash alone, it keeps what was committed.
   */
  side(name: string): RootDatabase;
  /** says what the store did to data it could not keep (a `data warning` line by default: DataStoreOptions.warn) */
  warn(message: string): void;
  /** resolves once every write issued so far is committed and (with sync 'commit') on disk */
  flushed(): Promise<void>;
  /**
   * `write`'s result once it is committed and, with `sync` 'commit', on disk. Call it as the write
   * is issued, in the same turn: it follows the sync of the newest transaction queued at the call
   * (lmdb-js's `flushed`). Asked after the commit, that was a later transaction's: under a slow
   * disk an acknowledgement waited four or five syncs instead of one (review "slowdisk").
   */
  written<T>(write: Promise<T>): Promise<T>;
  /**
   * ms the oldest write passed to `written` has waited to be durable, 0 when none waits: a disk
   * that stalls shows here before any batch ends (the node refuses API writes past a bound).
   */
  pendingMs(): number;
  /**
   * Commits, closes the environment and releases the directory. `keepUncleanMark`: what a start
   * after an unclean stop does was not done (the start failed, or a tool opened the store): that
   * stop stays recorded for the next start (dir-lock.ts).
   */
  close(options?: { keepUncleanMark?: boolean }): Promise<void>;
}

/**
 * Opens an LMDB file, making it (and its lock file) the owner's alone when this opening made it:
 * LMDB makes them 0664 less the umask, readable by all in a DATA_DIR the node did not make (its own
 * is 0700). An existing file keeps the mode it was given.
 */
function openOwned(file: string, settings: Omit<NonNullable<Parameters<typeof open>[0]>, 'path'>): RootDatabase {
  const made = !existsSync(file);
  const env = open({ ...settings, path: file });
  if (made) for (const f of [file, `${file}-lock`]) if (existsSync(f)) chmodSync(f, 0o600);
  return env;
}

/**
 * Opens (creating if needed) the store in `dir`. Refuses with a DataStoreError naming the path:
 * a directory that cannot be created or written, one held by another live process (dir-lock.ts), a
 * store written by another layout version, and a file LMDB cannot read (corrupt or truncated).
 */
export function openDataStore(dir: string, options: DataStoreOptions = {}): DataStore {
  const path = resolve(dir);
  try {
    // made by the node: its owner's alone (shadows, audit, revocations); an existing one is left as it is
    makeDirs(path, 0o700);
    accessSync(path, constants.W_OK);
  } catch (err) {
    throw new DataStoreError(`DATA_DIR ${path}: cannot create or write the directory (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); choose another DATA_DIR or fix its permissions`, path, { cause: err });
  }
  const foreign = unusableFile(path);
  if (foreign !== null) throw foreign;
  const warn = options.warn ?? ((message: string) => process.stderr.write(`data warning: ${message}\n`));
  const { release, stale, sameBoot } = claimDirectory(path, options.owner ?? `pid ${process.pid}`, warn);
  const onFailure = (cause: Error): void => (options.onCommitFailure ?? stopOnCommitFailure)(cannotWrite(path, cause));
  const watched: Array<CommitWatch | DirWatch> = [];
  // the lock's inode is recorded now, while it is surely the file this process holds
  watchDir(path, LOCK, options, watched);
  const short = roomShort(path, options.reserveBytes ?? 0);
  if (short !== null) {
    for (const w of watched) w.stop();
    release(true);
    throw short;
  }
  watchRoom(path, options, watched);
  let root: RootDatabase;
  try {
    // LMDB maps the file and trusts it: a damaged one can crash the process, so look first (lmdb-file-check.ts)
    try {
      checkLmdbFile(join(path, FILE));
    } catch (err) {
      throw err instanceof DataStoreError || writeFailed(err) ? err : corrupt(path, err);
    }
    root = openOwned(join(path, FILE), {
      maxDbs: 32,
      mapSize: options.mapSize ?? 4 * 1024 ** 3,
      noSync: options.sync === 'os',
      // keys are strings we build; values msgpack (the same library family as the wire codec)
      encoding: 'msgpack',
    });
    checkLayout(root, join(path, FILE));
  } catch (err) {
    for (const w of watched) w.stop();
    release(true);
    if (err instanceof DataStoreError) throw err;
    if (writeFailed(err)) throw cannotWrite(path, err);
    throw unopenable(path, err);
  }
  const pending = new PendingWrites();
  const opened = new Map<string, Database<never, never>>();
  const sides = new Map<string, RootDatabase>();
  watched.push(watchCommits(root, onFailure));
  watchDir(path, FILE, options, watched);
  return {
    dir: path,
    sync: options.sync ?? 'commit',
    uncleanStart: stale,
    warn,
    root,
    db<V>(name: string) {
      let db = opened.get(name);
      if (!db) {
        db = root.openDB({ name, encoding: 'msgpack' }) as unknown as Database<never, never>;
        opened.set(name, db);
      }
      return db as unknown as Database<V, string | number | Array<string | number>>;
    },
    side(name: string) {
      let env = sides.get(name);
      if (!env) {
        const file = join(path, `${name}.mdb`);
        // with each commit synced, or a process crash alone (the page cache kept every commit), it
        // holds every commit, a device event acknowledged among them (its users start a new epoch of
        // it all the same); after a machine crash with DATA_SYNC=os it may hold half a commit, and
        // starts empty. Until 2026-12-06 a kill -9 alone emptied it, losing acknowledged events
        if (stale && !sameBoot && options.sync === 'os') discardSide(file);
        else {
          const damage = damaged(file);
          // kept aside for a look, and said: it held acknowledged device events (review "upgrade": deleted unsaid)
          if (damage !== null) warn(`${name}.mdb in ${path} is damaged (${damage}): moved to ${moveAside(file)}; a new one starts empty, its users start a new epoch (apps reload), the device events it held are lost`);
        }
        // flushed as the main file is: unflushed, its dirty pages went to disk in the kernel's
        // writeback bursts, which held up the main file's flushes and so the acks (BENCHMARKS.md)
        // history.mdb opens 10 sub-databases (the chunks, the earlier layouts' looked at, epoch, range, marks, starts)
        env = openOwned(file, { maxDbs: 16, mapSize: options.mapSize ?? 4 * 1024 ** 3, noSync: options.sync === 'os', encoding: 'msgpack' });
        sides.set(name, env);
        watched.push(watchCommits(env, onFailure));
        // its acknowledged events would go on into a deleted file (freeing disk space by hand, say)
        watchDir(path, `${name}.mdb`, options, watched);
      }
      return env;
    },
    flushed: () => root.flushed.then(() => undefined),
    async written<T>(write: Promise<T>): Promise<T> {
      // read now, before any await: the flush of the transaction this write is in
      const synced = options.sync === 'os' ? undefined : root.flushed.then(() => undefined);
      const done = pending.begin();
      try {
        const result = await write;
        await synced;
        return result;
      } finally {
        done();
      }
    },
    pendingMs: () => pending.oldestMs(),
    async close(options) {
      try {
        for (const env of sides.values()) {
          await env.flushed;
          await env.close();
        }
        await root.flushed;
        await root.close();
      } finally {
        for (const w of watched) w.stop();
        release(options?.keepUncleanMark === true);
      }
    },
  };
}

/** The errors of a disk that takes no more writes (full, over quota, failing), as lmdb-js and Node name them. */
const WRITE_ERRORS = new Set(['ENOSPC', 'EDQUOT', 'EFBIG', 'EIO', 'EROFS', 'MDB_MAP_FULL']);

function writeFailed(err: unknown): boolean {
  const name = err instanceof Error ? errnoName(err) : undefined;
  return name !== undefined && WRITE_ERRORS.has(name);
}

/**
 * The DataStoreError for a store that opened but could not be written at start (a full disk):
 * nothing was changed and nothing acknowledged is lost; with space freed the node starts. Undefined
 * when `err` is not a failed write.
 */
export async function startWriteError(dir: string, err: unknown, tool?: string): Promise<DataStoreError | undefined> {
  const cause = await commitFailureCause(err);
  return cause !== err || writeFailed(cause) ? cannotWrite(resolve(dir), cause, tool) : undefined;
}

/** Adds the watch of `file` in DATA_DIR (data-dir-watch.ts) when `watchDirMs` asks for one. */
function watchDir(path: string, file: string, options: DataStoreOptions, watched: Array<CommitWatch | DirWatch>): void {
  if ((options.watchDirMs ?? 0) <= 0) return;
  watched.push(
    watchDataDir(path, [file], options.watchDirMs!, (lost, why) =>
      (options.onCommitFailure ?? stopOnCommitFailure)(
        new DataStoreError(`DATA_DIR ${path}: ${lost} is ${why} while the node runs (the directory was deleted, moved or remounted): what the node would acknowledge now is lost at its next start, so it stops. Put DATA_DIR back (a backup: npm run data -- import FILE into an empty DATA_DIR) before starting it again`, path),
      ),
    ),
  );
}

/** The files whose growth the reserve is kept for. */
const GROWING = [FILE, 'history.mdb'];

/** The DataStoreError of a DATA_DIR with less room than `reserve`, or null. */
function roomShort(path: string, reserve: number): DataStoreError | null {
  if (reserve <= 0) return null;
  const room = diskRoom(path, GROWING);
  if (room.bytes >= reserve) return null;
  // rounded down: never "64.0 MB left, below 64.0 MB"
  const mb = (n: number) => `${(Math.floor((Math.max(0, n) / 1024 ** 2) * 10) / 10).toFixed(1)} MB`;
  const what = room.by === 'disk' ? `free space on its filesystem (df ${path})` : "the process's file size limit (ulimit -f; the disk itself has room): raise it";
  return new DataStoreError(
    `DATA_DIR ${path}: ${mb(room.bytes)} left for the store to grow (${room.by}), below the reserve of ${mb(reserve)} (TIER_DISK_RESERVE_MB): the node stops before the disk refuses a write. Nothing acknowledged is lost: ${what} and start the node again`,
    path,
  );
}

/** Every `watchDirMs`, the room left against the reserve: short, the node stops as on a failed commit. */
function watchRoom(path: string, options: DataStoreOptions, watched: Array<CommitWatch | DirWatch>): void {
  const reserve = options.reserveBytes ?? 0;
  if ((options.watchDirMs ?? 0) <= 0 || reserve <= 0) return;
  const timer = setInterval(() => {
    const short = roomShort(path, reserve);
    if (short === null) return;
    clearInterval(timer);
    (options.onCommitFailure ?? stopOnCommitFailure)(short);
  }, options.watchDirMs).unref();
  watched.push({ stop: () => clearInterval(timer) });
}

/** A file the check finds damaged (lmdb-file-check.ts): no process using it makes it look so. */
function corrupt(path: string, err: unknown): DataStoreError {
  return new DataStoreError(
    `DATA_DIR ${path}: ${FILE} cannot be read (${(err as Error).message}): the file is corrupt or truncated. Nothing was changed. Restore it from a backup (npm run data -- import FILE into an empty DATA_DIR), or move it aside to start empty`,
    path,
    { cause: err },
  );
}

/**
 * A file that passed the check and LMDB still could not open: damage inside a page, or a process
 * using it without the lock (an earlier release, the store shared with another host), which
 * threw this too. Not called corrupt: moving aside a store another process uses loses its data.
 */
function unopenable(path: string, err: unknown): DataStoreError {
  if (deniedAccess(err)) return deniedError(path, FILE, err);
  return new DataStoreError(
    `DATA_DIR ${path}: LMDB cannot open ${FILE} (${(err as Error).message}). Nothing was changed. First make sure no other process uses it (a node or npm run data of a release before 2026-12-06, in another container or on another host sharing the volume): that is a cause too. If none does, the file is damaged: restore it from a backup (npm run data -- import FILE into an empty DATA_DIR), or move it aside to start empty`,
    path,
    { cause: err },
  );
}

/** Written to stderr (synchronous for files and pipes), then the process ends at once (exit-at-once.ts says why). */
function stopOnCommitFailure(err: DataStoreError): void {
  process.stderr.write(`data error: ${err.message}\n`);
  exitAtOnce(1);
}

/** `tool`: the command that failed (`npm run data -- import`), told to run again rather than the node to start. */
function cannotWrite(path: string, err: unknown, tool?: string): DataStoreError {
  const next = tool === undefined ? `Nothing acknowledged is lost: free space on its filesystem (df ${path}) and start the node again` : `Free space on its filesystem (df ${path}) and run ${tool} again`;
  return new DataStoreError(
    `DATA_DIR ${path}: cannot write ${FILE} (${writeErrorText(err as Error, () => freeBytes(path))}). ${next}`,
    path,
    { cause: err },
  );
}

/** Below this many free bytes a failed write is taken for a full disk (a short write fills it). */
const FULL_BELOW = 1024 ** 2;

/**
 * The disk's error as the message gives it. LMDB reports a page write cut short by a full disk as
 * EIO, not ENOSPC, and operators look for ENOSPC: an EIO with the filesystem full says so.
 */
export function writeErrorText(err: Error, free: () => number | undefined): string {
  const text = describeWriteError(err);
  if (errnoName(err) !== 'EIO') return text;
  const left = free();
  return left !== undefined && left < FULL_BELOW ? `No space left on device (ENOSPC: ${left} bytes free; LMDB reported it as ${text})` : text;
}

function freeBytes(path: string): number | undefined {
  try {
    return diskSpace(path).free;
  } catch {
    return undefined;
  }
}

/** What is wrong with an LMDB file (checkLmdbFile), or null when nothing is (or it does not exist). */
function damaged(file: string): string | null {
  try {
    checkLmdbFile(file);
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Renames a damaged side file (and drops its lock file); answers the new name. */
function moveAside(file: string): string {
  const aside = `${file}.damaged-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  renameSync(file, aside);
  rmSync(`${file}-lock`, { force: true });
  return aside;
}

/** Removes a side environment's file and its lock file (lmdb-js names it `<file>-lock`). */
function discardSide(file: string): void {
  rmSync(file, { force: true });
  rmSync(`${file}-lock`, { force: true });
}

/** Stamps a new store with the layout version; refuses a store of a newer (or unknown) version. */
function checkLayout(root: RootDatabase, file: string): void {
  const found = storedLayout(root);
  if (found === undefined) {
    meta(root).putSync('layout', { layout: DATA_LAYOUT_VERSION, createdAt: Date.now() });
    return;
  }
  if (!(Number.isInteger(found) && found >= OLDEST_LAYOUT_VERSION && found <= DATA_LAYOUT_VERSION)) {
    throw new DataStoreError(`${file} has data layout ${String(found)}; this version reads layouts ${OLDEST_LAYOUT_VERSION} to ${DATA_LAYOUT_VERSION}. Nothing was changed: ${found > DATA_LAYOUT_VERSION ? 'a newer version wrote it' : 'no version writes it'}; ${NEWER_LAYOUT_FIX}`, file);
  }
}

const meta = (root: RootDatabase) => root.openDB<{ layout: number; createdAt: number }, string>({ name: 'meta', encoding: 'msgpack' });

/** The store's layout version, undefined in a new store. */
export function storedLayout(root: RootDatabase): number | undefined {
  return meta(root).get('layout')?.layout;
}

/** Records DATA_LAYOUT_VERSION, inside the transaction of the records it describes (an earlier version must never open records it cannot read). */
export function markLayout(root: RootDatabase): void {
  void meta(root).put('layout', { layout: DATA_LAYOUT_VERSION, createdAt: meta(root).get('layout')?.createdAt ?? Date.now() });
}
