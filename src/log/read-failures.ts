import type { Logger } from './logger.js';
import { failureLog, type SampledLog } from './sampler.js';

/** What a timer reads of the process's own state: its resident size, its memory cgroup's files. */
export type ReadKind = 'rss' | 'cgroup';

/**
 * Failed reads made on a timer or at a scrape: counted by kind (tier_periodic_read_failures_total)
 * and logged sampled. Such a read must never throw out of its timer: at the open-file limit
 * `process.memoryUsage.rss()` throws EMFILE, and that throw ended the node (every hub dropped).
 */
export class ReadFailures {
  readonly counts: Record<ReadKind, number> = { rss: 0, cgroup: 0 };
  private readonly log: SampledLog;

  constructor(log: Logger) {
    this.log = failureLog(log, 'periodic reads failed, not logged', 'warn');
  }

  failed(kind: ReadKind, err: unknown): void {
    this.counts[kind]++;
    this.log.write(kind, { kind, err }, 'periodic read failed (the node goes on without it)');
  }
}
