import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';

/**
 * What tells one process from another that got the same pid: the boot and the process's start time
 * (Linux /proc). A pid alone does not: in a container the node is pid 1 on every start, so a lock
 * naming pid 1 left by a killed node looked held by the restarted one, for good.
 */
export function processIdentity(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // field 22, counted after the command's closing parenthesis (the command may hold spaces)
    const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    return start ? `${bootId()}:${start}` : undefined;
  } catch {
    return undefined;
  }
}

let boot: string | undefined;
function bootId(): string {
  try {
    boot ??= readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    boot = '';
  }
  return boot;
}

/** Where /proc is missing, a token of this process: it still tells this process from any other. */
const token = randomUUID();

/** This process's identity, as a lock it writes records it. */
export function ownIdentity(): string {
  return processIdentity(process.pid) ?? token;
}

/**
 * True while a process of that pid runs, this user's or another's. A zombie (exited, never
 * reaped: a node under a parent that does not wait, a container without an init) does not: it
 * holds nothing, and its lock would have refused every restart for good.
 */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: it exists but belongs to another user
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  return processState(pid) !== 'Z';
}

/** The state letter of /proc/<pid>/stat (R, S, D, Z, …), undefined where there is none. */
export function processState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}
