/**
 * Backup and move of the embedded default's store: every record of every sub-database as one JSON
 * line (data-backup-file.ts). JSON lines, so a backup can be read, diffed and filtered with
 * ordinary tools; keys and values are what the adapters store (msgpack in the file, plain JSON
 * data here).
 */
import { closeSync, constants, createWriteStream, fstatSync, lstatSync, openSync, renameSync, rmSync, statSync, type Stats } from 'node:fs';
import type { Writable } from 'node:stream';
import { once } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { checkBackup, isLegacyHistory } from './data-backup-check.js';
import { BackupError, BackupSource, readBackup, type BackupEnd, type BackupHeader } from './data-backup-file.js';
import { DATA_LAYOUT_VERSION, type DataStore } from './ports/lmdb.js';

export { BackupError, readBackup, type BackupRecord } from './data-backup-file.js';

/** Sub-databases of the store, as LMDB lists them (the main database holds their names). */
function names(store: DataStore, transaction?: ReadTransaction): string[] {
  return [...store.root.getKeys(transaction ? { transaction } : {})].filter((k): k is string => typeof k === 'string');
}

type ReadTransaction = ReturnType<DataStore['root']['useReadTransaction']>;

/**
 * Writes every record to `out` from one read transaction, and ends it: a consistent backup of a
 * store a running node keeps writing (the admin port's `GET /debug/backup`). A copy of the running
 * store's files could be torn, and start a node that crashed on it (review "upgrade"). The
 * transaction keeps the pages it reads from reuse until the backup ends: a slow reader grows the file.
 */
export async function streamBackup(store: DataStore, out: Writable, name: string): Promise<Record<string, number>> {
  const transaction = store.root.useReadTransaction();
  try {
    return await writeRecords(store, out, true, name, transaction);
  } finally {
    transaction.done();
  }
}

/**
 * Writes every record to `file`; returns the count per sub-database. `-` is stdout. A character
 * device, FIFO or socket (or a link to one: /dev/null, /dev/stdout on a pipe or terminal) is
 * written through, in place; a link to this process's own stdout or stderr (/dev/stdout redirected
 * to a file) writes to that descriptor. Anything else is written to a new file (mode 0600, created
 * exclusively beside `file`) renamed over `file` at the end: an existing file or symlink there is
 * replaced, never written through, and a failed export leaves it as it was. A stream cut short
 * lacks the end line, which the import refuses.
 */
