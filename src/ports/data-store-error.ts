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
