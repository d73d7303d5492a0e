import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

/** CPU per operation over a stretch of this process's work: all threads, and the main thread's share. */
export interface CpuPerOp {
  /** µs of CPU (user + system, every thread of the process) per operation */
  cpuUs: number;
  /** µs of the main thread per operation: event-loop utilization × wall time */
  mainUs: number;
  /**
   * µs the main thread was on a CPU per operation (the scheduler's count, Linux), or NaN where it
   * cannot be read. Less than `mainUs` by the time the loop was busy but its thread was not
   * running: blocked on a lock, or waiting for a core.
   */
  mainCpuUs: number;
  /** wall time of the stretch, ms */
  wallMs: number;
}

/** ns the calling thread has run on a CPU (the first field of /proc/thread-self/schedstat), NaN if unreadable. */
function threadRunNs(): number {
  try {
    return Number(readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ')[0]);
  } catch {
    return NaN;
  }
}

/** Starts measuring; the function it answers ends the stretch and divides by `ops`. */
export function cpuMeter(): (ops: number) => CpuPerOp {
  const cpu = process.cpuUsage();
  const elu = performance.eventLoopUtilization();
  const ran = threadRunNs();
  const start = performance.now();
  return (ops) => {
    const wallMs = performance.now() - start;
    const used = process.cpuUsage(cpu);
    const busy = performance.eventLoopUtilization(elu).utilization;
    const mainCpuUs = (threadRunNs() - ran) / 1000 / ops;
    return { cpuUs: (used.user + used.system) / ops, mainUs: (busy * wallMs * 1000) / ops, mainCpuUs, wallMs };
  };
}
