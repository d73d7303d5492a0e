import type { PendingRun, PendingRuns } from './pending-runs.js';

/**
 * Pending runs in this process: the behaviour of a node without a data directory, where a
 * restart forgets every delay. One instance handed to two engines in turn shows a restart in tests.
 */
export class MemoryPendingRuns implements PendingRuns {
  readonly durable = false;
  readonly #runs = new Map<string, PendingRun>();

  async save(run: PendingRun): Promise<void> {
    this.#runs.set(run.ruleId, structuredClone(run));
  }

  async remove(ruleId: string, runId: string): Promise<void> {
    if (this.#runs.get(ruleId)?.runId === runId) this.#runs.delete(ruleId);
  }

  async holds(ruleId: string, runId: string): Promise<boolean> {
    return this.#runs.get(ruleId)?.runId === runId;
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
