/**
 * The rule worker: a piscina worker thread that compiles and evaluates rules. It keeps compiled
 * rules per home by version for as long as the thread lives; a replaced thread starts cold.
 * Nothing here touches the network or the node's state: a task goes in, a plan comes out.
 */
import { RuleEvaluator } from './evaluate.js';
import type { EvalResult, EvalTask } from './model.js';

const evaluator = new RuleEvaluator();

export default function evaluate(task: EvalTask): EvalResult {
  return evaluator.evaluate(task);
}
