import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Whatever a caller forgets (or a crash skips), the harness's children and temporary dirs go with
 * this process: at `exit`, and on SIGINT/SIGTERM, whose default action ends a process without
 * running its `exit` listeners.
 */

const live = new Set<ChildProcess>();
const dirs = new Set<string>();
let installed = false;

/** SIGKILLs `child` if it still runs when this process ends. */
export function killAtExit(child: ChildProcess): void {
  install();
  live.add(child);
  child.once('exit', () => live.delete(child));
  child.once('error', () => live.delete(child));
}

/** A new temporary directory (`prefix` then random characters), removed when this process ends. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  removeAtExit(dir);
  return dir;
}

/** Removes `dir` (recursively, if it is still there) when this process ends. */
export function removeAtExit(dir: string): void {
  install();
  dirs.add(dir);
}

function cleanUp(): void {
  for (const c of live) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  live.clear();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs.clear();
}

function install(): void {
  if (installed) return;
  installed = true;
  process.once('exit', cleanUp);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    const onSignal = (): void => {
      // Another listener owns the shutdown (it ends with process.exit, which runs cleanUp). Alone, we
      // clean up and raise the signal again so the process ends as it would have without us.
      if (process.listenerCount(signal) > 1) return;
      cleanUp();
      process.off(signal, onSignal);
      process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}
