import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * `mkdir -p` one level at a time. Node 20's recursive mkdirSync loops without end where mkdir
 * answers ENOENT under a parent that exists (procfs: DATA_DIR=/proc/x spun a core, deaf to SIGTERM,
 * review "config"); here the first level that fails throws. `path` is absolute; an existing
 * directory is left as it is.
 */
export function makeDirs(path: string, mode: number): void {
  try {
    mkdirSync(path, { mode });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return;
    const parent = dirname(path);
    if (code !== 'ENOENT' || parent === path) throw err;
    makeDirs(parent, mode);
    // the parent is there now: a second ENOENT is the filesystem's answer, thrown as it is
    try {
      mkdirSync(path, { mode });
    } catch (again) {
      if ((again as NodeJS.ErrnoException).code !== 'EEXIST') throw again;
    }
  }
}
