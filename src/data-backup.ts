/**
 * Backup and move of the embedded default's store: every record of every sub-database as one JSON
 * line `{"db": name, "key": key, "value": value}`, after a header line
 * `{"hubtier": "data", "layout": N, "exportedAt": ms}`. JSON lines, so a backup can be read,
 * diffed and filtered with ordinary tools; keys and values are what the adapters store (msgpack
 * in the file, plain JSON data here).
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { DATA_LAYOUT_VERSION, type DataStore } from './ports/lmdb.js';

export interface BackupHeader {
  hubtier: 'data';
  layout: number;
  exportedAt: number;
}

/** Sub-databases of the store, as LMDB lists them (the main database holds their names). */
function names(store: DataStore): string[] {
  return [...store.root.getKeys()].filter((k): k is string => typeof k === 'string');
}

/** Writes every record to `file`; returns the count per sub-database. */
export async function exportStore(store: DataStore, file: string): Promise<Record<string, number>> {
  const out = createWriteStream(file, { mode: 0o600 });
  const counts: Record<string, number> = {};
  const write = async (line: string) => {
    if (!out.write(line + '\n')) await once(out, 'drain');
  };
  const header: BackupHeader = { hubtier: 'data', layout: DATA_LAYOUT_VERSION, exportedAt: Date.now() };
  await write(JSON.stringify(header));
  for (const name of names(store)) {
    if (name === 'meta') continue; // the target store stamps its own
    let n = 0;
    for (const { key, value } of store.db(name).getRange()) {
      await write(JSON.stringify({ db: name, key, value }));
      n++;
    }
    counts[name] = n;
  }
  out.end();
  await once(out, 'finish');
  return counts;
}

export class BackupError extends Error {
  override name = 'BackupError';
}

/**
 * Reads a backup into `store`, which must hold no records yet (nothing is merged or overwritten).
 * Written in transactions of `batch` records; returns the count per sub-database.
 */
export async function importStore(store: DataStore, file: string, batch = 1_000): Promise<Record<string, number>> {
  for (const name of names(store)) {
    if (name !== 'meta' && store.db(name).getKeysCount() > 0) throw new BackupError(`DATA_DIR ${store.dir} is not empty (${name} holds records): import into a new DATA_DIR`);
  }
  const counts: Record<string, number> = {};
  let pending: BackupRecord[] = [];
  const commit = async () => {
    const records = pending;
    pending = [];
    await store.root.transaction(() => {
      for (const r of records) store.db(r.db).put(r.key as string, r.value);
    });
  };
  for await (const r of readBackup(file)) {
    pending.push(r);
    counts[r.db] = (counts[r.db] ?? 0) + 1;
    if (pending.length >= batch) await commit();
  }
  if (pending.length > 0) await commit();
  return counts;
}

/** One record of a backup: a key and value of sub-database `db`, as its adapter stores them. */
export interface BackupRecord {
  db: string;
  key: unknown;
  value: unknown;
}

/** Reads a backup's records in file order, after checking its header (a BackupError if it is not one). */
export async function* readBackup(file: string): AsyncGenerator<BackupRecord> {
  const lines = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
  let header: BackupHeader | null = null;
  let lineNo = 0;
  for await (const line of lines) {
    lineNo++;
    if (line.trim() === '') continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      throw new BackupError(`${file}:${lineNo}: not JSON`);
    }
    if (header === null) {
      const h = parsed as Partial<BackupHeader>;
      if (h.hubtier !== 'data') throw new BackupError(`${file}: not a hubtier backup (its first line has no "hubtier": "data")`);
      if (h.layout !== DATA_LAYOUT_VERSION) throw new BackupError(`${file}: data layout ${String(h.layout)}; this version reads ${DATA_LAYOUT_VERSION}`);
      header = h as BackupHeader;
      continue;
    }
    const r = parsed as { db?: unknown; key?: unknown; value?: unknown };
    if (typeof r.db !== 'string' || r.db === 'meta' || r.key === undefined || !('value' in r)) throw new BackupError(`${file}:${lineNo}: expected {"db", "key", "value"}`);
    yield { db: r.db, key: r.key, value: r.value };
  }
  if (header === null) throw new BackupError(`${file}: empty`);
}
