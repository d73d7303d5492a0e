import { performance } from 'node:perf_hooks';

/** CPU per operation over a stretch of this process's work: all threads, and the main thread's share. */
export interface CpuPerOp {
  /** µs of CPU (user + system, every thread of the process) per operation */
  cpuUs: number;
  /** µs of the main thread per operation: event-loop utilization × wall time */
  mainUs: number;
  /** wall time of the stretch, ms */
  wallMs: number;
}

/** Starts measuring; the function it answers ends the stretch and divides by `ops`. */
export function cpuMeter(): (ops: number) => CpuPerOp {
  const cpu = process.cpuUsage();
  const elu = performance.eventLoopUtilization();
  const start = performance.now();
  return (ops) => {
    const wallMs = performance.now() - start;
    const used = process.cpuUsage(cpu);
    const busy = performance.eventLoopUtilization(elu).utilization;
    return { cpuUs: (used.user + used.system) / ops, mainUs: (busy * wallMs * 1000) / ops, wallMs };
  };
}
