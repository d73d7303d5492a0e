/**
 * Run as its own process by lmdb-full-disk.test.ts: the store in argv[2] on a disk that takes no more
 * (this process's file size limit lowered to the store's size with prlimit, as a full disk refuses the
 * next page). Prints `acked <key>` for each write that resolved; the store's failure handling ends it.
 */
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { openDataStore, STORE_FILE } from '../../src/ports/lmdb.js';

const data = openDataStore(process.argv[2]!);
const db = data.db<string>('t');
await db.put('before', 'x'.repeat(1000));
process.stdout.write('acked before\n');
execFileSync('prlimit', ['--pid', String(process.pid), `--fsize=${statSync(join(data.dir, STORE_FILE)).size}:`]);
// writes from several turns, as a node's: each that resolves is acknowledged
for (let i = 0; i < 64; i++) {
  const key = `k${i}`;
  await db.put(key, 'y'.repeat(20_000)).then(
    () => process.stdout.write(`acked ${key}\n`),
    () => undefined,
  );
}
process.stdout.write('still running\n');
