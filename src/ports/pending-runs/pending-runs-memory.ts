import { heldKey, keptApart, keyOf, overdueKey, type PendingRun, type PendingRuns } from './pending-runs.js';

/**
 * Pending runs in this process: the behaviour of a node without a data directory, where a
 * restart forgets every delay. One instance handed to two engines in turn shows a restart in tests.
 */
export class MemoryPendingRuns implements PendingRuns {
  readonly durable = false;
  readonly #runs = new Map<string, PendingRun>();

  async save(run: PendingRun): Promise<void> {
    const old = run.apart ? undefined : this.#runs.get(run.ruleId);
    if (keptApart(old, run)) this.#runs.set(overdueKey(old.ruleId, old.dedupBase), { ...old, apart: true });
    this.#runs.set(keyOf(run), structuredClone(run));
  }

  async remove(ruleId: string, runId: string, dedupBase?: string): Promise<void> {
    const key = heldKey((k) => this.#runs.get(k), ruleId, runId, dedupBase);
    if (key !== null) this.#runs.delete(key);
  }

  async holds(ruleId: string, runId: string, dedupBase?: string): Promise<boolean> {
    return heldKey((k) => this.#runs.get(k), ruleId, runId, dedupBase) !== null;
  }

  async load(): Promise<PendingRun[]> {
    return [...this.#runs.values()].map((r) => structuredClone(r));
  }

  /** entries stored (tests, diagnostics) */
  get size(): number {
    return this.#runs.size;
  }

  async close(): Promise<void> {
    this.#runs.clear();
  }
}
