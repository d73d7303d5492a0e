import { accessSync, constants, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DataStoreError, processUid } from './data-store-error.js';

/**
 * The store's own files, which it writes: LMDB's data and lock files, the node's lock. Not
 * `secret.key`: the node only reads it, a read-only one is fine, and TIER_SECRET_KEY leaves it
 * unused (review "diff14": a 0400 key was refused with advice that could not fix it).
 */
const OWN_FILE = /^(?:.+\.mdb(?:-lock)?|node\.lock)$/;

/**
 * The first of the store's files this process may not read and write, said with its owner and the
 * process's user. A lock file root left (a `sudo npm run data`, a container run as root before)
 * crashed lmdb-js with SIGSEGV and no line; a data file was called damaged, the advice to move it
 * aside losing what a chown would have kept (review "lifecycle").
 */
export function unusableFile(path: string): DataStoreError | null {
  let names: string[];
  try {
    names = readdirSync(path);
  } catch {
    return null; // the directory's own check said what there was to say
  }
  for (const name of names) {
    if (!OWN_FILE.test(name)) continue;
    const file = join(path, name);
    try {
      accessSync(file, constants.R_OK | constants.W_OK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') continue;
      let owner = '';
      try {
        const st = statSync(file);
        owner = `owned by uid ${st.uid}, mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}; `;
      } catch {
        // said without its owner
      }
      const uid = processUid();
      return new DataStoreError(
        `DATA_DIR ${path}: ${name} cannot be read and written by this process (${code}: ${owner}the node runs as uid ${uid}). Nothing was changed and nothing is damaged: give the directory's files to the node's user (chown -R ${uid} ${path}), then start again`,
        path,
        { cause: err },
      );
    }
  }
  return null;
}
