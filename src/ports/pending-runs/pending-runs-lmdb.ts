import type { Database } from 'lmdb';
import type { DataStore } from '../lmdb.js';
import { heldKey, keptApart, keyOf, overdueKey, type PendingRun, type PendingRuns } from './pending-runs.js';

/**
 * Pending runs on local disk: the sub-database `delays` of the node's DataStore, one msgpack
 * value per rule id. lmdb-js applies puts and transactions in the order they are issued and
 * commits those of one event-loop turn together; a call resolves once its commit is done.
 */
export class LmdbPendingRuns implements PendingRuns {
  readonly durable = true;
  readonly #db: Database<PendingRun, string>;

  readonly #store: DataStore;

  constructor(store: DataStore) {
    this.#store = store;
    this.#db = store.db<PendingRun>('delays') as unknown as Database<PendingRun, string>;
  }

  async save(run: PendingRun): Promise<void> {
    // read and replace in one write transaction: an overdue entry is kept apart (pending-runs.ts)
    await this.#store.written(
      this.#db.transaction(() => {
        const old = run.apart ? undefined : this.#db.get(run.ruleId);
        if (keptApart(old, run)) void this.#db.put(overdueKey(old.ruleId, old.dedupBase), { ...old, apart: true });
        void this.#db.put(keyOf(run), run);
      }),
    );
  }

  async remove(ruleId: string, runId: string, dedupBase?: string): Promise<void> {
    // read and delete in one write transaction: a save issued before this one is seen
    await this.#db.transaction(() => {
      const key = heldKey((k) => this.#db.get(k), ruleId, runId, dedupBase);
      if (key !== null) void this.#db.remove(key);
    });
  }

  async holds(ruleId: string, runId: string, dedupBase?: string): Promise<boolean> {
    return heldKey((k) => this.#db.get(k), ruleId, runId, dedupBase) !== null;
  }

  async load(): Promise<PendingRun[]> {
    const out: PendingRun[] = [];
    for (const { value } of this.#db.getRange()) out.push(value);
    return out;
  }

  /** the DataStore is shared by every LMDB adapter: its owner closes it */
  async close(): Promise<void> {}
}
