/**
 * The rule worker: a piscina worker thread that compiles and evaluates rules. It keeps compiled
 * rules per home by version for as long as the thread lives; a replaced thread starts cold.
 * Nothing here touches the network or the node's state: a batch of tasks goes in, a plan per task
 * comes out. A task that throws fails alone; the rest of its batch is answered.
 */
import type { BatchResult, EvalBatch } from './eval-wire.js';
import { RuleEvaluator } from './evaluate.js';

const evaluator = new RuleEvaluator();

export default function evaluateBatch(batch: EvalBatch): BatchResult {
  return batch.tasks.map((task) => {
    try {
      return evaluator.evaluateWire(task);
    } catch (err) {
      return { error: err instanceof Error ? err.message : String(err) };
    }
  });
}
