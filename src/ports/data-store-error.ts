/** Why the store could not be opened or written, with what to do; `path` names the directory or file. */
export class DataStoreError extends Error {
  constructor(
    message: string,
    readonly path: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'DataStoreError';
  }
}

/**
 * A side file (the history) that passed the start's check and that LMDB still refuses (a copy torn
 * mid-write): it ended the start with a bare stack (review "upgrade"); said as the main store's is.
 */
export function sideUnusable(dir: string, name: string, err: unknown): DataStoreError {
  if (err instanceof DataStoreError) return err;
  if (deniedAccess(err)) return deniedError(dir, `${name}.mdb`, err);
  return new DataStoreError(
    `DATA_DIR ${dir}: LMDB cannot use ${name}.mdb (${(err as Error).message}). Nothing was changed. It is damaged: move it aside (a new one starts empty, apps reload, what it held is lost) or restore it from the same backup as the store`,
    dir,
    { cause: err },
  );
}

/** Whether LMDB or the system refused for permissions (lmdb-js says `Permission denied` in its message, with no code). */
export function deniedAccess(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'EACCES' || code === 'EPERM' || /Permission denied|EACCES|EPERM/.test(String((err as Error | undefined)?.message));
}

/** A file the process may not use: said as the permission matter it is, never as damage to move aside (review "lifecycle"). */
export function deniedError(dir: string, file: string, err: unknown): DataStoreError {
  return new DataStoreError(
    `DATA_DIR ${dir}: LMDB may not use ${file} (${(err as Error).message}): a permission matter, not damage. Nothing was changed: give the directory and its files to the node's user (chown -R ${processUid()} ${dir}), then start again`,
    dir,
    { cause: err },
  );
}

/** The user id this process runs as, for a `chown` the operator may copy ('<user>' where there is none). */
export function processUid(): string {
  return typeof process.getuid === 'function' ? String(process.getuid()) : '<user>';
}
