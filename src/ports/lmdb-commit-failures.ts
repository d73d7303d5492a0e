/**
 * What lmdb-js does when a commit fails (disk full, I/O error), and what this process does about it.
 *
 * lmdb-js rejects every write of the failed commit with "Commit failed (see commitError for
 * details)", each carrying `commitError`, one more promise rejected with the disk's own error
 * (ENOSPC, EIO). It also rejects promises of its own that no caller can reach (the event turn's
 * batch start). Left alone, any of these kills the process as an unhandled rejection, though the
 * caller caught the write's. So while a store is open one `unhandledRejection` listener claims
 * them (nothing else: any other rejection still ends the process, as Node's default does), and
 * every store watches its commits (`aftercommit`) to say it is failing from a failed one. While
 * failing, it tries a test write of its own now and then; the first that commits ends it, so freed
 * space ends the failure by itself even when nothing else writes (a node out of service gets little).
 */
import type { RootDatabase } from 'lmdb';

/** A write's rejection by lmdb-js for a failed commit (the disk's error is in `commitError`). */
export function isCommitFailure(err: unknown): err is Error & { commitError: Promise<unknown> } {
  const commitError = (err as { commitError?: { then?: unknown } } | null | undefined)?.commitError;
  return err instanceof Error && typeof commitError?.then === 'function';
}

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

/** Follows one environment's commits: failing from a failed commit until a test write commits. */
export interface CommitWatch {
  /** the disk's error of the commit that failed (message, errno name); undefined while the disk takes writes */
  readonly failing: string | undefined;
  stop(): void;
}

const watches = new Set<{ failing: string | undefined }>();
let lastError = 'commit failed';
/**
 * The test write's size: small commits fit in pages LMDB freed before and can succeed on a full
 * disk while the next that grows the file fails; this one must grow it, so the disk has room again.
 */
const PROBE_BYTES = 1024 * 1024;

/**
 * Starts following `env`'s commits (and claiming its failures from the process's unhandled
 * rejections). From a failed commit it is failing; every `probeMs` (@default 5_000 ms) it then
 * writes 1 MiB under `writable` in the `meta` sub-database, and once that commits, it removes it
 * (its pages are the store's room to grow) and is no longer failing.
 */
export function watchCommits(env: RootDatabase, probeMs = 5_000): CommitWatch {
  const watch = { failing: undefined as string | undefined };
  let probe: NodeJS.Timeout | undefined;
  const meta = () => env.openDB<Buffer | null, string>({ name: 'meta', encoding: 'msgpack' });
  const tryWrite = (): void => {
    probe = undefined;
    if (!watches.has(watch)) return;
    // a failure here is claimed as any other (aftercommit, below, arms the next try)
    meta()
      .put('writable', Buffer.alloc(PROBE_BYTES))
      .then(
        () => {
          watch.failing = undefined;
          return meta().remove('writable');
        },
        (err: unknown) => commitFailureCause(err),
      )
      .catch((err: unknown) => commitFailureCause(err));
  };
  // lmdb-js passes the committed transaction's id, none for a failed commit
  env.on('aftercommit', (event: { txnId?: number }) => {
    if (event.txnId !== undefined || !watches.has(watch)) return;
    watch.failing = lastError;
    probe ??= setTimeout(tryWrite, probeMs).unref();
  });
  if (watches.size === 0) process.on('unhandledRejection', claim);
  watches.add(watch);
  return {
    get failing() {
      return watch.failing;
    },
    stop() {
      clearTimeout(probe);
      if (!watches.delete(watch)) return;
      if (watches.size === 0) process.off('unhandledRejection', claim);
    },
  };
}

function claim(reason: unknown): void {
  if (isCommitFailure(reason)) {
    // the commit's error comes a moment later (the same turn): named in each failing store
    void commitFailureCause(reason).then(note);
    return;
  }
  // `commitError` itself, where every write's rejection was handled: LMDB's numeric codes
  if (reason instanceof Error && typeof (reason as { code?: unknown }).code === 'number' && [...watches].some((w) => w.failing !== undefined)) {
    note(reason);
    return;
  }
  // anything else ends the process, as it would without this listener (unless another one decides)
  if (process.listenerCount('unhandledRejection') === 1) throw reason;
}

function note(cause: Error): void {
  lastError = describeWriteError(cause);
  for (const w of watches) if (w.failing !== undefined) w.failing = lastError;
}
