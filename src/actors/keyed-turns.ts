const noop = (): void => {};

/**
 * Tasks that must not overlap per key (a hub's checked desired writes, a hub's move and delete):
 * each runs once the key's task before it has settled, whether it failed or not; keys run apart.
 * A key is forgotten once its last task settles, so it holds nothing while idle.
 */
export class KeyedTurns {
  readonly #last = new Map<string, Promise<void>>();

  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const before = this.#last.get(key);
    const run = before === undefined ? task() : before.then(task);
    const settled = run.then(noop, noop);
    this.#last.set(key, settled);
    void settled.then(() => {
      if (this.#last.get(key) === settled) this.#last.delete(key);
    });
    return run;
  }

  /** Keys with a task running or waiting. */
  get size(): number {
    return this.#last.size;
  }
}
