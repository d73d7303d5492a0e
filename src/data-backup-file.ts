/**
 * The backup file of the embedded default's store (`npm run data`): JSON lines, a header
 * `{"hubtier": "data", "layout": N, "exportedAt": ms, "ends": true}`, one line
 * `{"db": name, "key": key, "value": value}` per record, and (when the header says `ends`) an end
 * line `{"hubtier": "end", "records": N}`, so that a copy cut short at a line's end is seen too.
 * Read synchronously: the import writes it inside one LMDB transaction.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { DATA_LAYOUT_VERSION } from './ports/lmdb.js';

export interface BackupHeader {
  hubtier: 'data';
  layout: number;
  exportedAt: number;
  /** an end line follows the records (backups of earlier versions have none) */
  ends?: true;
}

export interface BackupEnd {
  hubtier: 'end';
  /** the records before it */
  records: number;
}

export class BackupError extends Error {
  override name = 'BackupError';
}

/** One record of a backup: a key and value of sub-database `db`, as its adapter stores them; `line` its line in the file (from 1). */
export interface BackupRecord {
  db: string;
  key: unknown;
  value: unknown;
  line: number;
}

/** The file's lines, read in chunks (a backup may be larger than memory holds comfortably). */
function* lines(file: string): Generator<string> {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    throw new BackupError(`${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  try {
    const chunk = Buffer.alloc(1 << 20);
    const decoder = new StringDecoder('utf8');
    let rest = '';
    for (let n; (n = readSync(fd, chunk, 0, chunk.length, null)) > 0; ) {
      const parts = (rest + decoder.write(chunk.subarray(0, n))).split('\n');
      rest = parts.pop()!;
      yield* parts;
    }
    rest += decoder.end();
    if (rest !== '') yield rest;
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads a backup's records in file order, after checking its header; a BackupError naming the
 * line for a line that is not JSON or not a record, and for a file cut short (no end line).
 */
export function* readBackup(file: string): Generator<BackupRecord> {
  let header: BackupHeader | null = null;
  let end: BackupEnd | null = null;
  let records = 0;
  let lineNo = 0;
  for (const line of lines(file)) {
    lineNo++;
    if (line.trim() === '') continue;
    if (end !== null) throw new BackupError(`${file}:${lineNo}: a line after the end line`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      throw new BackupError(`${file}:${lineNo}: not JSON (a copy cut short, or edited?)`);
    }
    if (header === null) {
      const h = parsed as Partial<BackupHeader>;
      if (h.hubtier !== 'data') throw new BackupError(`${file}: not a hubtier backup (its first line has no "hubtier": "data")`);
      // a backup of version 1 holds records of any earlier layout (the node rewrites them when it opens the store)
      if (h.layout !== 1 && h.layout !== DATA_LAYOUT_VERSION) throw new BackupError(`${file}: data layout ${String(h.layout)}; this version reads 1 and ${DATA_LAYOUT_VERSION}: a newer version wrote it, import it with that version`);
      header = h as BackupHeader;
      continue;
    }
    const r = parsed as { db?: unknown; key?: unknown; value?: unknown; hubtier?: unknown; records?: unknown };
    if (header.ends && r.hubtier === 'end') {
      if (r.records !== records) throw new BackupError(`${file}:${lineNo}: the end line counts ${String(r.records)} records, the file holds ${records}`);
      end = r as BackupEnd;
      continue;
    }
    if (typeof r.db !== 'string' || r.db === 'meta' || r.key === undefined || !('value' in r)) throw new BackupError(`${file}:${lineNo}: expected {"db", "key", "value"}`);
    records++;
    yield { db: r.db, key: r.key, value: r.value, line: lineNo };
  }
  if (header === null) throw new BackupError(`${file}: empty`);
  if (header.ends && end === null) throw new BackupError(`${file}:${lineNo}: cut short (no end line after ${records} records)`);
}
