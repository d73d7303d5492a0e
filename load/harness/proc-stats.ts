import { readdirSync, readFileSync } from 'node:fs';

/** Resident memory of a process in bytes (VmRSS of /proc/<pid>/status). */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

/** CPU time (user + system) of a process so far, in ms (from /proc/<pid>/stat, 100 ticks a second). */
export function cpuMs(pid: number): number {
  const { user, sys } = cpuSplitMs(pid);
  return user + sys;
}

/** User and system CPU time of a process so far, in ms. */
export function cpuSplitMs(pid: number): { user: number; sys: number } {
  return statCpuMs(readFileSync(`/proc/${pid}/stat`, 'utf8'));
}

/** utime and stime of a `stat` line of /proc (process or thread), in ms (100 ticks a second). */
function statCpuMs(stat: string): { user: number; sys: number } {
  // fields after the command name, which is in parentheses and may itself hold spaces
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: Number(fields[11]) * 10, sys: Number(fields[12]) * 10 };
}

/**
 * CPU time (user + system) so far of a process's threads, in ms, summed by thread name
 * (`/proc/<pid>/task/<tid>/stat`), the main thread as `main`: tells the sockets' thread from the
 * rest. Node 20 names its other threads (libuv's pool, V8's workers, lmdb-js's) all `node`.
 * A thread that exited since an earlier reading is missing from this one.
 */
export function threadCpuMs(pid: number): Map<string, number> {
  const byName = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // exited between the listing and the read
    }
    const name = tid === String(pid) ? 'main' : stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const { user, sys } = statCpuMs(stat);
    byName.set(name, (byName.get(name) ?? 0) + user + sys);
  }
  return byName;
}
