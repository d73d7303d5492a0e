/**
 * Run as its own process by lmdb-full-disk.test.ts: the store in argv[2] on a disk that takes no more
 * (this process's file size limit lowered to the store's size with prlimit, as a full disk refuses the
 * next page), then room again (the limit raised). Prints one JSON line of what it saw; a commit
 * failure that killed it prints nothing and exits 1.
 */
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { isUnreachable } from '../../src/errors.js';
import { openDataStore, STORE_FILE } from '../../src/ports/lmdb.js';

const fileSize = (limit: string) => execFileSync('prlimit', ['--pid', String(process.pid), `--fsize=${limit}`]);
const turn = () => new Promise((r) => setImmediate(r));

const data = openDataStore(process.argv[2]!, { probeMs: 20 });
const db = data.db<string>('t');
await db.put('before', 'x'.repeat(1000));
fileSize(`${statSync(join(data.dir, STORE_FILE)).size}:unlimited`);
let refused: unknown;
for (let i = 0; i < 64 && refused === undefined; i++) await db.put(`k${i}`, 'y'.repeat(20_000)).catch((err: unknown) => (refused = err));
// the turns in which lmdb-js's other rejections of the commit (unhandled) would end the process
for (let i = 0; i < 3; i++) await turn();
const failing = data.failing;
const refusedAgain = await db.put('again', 'z'.repeat(20_000)).then(() => false, () => true);
fileSize('unlimited:unlimited');
while (data.failing !== undefined) await new Promise((r) => setTimeout(r, 20));
await db.put('after', 'w'.repeat(20_000));
process.stdout.write(`${JSON.stringify({ refused: refused !== undefined, unavailable: isUnreachable(refused), failing, refusedAgain, after: db.get('after')?.length, before: db.get('before')?.length })}\n`);
await data.close();
