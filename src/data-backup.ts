/**
 * Backup and move of the embedded default's store: every record of every sub-database as one JSON
 * line (data-backup-file.ts). JSON lines, so a backup can be read, diffed and filtered with
 * ordinary tools; keys and values are what the adapters store (msgpack in the file, plain JSON
 * data here).
 */
import { createWriteStream, renameSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { checkBackup, isLegacyHistory } from './data-backup-check.js';
import { BackupError, readBackup, type BackupEnd, type BackupHeader } from './data-backup-file.js';
import { DATA_LAYOUT_VERSION, type DataStore } from './ports/lmdb.js';

export { BackupError, readBackup, type BackupRecord } from './data-backup-file.js';

/** Sub-databases of the store, as LMDB lists them (the main database holds their names). */
function names(store: DataStore): string[] {
  return [...store.root.getKeys()].filter((k): k is string => typeof k === 'string');
}

/**
 * Writes every record to `file`; returns the count per sub-database. Written to a new file (mode
 * 0600, created exclusively beside `file`) renamed over `file` at the end: an existing file or
 * symlink there is replaced, never written through, and a failed export leaves it as it was.
 */
export async function exportStore(store: DataStore, file: string): Promise<Record<string, number>> {
  const temp = join(dirname(file), `.${basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const out = createWriteStream(temp, { flags: 'wx', mode: 0o600 });
  try {
    await once(out, 'open');
    const counts: Record<string, number> = {};
    const write = async (line: string) => {
      if (!out.write(line + '\n')) await once(out, 'drain');
    };
    const header: BackupHeader = { hubtier: 'data', layout: DATA_LAYOUT_VERSION, exportedAt: Date.now(), ends: true };
    await write(JSON.stringify(header));
    let records = 0;
    for (const name of names(store)) {
      if (name === 'meta') continue; // the target store stamps its own
      let n = 0;
      for (const { key, value } of store.db(name).getRange()) {
        await write(JSON.stringify({ db: name, key, value }));
        n++;
      }
      counts[name] = n;
      records += n;
    }
    const end: BackupEnd = { hubtier: 'end', records };
    await write(JSON.stringify(end));
    out.end();
    await once(out, 'finish');
    renameSync(temp, file);
    return counts;
  } catch (err) {
    out.destroy();
    rmSync(temp, { force: true });
    throw err;
  }
}

/**
 * Reads a backup into `store`, which must hold no records yet (nothing is merged or overwritten).
 * The whole file is checked first (checkBackup: a BackupError naming the line, nothing written),
 * then written in one LMDB transaction (the history's records of stores before history.mdb left out): an error or a crash part-way commits nothing. Returns the
 * count per sub-database.
 */
export async function importStore(store: DataStore, file: string): Promise<Record<string, number>> {
  for (const name of names(store)) {
    if (name !== 'meta' && store.db(name).getKeysCount() > 0) throw new BackupError(`DATA_DIR ${store.dir} is not empty (${name} holds records): import into a new DATA_DIR`);
  }
  const { counts } = checkBackup(file);
  // opened before the write transaction, each at most once
  const dbs = new Map(Object.keys(counts).map((name) => [name, store.db(name)]));
  store.root.transactionSync(() => {
    for (const r of readBackup(file)) if (!isLegacyHistory(r.db)) void dbs.get(r.db)!.put(r.key as string, r.value);
  });
  await store.durable();
  return counts;
}
