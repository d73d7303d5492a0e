/**
 * The embedded default's LMDB files by sub-database: entries and 4 KB pages, read from a running
 * node's DATA_DIR (LMDB lets other processes read alongside the writer). In the embedded default
 * these pages are most of RSS beyond the JS heap: a page the node has read through its map counts
 * in its RSS (file-backed, reclaimable by the kernel).
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { open } from 'lmdb';

export interface StorePages {
  file: string;
  db: string;
  entries: number;
  /** leaf, branch and overflow pages */
  pages: number;
  overflowPages: number;
}

/** Every sub-database of each LMDB file of `dataDir`, with the file's size as `db: '(file)'`. */
export function storePages(dataDir: string, files = ['hubtier.mdb', 'history.mdb']): StorePages[] {
  const out: StorePages[] = [];
  for (const file of files) {
    const path = join(dataDir, file);
    if (!existsSync(path)) continue;
    const env = open({ path, readOnly: true, maxDbs: 64 });
    try {
      out.push({ file, db: '(file)', entries: 0, pages: Math.ceil(statSync(path).size / 4096), overflowPages: 0 });
      // the names first: opening a sub-database inside the root's cursor invalidates it
      const names = [...env.getKeys()].map(String);
      for (const db of names) {
        let stats: { entryCount: number; treeLeafPageCount: number; treeBranchPageCount: number; overflowPages: number };
        try {
          stats = env.openDB({ name: db }).getStats() as typeof stats;
        } catch {
          continue; // a key of the root that names no sub-database
        }
        out.push({ file, db, entries: stats.entryCount, pages: stats.treeLeafPageCount + stats.treeBranchPageCount + stats.overflowPages, overflowPages: stats.overflowPages });
      }
    } finally {
      void env.close();
    }
  }
  return out;
}