export async function exportStore(store: DataStore, file: string): Promise<Record<string, number>> {
  const through = destination(file);
  if (through !== null) {
    try {
      return await writeRecords(store, through.out, through.owned, file === '-' ? 'stdout' : file);
    } finally {
      if (through.owned) through.out.destroy();
    }
  }
  const temp = join(dirname(file), `.${basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const out = createWriteStream(temp, { flags: 'wx', mode: 0o600 });
  try {
    await once(out, 'open');
    const counts = await writeRecords(store, out, true, file);
    renameSync(temp, file);
    return counts;
  } catch (err) {
    out.destroy();
    rmSync(temp, { force: true });
    throw err;
  }
}

/**
 * The stream an export writes through (`owned`: opened here, ended when done; else stdout or
 * stderr), or null for a new file renamed over `file`. A BackupError for a directory, a block
 * device (a disk is never written over) or a path that cannot be opened.
 */
function destination(file: string): { out: Writable; owned: boolean } | null {
  if (file === '-') return { out: process.stdout, owned: false };
  let target: Stats;
  try {
    target = statSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null; // absent, or a dangling symlink: replaced
    throw new BackupError(`${file}: cannot be written (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  if (target.isDirectory()) throw new BackupError(`${file} is a directory: name a file to write the backup to`);
  if (target.isBlockDevice()) throw new BackupError(`${file} is a block device: a backup is never written over a disk`);
  if (target.isFile()) {
    if (!lstatSync(file).isSymbolicLink()) return null;
    // /dev/stdout, /dev/fd/1: the file the shell redirected stdout to, written as the shell opened it
    if (sameFile(target, 1)) return { out: process.stdout, owned: false };
    if (sameFile(target, 2)) return { out: process.stderr, owned: false };
    return null;
  }
  let fd: number;
  try {
    // neither made nor truncated: a device, FIFO or socket is written as it is
    fd = openSync(file, constants.O_WRONLY | constants.O_NOCTTY);
  } catch (err) {
    throw new BackupError(`${file}: cannot be opened for writing (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  if (fstatSync(fd).isFile()) {
    closeSync(fd);
    throw new BackupError(`${file} became a regular file while it was opened: nothing written; export again`);
  }
  return { out: createWriteStream('', { fd }), owned: true };
}

function sameFile(s: Stats, fd: number): boolean {
  try {
    const other = fstatSync(fd);
    return other.dev === s.dev && other.ino === s.ino;
  } catch {
    return false; // not open
  }
}

/**
 * The header, every record and the end line; `end`s `out` (else waits for the last write: stdout
 * is not ended). A write error (EPIPE: the reader went away; ENOSPC) is a BackupError naming `name`.
 */
async function writeRecords(store: DataStore, out: Writable, end: boolean, name: string, transaction?: ReadTransaction): Promise<Record<string, number>> {
  let failed: BackupError | null = null;
  const onError = (err: Error) => (failed ??= new BackupError(`cannot write ${name} (${err.message}): the backup is not whole`, { cause: err }));
  out.on('error', onError);
  // an error fails the write waiting for a drain, or the one after it
  const written = async (wait: Promise<unknown>) => {
    try {
      await wait;
    } catch (err) {
      onError(err as Error);
    }
    if (failed) throw failed;
  };
  const digest = createHash('sha256');
  const write = async (line: string) => {
    if (failed) throw failed;
    digest.update(line + '\n');
    if (!out.write(line + '\n')) await written(once(out, 'drain'));
  };
  try {
    const counts: Record<string, number> = {};
    const header: BackupHeader = { hubtier: 'data', layout: DATA_LAYOUT_VERSION, exportedAt: Date.now(), ends: true };
    await write(JSON.stringify(header));
    let records = 0;
    for (const name of names(store, transaction)) {
      if (name === 'meta') continue; // the target store stamps its own
      let n = 0;
      for (const { key, value } of store.db(name).getRange(transaction ? { transaction } : {})) {
        await write(JSON.stringify({ db: name, key, value }));
        n++;
      }
      counts[name] = n;
      records += n;
    }
    const last = JSON.stringify({ hubtier: 'end', records, sha256: digest.digest('hex') } satisfies BackupEnd) + '\n';
    await written(new Promise<void>((resolve, reject) => {
      const done = (err?: Error | null) => (err ? reject(err) : resolve());
      if (end) out.end(last, done);
      else out.write(last, done);
    }));
    return counts;
  } finally {
    out.off('error', onError);
  }
}

/**
 * Reads a backup into `store`, which must hold no records yet (nothing is merged or overwritten).
 * `file` (`-`: stdin) is opened once: the whole of it is checked first (checkBackup: a
 * BackupError naming the line, nothing written), then written in one LMDB transaction (the
 * history's records of stores before history.mdb left out): an error or a crash part-way commits
 * nothing. A regular file is read again from the same descriptor and must read the same bytes
 * (SHA-256) as the check did; a pipe's records are kept in memory from the check. A record LMDB
 * cannot store (a key over its 1,978 bytes) is a BackupError naming its line. Returns the count
 * per sub-database.
 */
export async function importStore(store: DataStore, file: string): Promise<Record<string, number>> {
  for (const name of names(store)) {
    if (name !== 'meta' && store.db(name).getKeysCount() > 0) throw new BackupError(`DATA_DIR ${store.dir} is not empty (${name} holds records): import into a new DATA_DIR`);
  }
  const source = BackupSource.open(file);
  try {
    const checked = checkBackup(source, { keep: !source.rereadable });
    const digest = source.digest;
    const changed = () => new BackupError(`${source.name} changed while it was imported: nothing written; import it again once nothing writes it`);
    // the second read of the descriptor the check read: a fault it finds now was written since
    const reread = function* () {
      try {
        yield* readBackup(source);
      } catch (err) {
        throw err instanceof BackupError ? changed() : err;
      }
    };
    // opened before the write transaction, each at most once
    const dbs = new Map(Object.keys(checked.counts).map((name) => [name, store.db(name)]));
    store.root.transactionSync(() => {
      for (const r of source.rereadable ? reread() : [...checked.records.values()].flat()) {
        if (isLegacyHistory(r.db)) continue;
        const db = dbs.get(r.db);
        if (db === undefined) throw changed();
        // the store starts empty, so a key it holds was a line before this one: no export writes a key
        // twice, and the later line silently won (a hub counted twice, a scene replaced)
        if (db.doesExist(r.key as string)) throw new BackupError(`${source.name}:${r.line}: ${r.db} record: a second record with the key ${JSON.stringify(r.key)} (an export writes each key once: edited?)`);
        try {
          void db.put(r.key as string, r.value);
        } catch (err) {
          throw new BackupError(`${source.name}:${r.line}: ${r.db} record: the store cannot hold it (${(err as Error).message})`, { cause: err });
        }
      }
      // thrown inside the transaction: what the second read wrote is rolled back
      if (source.rereadable && source.digest !== digest) throw changed();
    });
    // the transaction above committed synchronously: this waits for its sync
    await store.written(Promise.resolve());
    return checked.counts;
  } finally {
    source.close();
  }
}
