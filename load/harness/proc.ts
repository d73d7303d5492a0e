import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { killAtExit } from './exit-hooks.js';
import { ROOT } from './root.js';

/** The first lines a process prints are kept (start-up errors); `tail` keeps the last ones. */
const KEEP_LINES = 5_000;
const TAIL_LINES = 50;
/** After `exit`, how long the output still in the pipes may take to be read. */
const DRAIN_MS = 250;

export interface ProcOptions {
  /** on top of this process's environment; a name set to undefined is left out of it */
  env?: Record<string, string | undefined>;
  /** every output line, as it comes */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
  /** runs the (synchronous) spawn: e.g. with this process in a cgroup for that moment, which the child then starts in */
  spawnWith?: (spawn: () => ChildProcess) => ChildProcess;
}

/** A child process of the harness, run from the repository root and killed when this process ends. */
export interface Proc {
  readonly child: ChildProcess;
  /** 0 when the process could not be spawned */
  readonly pid: number;
  /** the first 5,000 stdout and stderr lines */
  readonly lines: string[];
  /** the last 50 lines */
  readonly tail: string[];
  /** the exit code (null after a signal or a failed spawn), once the output has been read */
  readonly exited: Promise<number | null>;
  /**
   * SIGTERM (and SIGCONT, so a paused process handles it), then SIGKILL after `graceMs`
   * (Infinity: never); resolves once it has exited. @default 5_000 (ms)
   */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL; resolves once it has exited */
  kill(): Promise<void>;
  /** the next output line that satisfies `match`, within `timeoutMs` @default 30_000 (ms) */
  waitLine(match: (line: string) => boolean, timeoutMs?: number): Promise<string>;
}

/** A child exited before the line a caller waited for; `output` is everything it printed. */
export class ExitedError extends Error {
  override name = 'ExitedError';
  readonly code = 'HARNESS_EXITED';
  readonly output: string;
  constructor(
    readonly exitCode: number | null,
    lines: string[],
  ) {
    super(`exited with ${exitCode}: ${lines.slice(-8).join('\n')}`);
    this.output = lines.join('\n');
  }
}

export function start(cmd: string, args: string[], opts: ProcOptions = {}): Proc {
  const spawnIt = () => spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const child = opts.spawnWith ? opts.spawnWith(spawnIt) : spawnIt();
  killAtExit(child);
  const lines: string[] = [];
  const tail: string[] = [];
  const watchers = new Set<(line: string) => void>();
  const onLine = (line: string, stream: 'stdout' | 'stderr'): void => {
    if (lines.length < KEEP_LINES) lines.push(line);
    tail.push(line);
    if (tail.length > TAIL_LINES) tail.shift();
    opts.onLine?.(line, stream);
    for (const w of watchers) w(line);
  };
  createInterface({ input: child.stdout! }).on('line', (l) => onLine(l, 'stdout'));
  createInterface({ input: child.stderr! }).on('line', (l) => onLine(l, 'stderr'));
  const exited = new Promise<number | null>((resolve) => {
    // `close` comes once the pipes are read to the end, so the last lines (often the error) are in;
    // a grandchild holding a pipe open must not hold the exit back for long
    child.once('close', (code) => resolve(code));
    child.once('exit', (code) => setTimeout(() => resolve(code), DRAIN_MS).unref());
    child.once('error', (err) => {
      onLine(`${cmd}: ${err.message}`, 'stderr');
      resolve(null);
    });
  });
  const running = (): boolean => child.pid !== undefined && child.exitCode === null && child.signalCode === null;
  return {
    child,
    pid: child.pid ?? 0,
    lines,
    tail,
    exited,
    async stop(graceMs = 5_000) {
      if (running()) {
        child.kill('SIGTERM');
        child.kill('SIGCONT');
      }
      const timer = Number.isFinite(graceMs) ? setTimeout(() => child.kill('SIGKILL'), graceMs) : undefined;
      await exited;
      clearTimeout(timer);
    },
    async kill() {
      if (running()) child.kill('SIGKILL');
      await exited;
    },
    waitLine(match, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          watchers.delete(watch);
          reject(new Error(`${cmd} ${args.join(' ')}: no expected line within ${timeoutMs} ms; last lines:\n${tail.slice(-10).join('\n')}`));
        }, timeoutMs);
        const watch = (line: string): void => {
          if (!match(line)) return;
          clearTimeout(timer);
          watchers.delete(watch);
          resolve(line);
        };
        watchers.add(watch);
        void exited.then((code) => {
          if (!watchers.has(watch)) return;
          clearTimeout(timer);
          watchers.delete(watch);
          reject(new ExitedError(code, lines.length < KEEP_LINES ? lines : [...lines, '…', ...tail]));
        });
      });
    },
  };
}
