import { describe, expect, it } from 'vitest';
import { cpuMs, threadCpuMs } from '../../load/harness/index.js';

describe('threadCpuMs', () => {
  it('splits a process CPU by thread: the main thread as `main`, the sum within the process total', () => {
    const before = threadCpuMs(process.pid);
    const start = cpuMs(process.pid);
    // work on this (the main) thread until `main` reads 50 ms more (10 ms ticks), or the process
    // has used 2 s: the process's other threads (the collector's, a loaded machine's) may take
    // much of its total, so the loop waits on the main thread's own count
    let x = 0;
    const mainGrew = () => threadCpuMs(process.pid).get('main')! - before.get('main')!;
    while (mainGrew() < 50 && cpuMs(process.pid) - start < 2_000) for (let i = 0; i < 100_000; i++) x += Math.sqrt(i);
    expect(x).toBeGreaterThan(0);
    const after = threadCpuMs(process.pid);
    expect(after.get('main')! - before.get('main')!).toBeGreaterThanOrEqual(50);
    const sum = [...after.values()].reduce((a, b) => a + b, 0);
    // threads that exited are missing from the sum, never added twice
    expect(sum).toBeLessThanOrEqual(cpuMs(process.pid) + 10 * after.size);
    for (const [name, ms] of after) {
      expect(name.length).toBeGreaterThan(0);
      expect(ms).toBeGreaterThanOrEqual(0);
    }
  });
});
