/**
 * A rule worker with faults on demand, for the pool tests: it wraps the real worker and misbehaves
 * when a batch holds a task of a reserved home id. Everything else is evaluated by the real worker code.
 */
import type { BatchResult, EvalBatch } from '../../src/rules/eval-wire.js';
import evaluateBatch from '../../src/rules/worker.js';

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
        for (;;) {
          // a runaway evaluation: only terminating the thread stops it
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
