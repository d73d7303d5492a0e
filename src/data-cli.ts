/**
 * `npm run data -- export FILE` / `npm run data -- import FILE`: backs up the embedded default's
 * store (DATA_DIR, as the node reads it) to JSON lines, or fills an empty DATA_DIR from one. The
 * node must be stopped: the store has one owner at a time.
 */
import { existsSync, fstatSync, readdirSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { ConfigError, toolSettings } from './config/config.js';
import { commandLinePath, parseCommandLine } from './config/command-line.js';
import { BackupError, exportStore, importStore } from './data-backup.js';
import { importIntoRedis } from './data-redis-import.js';
import { TierError } from './errors.js';
import { createLogger } from './log/logger.js';
import { DataStoreError, openDataStore, startWriteError, STORE_FILE } from './ports/lmdb.js';
import { redisTlsOf } from './ports/redis.js';

const USAGE = `usage: npm run data -- export FILE [--data-dir DIR]
       npm run data -- import FILE [--data-dir DIR]
       npm run data -- import FILE (--redis URL | --cluster) [--prefix P]

export  writes every record of DATA_DIR's store to FILE (JSON lines, mode 0600): a new
        file renamed over FILE at the end (an existing FILE or symlink is replaced). FILE -
        is stdout (export - | gzip > b.jsonl.gz); a device or FIFO (/dev/null, /dev/stdout)
        is written through, never replaced
import  checks all of FILE, then reads it into DATA_DIR, which must hold no records yet, in
        one transaction: a bad or cut-short FILE, an error or a crash writes nothing. FILE is
        opened once; - is stdin (gunzip -c b.jsonl.gz | ... import -); a pipe is held in
        memory between the check and the write
--redis   imports FILE into a cluster's Redis instead, after the same check (--cluster:
          the Redis of REDIS_URL, the password kept off the command line). Nothing is
          overwritten: what Redis holds as FILE does counts as imported (a rerun finishes
          a run cut short), what it holds otherwise is reported and the exit code is 1;
          nonces and dead letters are not moved. --prefix defaults to $TIER_REDIS_PREFIX,
          else tier:
--data-dir defaults to $DATA_DIR, else ./data. Stop the node first.
DATA_DIR and TIER_REDIS_PREFIX are read as the node reads them: the environment, else
the JSON file named by $CONFIG_FILE.`;

async function main(): Promise<number> {
  const parsed = parseCommandLine({ 'data-dir': { type: 'string' }, redis: { type: 'string' }, cluster: { type: 'boolean' }, prefix: { type: 'string' }, help: { type: 'boolean' } }, USAGE);
  if (parsed === null) return 2;
  const { positionals, values } = parsed;
  const [command, given] = positionals;
  const file = given === undefined ? undefined : commandLinePath(given);
  if (values['data-dir'] !== undefined) values['data-dir'] = commandLinePath(values['data-dir']);
  if (values.help || (command !== 'export' && command !== 'import') || file === undefined || positionals.length !== 2) {
    process.stderr.write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  if (values.redis !== undefined || values.prefix !== undefined) {
    if (command !== 'import' || values.redis === undefined) {
      process.stderr.write(`--redis URL goes with import only, --prefix with --redis\n${USAGE}\n`);
      return 2;
    }
    const env = toolSettings(['redisPrefix', 'redisTlsCaFile', 'redisTlsCertFile', 'redisTlsKeyFile']);
    const prefix = values.prefix ?? env.redisPrefix;
    const report = await importIntoRedis(file, { url: values.redis, prefix, log: createLogger('warn'), ...redisTlsOf(env) });
    const list = (counts: Record<string, number>) => Object.entries(counts).map(([kind, n]) => `${kind} ${n}`).join(', ');
    process.stdout.write(`imported into redis (prefix ${prefix}) from ${file === '-' ? 'stdin' : resolve(file)}: ${list(report.imported) || 'nothing'}\n`);
    if (Object.keys(report.present).length > 0) process.stdout.write(`already in redis as in the file: ${list(report.present)}\n`);
    for (const line of report.notes) process.stdout.write(`not moved: ${line}\n`);
    for (const line of report.skipped) process.stdout.write(`NOT IMPORTED: ${line}\n`);
    if (report.skipped.length === 0) return 0;
    process.stderr.write(`data error: ${report.skipped.length} not imported (listed above): redis holds something else there\n`);
    return 1;
  }
  const dir = values['data-dir'] ?? toolSettings(['dataDir']).dataDir;
  if (dir === ':memory:') {
    process.stderr.write('DATA_DIR=:memory: has nothing on disk to export or import\n');
    return 2;
  }
  const shown = file === '-' ? (command === 'export' ? 'stdout' : 'stdin') : resolve(file);
  // a mistyped DATA_DIR would otherwise be made, and a backup of nothing written (a cron's every night)
  if (command === 'export' && !existsSync(join(dir, STORE_FILE))) {
    process.stderr.write(`data error: ${resolve(dir)} holds no store (no ${STORE_FILE}): nothing exported. Check DATA_DIR or --data-dir\n`);
    return 1;
  }
  if (command === 'export' && file !== '-' && !existsSync(dirname(resolve(file)))) {
    process.stderr.write(`data error: ${dirname(resolve(file))}: no such directory to write ${basename(file)} in\n`);
    return 1;
  }
  const before = filesIn(dir);
  const store = openDataStore(dir, { owner: `npm run data -- ${command}` });
  let done = false;
  try {
    const counts = command === 'export' ? await exportStore(store, file) : await importStore(store, file);
    done = true;
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    const what = Object.entries(counts).map(([db, n]) => `${db} ${n}`).join(', ');
    // after a backup written to stdout (-, /dev/stdout), this line would be read as one of its lines
    const say = command === 'export' && (file === '-' || isStdout(file)) ? process.stderr : process.stdout;
    say.write(`${command === 'export' ? 'exported' : 'imported'} ${total} records (${what || 'none'}) ${command === 'export' ? 'from' : 'into'} ${store.dir} ${command === 'export' ? 'to' : 'from'} ${shown}\n`);
    return 0;
  } catch (err) {
    // an import the disk cannot hold: said as the node says it (no space left), not lmdb-js's EIO and a stack
    const full = await startWriteError(dir, err, `npm run data -- ${command}`);
    // on a line of its own: lmdb-js wrote the failed write's message to stderr without ending the line
    if (full) process.stderr.write('\n');
    throw full ?? err;
  } finally {
    try {
      // a refused import leaves DATA_DIR as it found it: an empty store made here would start a node
      // empty. Removed while the lock is still held (unlinked files stay usable until closed): after
      // the close, a node starting on the directory in between would have had its files removed
      if (!done && command === 'import') removeNew(dir, before);
    } finally {
      // a tool replays nothing: a crash before it stays the next start's to recover from
      await store.close({ keepUncleanMark: true });
    }
  }
}

/** True when `file` is (a link to) what stdout writes to. */
function isStdout(file: string): boolean {
  try {
    const a = statSync(file);
    const b = fstatSync(1);
    return a.dev === b.dev && a.ino === b.ino;
  } catch {
    return false;
  }
}

/** The files in `dir`, or null when it does not exist. */
function filesIn(dir: string): Set<string> | null {
  return existsSync(dir) ? new Set(readdirSync(dir)) : null;
}

/** Removes what the store made in `dir` since `before` (the whole directory if it made that too). */
function removeNew(dir: string, before: Set<string> | null): void {
  if (before === null) return rmSync(dir, { recursive: true, force: true });
  for (const name of readdirSync(dir)) if (!before.has(name)) rmSync(join(dir, name), { recursive: true, force: true });
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof DataStoreError || err instanceof BackupError || err instanceof TierError || err instanceof ConfigError) {
      process.stderr.write(`data error: ${err.message}\n`);
      process.exit(1);
    }
    process.stderr.write(`fatal: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
