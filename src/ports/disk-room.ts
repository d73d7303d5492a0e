/**
 * How far the store's files may still grow: the free space of DATA_DIR's filesystem (as an
 * unprivileged process sees it) and the process's file size limit (RLIMIT_FSIZE) less the largest
 * file. The node stops while this is above its reserve, never at a write the disk refuses: on
 * such a write lmdb-js 3.5 formats its error into a 100-byte heap buffer the text can overrun
 * (mdb.c, mdb_page_flush), and after it a full-disk test saw the process abort and, once, a
 * transaction reported committed missing at the next start (a hostile review, 2026-12-06).
 */
import { readFileSync, statfsSync, statSync } from 'node:fs';
import { join } from 'node:path';

export function diskRoom(dir: string, files: readonly string[]): number {
  const fs = statfsSync(dir);
  const free = fs.bavail * fs.bsize;
  const limit = fileSizeLimit();
  if (limit === Infinity) return free;
  let largest = 0;
  for (const f of files) {
    try {
      largest = Math.max(largest, statSync(join(dir, f)).size);
    } catch {
      // not made yet: it starts empty
    }
  }
  return Math.min(free, limit - largest);
}

/** The soft RLIMIT_FSIZE in bytes from /proc/self/limits; Infinity when unlimited or unknown (not Linux). */
export function fileSizeLimit(): number {
  let text: string;
  try {
    text = readFileSync('/proc/self/limits', 'latin1');
  } catch {
    return Infinity;
  }
  const soft = /^Max file size\s+(\S+)/m.exec(text)?.[1];
  return soft === undefined || soft === 'unlimited' ? Infinity : Number(soft);
}
