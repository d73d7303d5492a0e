/**
 * The rule worker: a piscina worker thread that compiles and evaluates rules. It keeps compiled
 * rules per home by version for as long as the thread lives; a replaced thread starts cold.
 * Nothing here touches the network or the node's state: a batch of tasks goes in, a plan per task
 * comes out. A task that throws fails alone; the rest of its batch is answered. The task under
 * way is marked in the batch's `progress` (see EvalBatch).
 */
import type { BatchResult, EvalBatch, WireTask } from './eval-wire.js';
import type { EvalResult } from './model.js';
import { RuleEvaluator } from './evaluate.js';

const evaluator = new RuleEvaluator();

/** Runs each task of the batch through `evaluate`, marking progress; exported for test workers. */
export function runBatch(batch: EvalBatch, evaluate: (task: WireTask) => EvalResult): BatchResult {
  const { tasks, progress } = batch;
  markTaken(batch);
  const out: BatchResult = [];
  for (let i = 0; i < tasks.length; i++) {
    if (progress) Atomics.store(progress, 0, i);
    try {
      out.push(evaluate(tasks[i]!));
    } catch (err) {
      out.push({ error: err instanceof Error ? err.message : String(err) });
    }
  }
  if (progress) Atomics.store(progress, 0, tasks.length);
  return out;
}

/** Tells the pool this thread has the batch: its deadline counts from here (pool.ts, Deadline). */
export function markTaken(batch: EvalBatch): void {
  if (batch.progress) Atomics.store(batch.progress, 1, 1);
}

export default function evaluateBatch(batch: EvalBatch): BatchResult {
  return runBatch(batch, (task) => evaluator.evaluateWire(task));
}
