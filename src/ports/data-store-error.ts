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
  return new DataStoreError(
    `DATA_DIR ${dir}: LMDB cannot use ${name}.mdb (${(err as Error).message}). Nothing was changed. It is damaged: move it aside (a new one starts empty, apps reload, what it held is lost) or restore it from the same backup as the store`,
    dir,
    { cause: err },
  );
}
