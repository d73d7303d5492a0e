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
import { loadLibc } from './libc.js';

export interface DiskRoom {
  bytes: number;
  /** what leaves the least: the filesystem's free space, or the process's file size limit */
  by: 'disk' | 'file size limit';
}

export function diskRoom(dir: string, files: readonly string[]): DiskRoom {
  const { free } = diskSpace(dir);
  const limit = fileSizeLimit();
  if (limit === Infinity) return { bytes: free, by: 'disk' };
  let largest = 0;
  for (const f of files) {
    try {
      largest = Math.max(largest, statSync(join(dir, f)).size);
    } catch {
      // not made yet: it starts empty
    }
  }
  return limit - largest < free ? { bytes: limit - largest, by: 'file size limit' } : { bytes: free, by: 'disk' };
}

/**
 * The filesystem of `dir`: bytes free to an unprivileged process and its size, in blocks × the
 * fragment size. Node's statfs has no fragment size, and its block size is the preferred I/O size,
 * 256 times the fragment on virtiofs, ZFS or CephFS (a reserve would never be met there, the
 * disk metrics and the doctor would overstate): statvfs(3) through libc on 64-bit Linux, where its
 * layout is fixed; elsewhere Node's figures. Throws as statfs does (the directory gone).
 */
export function diskSpace(dir: string): { free: number; size: number } {
  const vfs = statvfsCall();
  if (vfs !== null) {
    const buf = Buffer.alloc(STATVFS_SIZE);
    if (vfs(dir, buf) === 0) {
      const frsize = buf.readBigUInt64LE(FRSIZE_AT);
      return { free: Number(frsize * buf.readBigUInt64LE(BAVAIL_AT)), size: Number(frsize * buf.readBigUInt64LE(BLOCKS_AT)) };
    }
  }
  const fs = statfsSync(dir);
  return { free: fs.bavail * fs.bsize, size: fs.blocks * fs.bsize };
}

/** struct statvfs of glibc and musl on 64-bit Linux: f_bsize, f_frsize, f_blocks, f_bfree, f_bavail… 8 bytes each, 112 in all */
const STATVFS_SIZE = 112;
const FRSIZE_AT = 8;
const BLOCKS_AT = 16;
const BAVAIL_AT = 32;
let statvfs: ((path: string, buf: Buffer) => number) | null | undefined;

function statvfsCall(): ((path: string, buf: Buffer) => number) | null {
  if (statvfs !== undefined) return statvfs;
  statvfs = null;
  if (process.platform !== 'linux' || !['x64', 'arm64'].includes(process.arch)) return null;
  const libc = loadLibc();
  if ('unavailable' in libc) return null;
  try {
    statvfs = libc.func('int statvfs(const char *path, _Out_ uint8_t *buf)') as (path: string, buf: Buffer) => number;
  } catch {
    statvfs = null;
  }
  return statvfs;
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
