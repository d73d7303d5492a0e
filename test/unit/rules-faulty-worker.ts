/**
 * A rule worker with faults on demand, for the pool tests: it wraps the real worker and misbehaves
 * when a batch holds a task of a reserved home id. Everything else is evaluated by the real worker code.
 */
import type { BatchResult, EvalBatch } from '../../src/rules/eval-wire.js';
import { RuleEvaluator } from '../../src/rules/evaluate.js';
import evaluateBatch, { markTaken, runBatch } from '../../src/rules/worker.js';

const evaluator = new RuleEvaluator();

export default function faulty(batch: EvalBatch): BatchResult {
  for (const task of batch.tasks) {
    switch (task.homeId) {
      case 'fault-task':
        // a map cut short: this task fails inside the worker, its batch-mates do not
        task.rules = task.rules.map((r) => ({ ...r, bytes: Uint8Array.of(0x81) }));
        break;
      case 'fault-exit':
        process.exit(7);
        break;
      case 'fault-throw':
        throw new Error('bug in the worker');
      case 'fault-hang':
        // a runaway evaluation, in its turn among the batch's tasks: only terminating the thread stops it
        return runBatch(batch, (t) => {
          if (t.homeId === 'fault-hang') for (;;);
          return evaluator.evaluateWire(t);
        });
      case 'fault-stall':
        markTaken(batch);
        for (;;) {
          // stuck before the first task: no task of the batch is marked as running
        }
      case 'fault-slow': {
        const until = Date.now() + 300;
        while (Date.now() < until) {
          // busy, then answers
        }
        break;
      }
    }
  }
  return evaluateBatch(batch);
}
