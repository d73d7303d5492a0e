/**
 * One live process per data directory: it holds an exclusive flock(2) on DATA_DIR/node.lock for as
 * long as it has the store open. The kernel drops the flock when the process ends however it ends,
 * two processes starting at one instant cannot both get it, and it holds across PID namespaces (two
 * containers on one volume, each pid 1). The file's lines (pid, owner, identity, boot id) are
 * information: for the refusal's message, and for what a start after an unclean stop may trust.
 * Until 2026-12-06 the pid in the file was the lock: two starters racing both took it, and a second
 * container (pid 1 too) took a running node's lock for a stale one of its own.
 */
import { closeSync, constants, fstatSync, fsyncSync, ftruncateSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { constants as os } from 'node:os';
import { loadLibc } from './libc.js';
import { join } from 'node:path';
import { DataStoreError } from './data-store-error.js';
import { ownIdentity, processAlive, processIdentity } from './process-identity.js';

export const LOCK_FILE = 'node.lock';

export interface DirectoryClaim {
  /** a lock was left behind: the last process using the directory did not stop cleanly */
  readonly stale: boolean;
  /**
   * The lock left behind was written since the machine last booted (both boot ids known and equal):
   * the process died, the page cache did not, so every commit it made is whole even unsynced.
   */
  readonly sameBoot: boolean;
  /**
   * Removes the lock file (while it is still the one held) and drops the flock; idempotent.
   * `keepStale`: this process did not do what a start after an unclean stop does (its start failed
   * on a full disk, or it is a tool): a stale lock's lines are written back instead, so the next
   * start still sees that stop. Removed, a refused start made the crash before it read as clean
   * (rules of acknowledged events not replayed, the history's epoch kept; review "diskfull").
   */
  release(keepStale?: boolean): void;
}

/**
 * Claims `dir` for this process, `owner` written into the lock for a second starter's message.
 * Refuses (DataStoreError "is in use by another node") while another process holds it; never
 * deletes or rewrites a lock it did not get. Where flock cannot be called (koffi or libc missing),
 * `warn` is told, and the pid in the file decides as before 2026-12-06.
 */
export function claimDirectory(dir: string, owner: string, warn: (message: string) => void): DirectoryClaim {
  const flock = loadFlock();
  if ('call' in flock) return claimWithFlock(dir, owner, flock);
  warn(`DATA_DIR ${dir}: cannot call flock (${flock.unavailable}): ${LOCK_FILE} is judged by the pid it holds, which cannot tell a node in another container (PID namespace) from a stale lock; never let two containers share DATA_DIR`);
  return claimByPid(dir, owner);
}

/** flock(2) through koffi, as malloc-trim.ts loads malloc_trim; or why it cannot be called. */
interface FlockCall {
  call: (fd: number, op: number) => number;
  /** errno of the last call */
  errno: () => number;
}
type Flock = FlockCall | { unavailable: string };
let loaded: Flock | undefined;
const LOCK_EX = 2;
const LOCK_NB = 4;

function loadFlock(): Flock {
  return (loaded ??= lookUpFlock());
}

function lookUpFlock(): Flock {
  const libc = loadLibc();
  if ('unavailable' in libc) return libc;
  try {
    return { call: libc.func('int flock(int fd, int op)') as (fd: number, op: number) => number, errno: () => libc.errno() };
  } catch (err) {
    return { unavailable: `koffi: ${(err as Error).message.split('\n')[0]}` };
  }
}

function claimWithFlock(dir: string, owner: string, flock: FlockCall): DirectoryClaim {
  const lock = join(dir, LOCK_FILE);
  // a holder unlinks the file before it lets go: a flock got on the unlinked file locks nothing, so
  // it is taken again on the file now of that name
  for (let attempt = 0; attempt < 3; attempt++) {
    const fd = openLock(dir, lock);
    let kept = false;
    try {
      if (!tryFlock(dir, flock, fd)) throw inUse(dir, readLock(fd));
      if (!isFile(fd, lock)) continue;
      const before = readLock(fd);
      // an earlier release's node (no flock) still running here: during an upgrade
      if (before.pid !== undefined && held(before.pid, before.identity)) throw inUse(dir, before);
      writeLock(dir, fd, owner);
      kept = true;
      let released = false;
      const stale = before.text !== '';
      const release = (keepStale = false) => {
        if (released) return;
        released = true;
        try {
          if (!isFile(fd, lock)) return;
          if (keepStale && stale) keepLines(() => rewriteLock(dir, fd, before.text));
          else rmSync(lock, { force: true });
        } finally {
          closeSync(fd);
        }
      };
      return { stale, sameBoot: stale && sameBoot(before.boot), release };
    } finally {
      if (!kept) closeSync(fd);
    }
  }
  throw new DataStoreError(`DATA_DIR ${dir}: another process keeps replacing ${LOCK_FILE}`, dir);
}

function openLock(dir: string, lock: string): number {
  try {
    return openSync(lock, constants.O_RDWR | constants.O_CREAT, 0o600);
  } catch (err) {
    throw new DataStoreError(`DATA_DIR ${dir}: cannot create ${LOCK_FILE} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, dir, { cause: err });
  }
}

/** true: got it; false: another open file holds it (another process, or a second store in this one) */
function tryFlock(dir: string, flock: FlockCall, fd: number): boolean {
  for (;;) {
    if (flock.call(fd, LOCK_EX | LOCK_NB) === 0) return true;
    const errno = flock.errno();
    if (errno === os.errno.EINTR) continue;
    if (errno === os.errno.EWOULDBLOCK || errno === os.errno.EAGAIN) return false;
    const name = Object.entries(os.errno).find(([, n]) => n === errno)?.[0] ?? `errno ${errno}`;
    throw new DataStoreError(`DATA_DIR ${dir}: cannot lock ${LOCK_FILE} (flock: ${name}); its filesystem must support flock, or choose another DATA_DIR`, dir);
  }
}

/** Whether `lock` still names the file open as `fd` (device and inode). */
function isFile(fd: number, lock: string): boolean {
  try {
    const [open, named] = [fstatSync(fd), statSync(lock)];
    return open.dev === named.dev && open.ino === named.ino;
  } catch {
    return false;
  }
}

/** Writes this process's lines, synced with the directory's entry: the boot id must outlive a machine crash. */
function writeLock(dir: string, fd: number, owner: string): void {
  rewriteLock(dir, fd, `${process.pid}\n${owner}\n${ownIdentity()}\n${bootId() ?? ''}\n`);
}

/**
 * The lock's lines replaced by `text`, synced: written over the old ones, then cut to its length, so
 * a write a full disk refuses leaves the old lines rather than an empty file (which reads as a clean stop).
 */
function rewriteLock(dir: string, fd: number, text: string): void {
  writeSync(fd, text, 0);
  ftruncateSync(fd, Buffer.byteLength(text));
  fsyncSync(fd);
  try {
    const d = openSync(dir, 'r');
    try {
      fsyncSync(d);
    } finally {
      closeSync(d);
    }
  } catch {
    // a platform that cannot sync a directory: the file's own sync is what it gets
  }
}

interface LockLines {
  text: string;
  pid: number | undefined;
  owner: string | undefined;
  identity: string | undefined;
  boot: string | undefined;
}

function readLock(from: number | string): LockLines {
  let text = '';
  try {
    if (typeof from === 'string') text = readFileSync(from, 'utf8');
    else {
      const buf = Buffer.alloc(4096);
      text = buf.toString('utf8', 0, readSync(from, buf, 0, buf.length, 0));
    }
  } catch {
    // unreadable: named as no owner
  }
  const [pidLine, owner, identity, boot] = text.split('\n');
  const pid = Number(pidLine);
  return { text, pid: pidLine && Number.isSafeInteger(pid) && pid > 0 ? pid : undefined, owner: owner || undefined, identity: identity || undefined, boot: boot || undefined };
}

function inUse(dir: string, holder: LockLines): DataStoreError {
  const { pid } = holder;
  // this pid is ours but the identity not: the same pid in another PID namespace
  const where = pid === process.pid && holder.identity !== ownIdentity() ? ' in another PID namespace (another container)' : '';
  const who = pid === undefined ? 'its lock names no owner yet: it is starting' : `${holder.owner ?? `pid ${pid}`}, pid ${pid}${where}`;
  return new DataStoreError(`DATA_DIR ${dir} is in use by another node (${who}): two nodes must not share one data directory; give each its own DATA_DIR (a tool such as \`npm run data\`: stop the node first, or take a running node's backup from its admin port, GET /debug/backup)`, dir);
}

let boot: string | null | undefined;
/** The kernel's boot id: a new one at each boot; undefined where /proc does not have it. */
function bootId(): string | undefined {
  if (boot === undefined) {
    try {
      boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || null;
    } catch {
      boot = null;
    }
  }
  return boot ?? undefined;
}

/**
 * A stale lock's lines written back at a release (`keepStale`); a disk that refuses even that keeps
 * this process's lines, which still say an unclean stop, and the refusal being released for is not hidden.
 */
function keepLines(write: () => void): void {
  try {
    write();
  } catch {
    // the lines written at the claim stay: a stop that was not clean, of this boot
  }
}

/** Unknown on either side counts as another boot: the history is then not trusted, as before. */
function sameBoot(recorded: string | undefined): boolean {
  const now = bootId();
  return recorded !== undefined && now !== undefined && recorded === now;
}

/**
 * Without flock: a lock whose process is gone (a crash), or whose pid another process has now (pid 1
 * in a restarted container), is taken over; a live one is refused. Not atomic, and blind across
 * PID namespaces: the fallback alone.
 */
function claimByPid(dir: string, owner: string): DirectoryClaim {
  const lock = join(dir, LOCK_FILE);
  let stale = false;
  let recorded: string | undefined;
  let found = '';
  for (let attempt = 0; attempt < 2; attempt++) {
    let fd: number;
    try {
      fd = openSync(lock, 'wx', 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new DataStoreError(`DATA_DIR ${dir}: cannot create ${LOCK_FILE} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, dir, { cause: err });
      }
      const before = readLock(lock);
      if (before.pid !== undefined && held(before.pid, before.identity)) throw inUse(dir, before);
      rmSync(lock, { force: true });
      stale = true;
      recorded = before.boot;
      found = before.text;
      continue;
    }
    writeLock(dir, fd, owner);
    closeSync(fd);
    let released = false;
    const release = (keepStale = false) => {
      if (released) return;
      released = true;
      if (keepStale && stale) keepLines(() => writeFileSync(lock, found, { mode: 0o600 }));
      else rmSync(lock, { force: true });
    };
    return { stale, sameBoot: stale && sameBoot(recorded), release };
  }
  throw new DataStoreError(`DATA_DIR ${dir}: another process keeps taking ${LOCK_FILE}`, dir);
}

/**
 * Whether the lock's process still runs (without a flock to ask). This very process holds it when
 * the identity is its own; with another identity, or none (a lock of a version that wrote none), its
 * pid was an earlier process's. Another live pid holds it unless its identity, where both are known,
 * says it is a later process.
 */
function held(pid: number, identity: string | undefined): boolean {
  if (pid === process.pid) return identity === ownIdentity();
  if (!processAlive(pid)) return false;
  const now = processIdentity(pid);
  return identity === undefined || now === undefined || now === identity;
}
