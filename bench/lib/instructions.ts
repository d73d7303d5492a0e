/**
 * Instructions per operation, counted by valgrind's callgrind: a measure that does not drift with
 * this shared machine's speed (CPU time per operation moved 2–3× between days here), so two
 * versions of the code can be compared on any day. A benchmark re-runs itself under callgrind
 * (`countUnderCallgrind`); inside, each measured stretch is counted on its own (`counting`), with
 * every thread of the process (lmdb-js's write thread included), user space only: no kernel time.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Set in the process callgrind runs: where its counts go. */
const DIR_ENV = 'HUBTIER_CALLGRIND_DIR';

/** True in a process `countUnderCallgrind` started. */
export function underCallgrind(): boolean {
  return process.env[DIR_ENV] !== undefined;
}

/** Asks callgrind (from outside, as its protocol wants) to act on this process; a no-op when not under it. */
function control(...args: string[]): Promise<void> {
  if (!underCallgrind()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const child = spawn('callgrind_control', [...args, String(process.pid)], { stdio: 'ignore' });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`callgrind_control ${args.join(' ')} exited ${code}`))));
  });
}

/**
 * A stretch to count: `start()` switches counting on, `end()` writes the count under `phase` and
 * switches it off. Both wait for callgrind's answer, so the caller's work between them is what
 * is counted (plus the few thousand instructions of one child process's exit).
 */
export function counting(phase: string): { start: () => Promise<void>; end: () => Promise<void> } {
  if (!/^[a-z][a-z0-9-]*$/.test(phase)) throw new TypeError(`phase names are [a-z0-9-]: ${phase}`);
  return {
    start: () => control('--instr=on'),
    end: async () => {
      await control(`--dump=${phase}`);
      await control('--instr=off');
    },
  };
}

/**
 * Runs `node <nodeArgs>` under callgrind with counting off until the script's `counting` stretches
 * switch it on, and answers each phase's instructions (summed when a phase is counted twice). The
 * script's own output goes to this process's stderr. Needs valgrind (Debian package `valgrind`).
 */
export async function countUnderCallgrind(nodeArgs: string[]): Promise<Map<string, PhaseCount>> {
  const dir = mkdtempSync(join(tmpdir(), 'hubtier-callgrind-'));
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(
        'valgrind',
        // V8 writes the code it runs: without the check callgrind would run stale translations
        // V8 on one thread (no concurrent compiler or collector): code is optimized at the same
        // point of every run, which keeps two runs' counts within about a percent
        ['--tool=callgrind', '--instr-atstart=no', '--smc-check=all-non-file', '--separate-threads=yes', `--callgrind-out-file=${join(dir, 'cg.%p')}`, process.execPath, '--single-threaded', ...nodeArgs],
        { stdio: ['ignore', 'inherit', 'pipe'], env: { ...process.env, [DIR_ENV]: dir } },
      );
      child.stderr.on('data', (d: Buffer) => {
        // valgrind's own lines start with ==pid==; the script's are passed on
        for (const line of d.toString().split('\n')) if (line && !/^==\d+==/.test(line)) process.stderr.write(`${line}\n`);
      });
      child.on('error', reject);
      child.on('exit', resolve);
    });
    if (code !== 0) throw new Error(`the run under callgrind exited ${code}`);
    return readCounts(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A phase's instructions: every thread's, and the main thread's (the event loop's) of them. */
export interface PhaseCount {
  all: number;
  main: number;
}

/**
 * The instructions of each dump named `dump <phase>` in `dir`, one file per thread
 * (`--separate-threads`: the main thread's is `thread: 1`).
 */
export function readCounts(dir: string): Map<string, PhaseCount> {
  const counts = new Map<string, PhaseCount>();
  for (const file of readdirSync(dir)) {
    const text = readFileSync(join(dir, file), 'utf8');
    const phase = /^desc: Trigger: dump (\S+)$/m.exec(text)?.[1];
    // `summary` is this dump's cost; `totals` is the thread's since it began counting, so a
    // phase's dump would count every phase before it again
    const summary = /^summary: (\d+)/m.exec(text);
    if (phase === undefined || !summary) continue;
    const n = Number(summary[1]);
    const count = counts.get(phase) ?? { all: 0, main: 0 };
    count.all += n;
    if (/^thread: 1$/m.test(text)) count.main += n;
    counts.set(phase, count);
  }
  return counts;
}
