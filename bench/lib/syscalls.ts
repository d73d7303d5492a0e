import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Counts the system calls of a process (all its threads) while `during` runs, with `strace -c -f`.
 * strace slows every call down, so use it on fixed-rate runs well below saturation and read the
 * counts per request, not the latencies.
 */
export async function countSyscalls<T>(pid: number, during: () => Promise<T>): Promise<{ result: T; calls: Record<string, number> }> {
  const out = join(tmpdir(), `hubtier-strace-${pid}-${Date.now()}.txt`);
  const st = spawn('strace', ['-f', '-c', '-p', String(pid), '-o', out], { stdio: 'ignore' });
  const exited = new Promise<number | null>((resolve) => st.once('exit', resolve));
  const failed = new Promise<never>((_, reject) => st.once('error', reject));
  await Promise.race([new Promise((resolve) => setTimeout(resolve, 1_000)), failed]);
  let result: T;
  try {
    result = await during();
  } finally {
    st.kill('SIGINT');
    await exited;
  }
  const calls: Record<string, number> = {};
  for (const line of readFileSync(out, 'utf8').split('\n')) {
    // % time  seconds  usecs/call  calls  [errors]  syscall
    const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?([a-z_0-9]+)\s*$/.exec(line);
    if (m && m[2] !== 'total') calls[m[2]!] = Number(m[1]);
  }
  rmSync(out, { force: true });
  return { result, calls };
}
