/**
 * The backup file of the embedded default's store (`npm run data`): JSON lines, a header
 * `{"hubtier": "data", "layout": N, "exportedAt": ms, "ends": true}`, one line
 * `{"db": name, "key": key, "value": value}` per record, and (when the header says `ends`) an end
 * line `{"hubtier": "end", "records": N, "sha256": hex}`, so that a copy cut short at a line's end
 * is seen too, and one changed after the export (a flipped bit, a line repeated or edited): the
 * digest is of every line before it, each with its newline (backups before 2026-12-06 have none).
 * Read synchronously: the import writes it inside one LMDB transaction. `-` is stdin.
 */
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
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
  /** SHA-256 (hex) of every line before it, each with its newline */
  sha256?: string;
}

export class BackupError extends Error {
  override name = 'BackupError';
}

/** The longest line read, bytes: a record is a key and one value (a hub's shadow is at most 128 KiB by default). */
export const MAX_LINE_BYTES = 64 * 1024 * 1024;
const NEWLINE = 0x0a;
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function tooLong(file: string, lineNo: number): BackupError {
  return new BackupError(`${file}:${lineNo}: a line longer than ${MAX_LINE_BYTES / 1024 / 1024} MiB (no export writes one: damaged, or not a backup)`);
}

/** One record of a backup: a key and value of sub-database `db`, as its adapter stores them; `line` its line in the file (from 1). */
export interface BackupRecord {
  db: string;
  key: unknown;
  value: unknown;
  line: number;
}

const PAUSE = new Int32Array(new SharedArrayBuffer(4));

/**
 * A backup opened once (`-`: stdin): every pass reads this descriptor, never the path again, so a
 * file renamed over the path meanwhile is never read. A regular file is read again from its start
 * and each whole pass's SHA-256 kept (`digest`), so a caller can tell that two passes read the same
 * bytes; anything else (a pipe: `<(gunzip -c b.jsonl.gz)`, stdin) is read once.
 */
export class BackupSource {
  /** a regular file: `lines` can be read again from its start */
  readonly rereadable: boolean;
  /** SHA-256 (hex) of the bytes of the last whole pass; null while none has ended */
  digest: string | null = null;
  private passes = 0;

  private constructor(
    /** the file as messages name it */
    readonly name: string,
    private readonly fd: number,
  ) {
    this.rereadable = fstatSync(fd).isFile();
  }

