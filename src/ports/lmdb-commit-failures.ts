/**
 * What lmdb-js does when a commit fails (disk full, I/O error), and what this process does about it.
 *
 * lmdb-js rejects every write of the failed commit with "Commit failed (see commitError for
 * details)", each carrying `commitError`, one more promise rejected with the disk's own error
 * (ENOSPC, EIO). It also rejects promises of its own that no caller can reach (the event turn's
 * batch start). Left alone, any of these kills the process as an unhandled rejection, though the
 * caller caught the write's. So while a store is open one `unhandledRejection` listener claims
 * them (nothing else: any other rejection still ends the process, as Node's default does), and
 * every store watches its commits (`aftercommit`) to learn of a failed one with the disk's error.
 *
 * Going on writing after a failed commit is not safe with lmdb-js 3.5: under a full disk its
 * native writer then corrupted the heap ("malloc(): invalid next size", abort) and reports it had
 * acknowledged were missing after the restart. So the store's owner stops (lmdb.ts).
 */
import type { RootDatabase } from 'lmdb';
import { isCommitFailure } from '../errors.js';

/**
 * The disk's error behind a commit failure ("No space left on device: Attempting to write page…"),
 * `err`'s own message for anything else. Handles `commitError`, so it never rejects unhandled.
 */
export async function commitFailureCause(err: unknown): Promise<Error> {
  if (!isCommitFailure(err)) return err as Error;
  return err.commitError.then(
    () => err,
    (cause: unknown) => (cause instanceof Error ? cause : new Error(String(cause))),
  );
}

/** The errno names of LMDB's numeric codes a full or failing disk gives. */
const ERRNO: Record<number, string> = { 5: 'EIO', 27: 'EFBIG', 28: 'ENOSPC', 122: 'EDQUOT', [-30792]: 'MDB_MAP_FULL' };

/** `ENOSPC`, `EIO`…: the name of an LMDB error's numeric code, or its string code; undefined: none. */
export function errnoName(err: Error): string | undefined {
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  return typeof code === 'number' ? (ERRNO[code] ?? `errno ${code}`) : undefined;
}

/** "No space left on device (ENOSPC)": the disk's error without lmdb-js's page positions and buffer sizes. */
export function describeWriteError(err: Error): string {
  const name = errnoName(err);
  const message = err.message.replace(/: Attempting to write page[^]*$/, '');
  return name && !message.includes(name) ? `${message} (${name})` : message;
}

/** Follows one environment's commits until stopped. */
export interface CommitWatch {
  stop(): void;
}

const watches = new Set<{ failed: boolean; onFailure: (cause: Error) => void }>();

/**
 * Starts following `env`'s commits: at a failed one, `onFailure` gets the disk's error (claimed
 * from the process's unhandled rejections, where lmdb-js leaves it) before any other write is
 * started, in the same turn; or a bare "commit failed" at the next turn where none came.
 */
export function watchCommits(env: RootDatabase, onFailure: (cause: Error) => void): CommitWatch {
  const watch = { failed: false, onFailure };
  // lmdb-js passes the committed transaction's id, none for a failed commit
  env.on('aftercommit', (event: { txnId?: number }) => {
    if (event.txnId !== undefined || !watches.has(watch) || watch.failed) return;
    watch.failed = true;
    setImmediate(() => fire(new Error('commit failed')));
  });
  if (watches.size === 0) process.on('unhandledRejection', claim);
  watches.add(watch);
  return {
    stop() {
      if (!watches.delete(watch)) return;
      if (watches.size === 0) process.off('unhandledRejection', claim);
    },
  };
}

function claim(reason: unknown): void {
  if (isCommitFailure(reason)) {
    void commitFailureCause(reason).then(fire);
    return;
  }
  // `commitError` itself, where every write's rejection was handled: LMDB's numeric codes
  if (reason instanceof Error && typeof (reason as { code?: unknown }).code === 'number' && [...watches].some((w) => w.failed)) {
    fire(reason);
    return;
  }
  // anything else ends the process, as it would without this listener (unless another one decides)
  if (process.listenerCount('unhandledRejection') === 1) throw reason;
}

function fire(cause: Error): void {
  for (const w of watches) {
    if (!w.failed) continue;
    watches.delete(w);
    w.onFailure(cause);
  }
  if (watches.size === 0) process.off('unhandledRejection', claim);
}
