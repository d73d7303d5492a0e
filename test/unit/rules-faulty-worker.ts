/**
 * A rule worker with faults on demand, for the pool tests: it wraps the real worker and misbehaves
 * for a few reserved home ids. Everything else is evaluated by the real worker code.
 */
import type { EvalResult, EvalTask } from '../../src/rules/model.js';
import evaluate from '../../src/rules/worker.js';

export default function faulty(task: EvalTask): EvalResult {
  switch (task.homeId) {
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
  return evaluate(task);
}