  /** Opens `file` (`-`: stdin, read from its start when it is a file, never closed); a BackupError when it cannot be read. */
  static open(file: string): BackupSource {
    if (file === '-') return new BackupSource('stdin', 0);
    try {
      return new BackupSource(file, openSync(file, 'r'));
    } catch (err) {
      throw new BackupError(`${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  }

  /**
   * The file's lines from its start, read in chunks (a backup may be larger than memory holds
   * comfortably), split on the newline byte and each decoded on its own. A line that is not UTF-8
   * is refused (a decoder that writes U+FFFD imported it so, or called the file changed), as is
   * one past `MAX_LINE_BYTES` (a 560 MB line ended in a RangeError's stack trace, and long lines
   * were joined again for every chunk: 100 MB took 3.8 s and 779 MB).
   */
  *lines(): Generator<string> {
    if (this.passes++ > 0 && !this.rereadable) throw new Error(`${this.name}: a pipe is read once`);
    this.digest = null;
    const hash = createHash('sha256');
    const chunk = Buffer.alloc(1 << 20);
    // the pieces of the line not yet ended, copied out of the chunk the next read overwrites
    let pieces: Buffer[] = [];
    let pending = 0;
    let lineNo = 0;
    const line = (tail: Buffer): string => {
      lineNo++;
      const bytes = pieces.length === 0 ? tail : Buffer.concat([...pieces, tail]);
      pieces = [];
      pending = 0;
      try {
        return UTF8.decode(bytes);
      } catch {
        throw new BackupError(`${this.name}:${lineNo}: not valid UTF-8 (no export writes such bytes: damaged, or edited)`);
      }
    };
    for (let n, at = 0; (n = this.read(chunk, at)) > 0; at += n) {
      const bytes = chunk.subarray(0, n);
      hash.update(bytes);
      let from = 0;
      for (let nl; (nl = bytes.indexOf(NEWLINE, from)) !== -1; from = nl + 1) {
        if (pending + nl - from > MAX_LINE_BYTES) throw tooLong(this.name, lineNo + 1);
        yield line(bytes.subarray(from, nl));
      }
      if (from < n) {
        pending += n - from;
        if (pending > MAX_LINE_BYTES) throw tooLong(this.name, lineNo + 1);
        pieces.push(Buffer.from(bytes.subarray(from)));
      }
    }
    if (pending > 0) yield line(Buffer.alloc(0));
    this.digest = hash.digest('hex');
  }

  /** Bytes read into `chunk` from `at` (a pipe: its next bytes); 0 at the end. */
  private read(chunk: Buffer, at: number): number {
    for (;;) {
      try {
        return readSync(this.fd, chunk, 0, chunk.length, this.rereadable ? at : null);
      } catch (err) {
        // stdin left non-blocking by whoever opened it: wait for its writer
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
        Atomics.wait(PAUSE, 0, 0, 10);
      }
    }
  }

  close(): void {
    if (this.fd !== 0) closeSync(this.fd);
  }
}

/** Whether `v` holds a number JSON.parse read as Infinity (`1e400`): no export writes one (JSON.stringify writes null). */
function hasNonFinite(v: unknown): boolean {
  // iterative: a value nested deeper than the stack stays a refusal, not a RangeError
  const stack = [v];
  while (stack.length > 0) {
    const x = stack.pop();
    if (typeof x === 'number') {
      if (!Number.isFinite(x)) return true;
    } else if (typeof x === 'object' && x !== null) {
      for (const k in x) stack.push((x as Record<string, unknown>)[k]);
    }
  }
  return false;
}

/**
 * Reads a backup's records in file order, after checking its header; a BackupError naming the
 * line for a line that is not JSON or not a record (or holds a number JSON.parse reads as
 * Infinity), and for a file cut short (no end line). `from`: a path (`-`: stdin), opened for this
 * pass, or a source opened once for several.
 */
export function* readBackup(from: string | BackupSource): Generator<BackupRecord> {
  const source = typeof from === 'string' ? BackupSource.open(from) : from;
  try {
    yield* recordsOf(source);
  } finally {
    if (typeof from === 'string') source.close();
  }
}

function* recordsOf(source: BackupSource): Generator<BackupRecord> {
  const file = source.name;
  let header: BackupHeader | null = null;
  let end: BackupEnd | null = null;
  let records = 0;
  let lineNo = 0;
  const digest = createHash('sha256');
  for (const line of source.lines()) {
    lineNo++;
    if (end !== null && line.trim() !== '') throw new BackupError(`${file}:${lineNo}: a line after the end line`);
    if (line.trim() === '') {
      if (end === null) digest.update('\n');
      continue;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      // `npm run data -- export -` writes npm's own banner to stdout first (a newcomer's walk, 2026-12-06)
      if (header === null && line.startsWith('> ')) throw new BackupError(`${file}:${lineNo}: npm's "> …" banner, not JSON: this copy was made through \`npm run\` without -s; remove the lines before the first "{" (export with \`npm run -s data -- export -\`)`);
      throw new BackupError(`${file}:${lineNo}: not JSON (a copy cut short, or edited?)`);
    }
    if (header === null) {
      const h = parsed as Partial<BackupHeader>;
      if (h.hubtier !== 'data') throw new BackupError(`${file}: not a hubtier backup (its first line has no "hubtier": "data")`);
      // a backup of version 1 holds records of any earlier layout (the node rewrites them when it opens the store)
      if (h.layout !== 1 && h.layout !== DATA_LAYOUT_VERSION) throw new BackupError(`${file}: data layout ${String(h.layout)}; this version reads 1 and ${DATA_LAYOUT_VERSION}: a newer version wrote it, import it with that version`);
      header = h as BackupHeader;
      digest.update(line + '\n');
      continue;
    }
    const r = parsed as { db?: unknown; key?: unknown; value?: unknown; hubtier?: unknown; records?: unknown };
    if (header.ends && r.hubtier === 'end') {
      if (r.records !== records) throw new BackupError(`${file}:${lineNo}: the end line counts ${String(r.records)} records, the file holds ${records}`);
      end = r as BackupEnd;
      if (end.sha256 !== undefined && end.sha256 !== digest.digest('hex')) throw new BackupError(`${file}:${lineNo}: the lines before the end line are not those exported (their SHA-256 differs from the end line's): changed after the export`);
      continue;
    }
    if (typeof r.db !== 'string' || r.db === 'meta' || r.key === undefined || !('value' in r)) throw new BackupError(`${file}:${lineNo}: expected {"db", "key", "value"}`);
    if (hasNonFinite(r.key) || hasNonFinite(r.value)) throw new BackupError(`${file}:${lineNo}: a number out of range (read as Infinity, as 1e400 is): no export writes one`);
    records++;
    digest.update(line + '\n');
    yield { db: r.db, key: r.key, value: r.value, line: lineNo };
  }
  if (header === null) throw new BackupError(`${file}: empty`);
  if (header.ends && end === null) throw new BackupError(`${file}:${lineNo}: cut short (no end line after ${records} records)`);
}
