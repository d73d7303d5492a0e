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

/**
 * The caches `--cache-sim` models, as this machine's AMD EPYC (Zen 5) has them: valgrind would take
 * the last level from CPUID, which in this VM claims 512 MB. First level: 32 KB of instructions and
 * 48 KB of data a core; last level: the 32 MB L3 of a core complex (L2 is not modelled). With
 * them, branches and their mispredictions (`--branch-sim`: a simple predictor, not Zen's).
 */
const CACHES = ['--cache-sim=yes', '--I1=32768,8,64', '--D1=49152,12,64', '--LL=33554432,16,64', '--branch-sim=yes'];

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
 * `cache`: simulate this machine's caches and branch prediction too (about three times slower).
 */
export async function countUnderCallgrind(nodeArgs: string[], opts: { cache?: boolean } = {}): Promise<Map<string, PhaseCount>> {
  const dir = mkdtempSync(join(tmpdir(), 'hubtier-callgrind-'));
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(
        'valgrind',
        // V8 writes the code it runs: without the check callgrind would run stale translations
        // V8 on one thread (no concurrent compiler or collector): code is optimized at the same
        // point of every run, which keeps two runs' counts within about a percent
        ['--tool=callgrind', ...(opts.cache ? CACHES : []), '--instr-atstart=no', '--smc-check=all-non-file', '--separate-threads=yes', `--callgrind-out-file=${join(dir, 'cg.%p')}`, process.execPath, '--single-threaded', ...nodeArgs],
        { stdio: ['ignore', 'inherit', 'pipe'], env: { ...process.env, [DIR_ENV]: dir } },
      );
      child.stderr.on('data', (d: Buffer) => {
        // valgrind's own lines start with ==pid== (or --pid-- for its warnings); the script's are passed on
        for (const line of d.toString().split('\n')) if (line && !/^(==\d+==|--\d+--)/.test(line)) process.stderr.write(`${line}\n`);
      });
      child.on('error', reject);
      child.on('exit', resolve);
    });
    if (code !== 0) throw new Error(`the run under callgrind exited ${code}`);
    return readCounts(dir);
  } finally {
    // HUBTIER_CALLGRIND_KEEP=1 leaves the dumps for callgrind_annotate (which function cost what)
    if (process.env.HUBTIER_CALLGRIND_KEEP === '1') process.stderr.write(`callgrind's dumps kept in ${dir}\n`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A phase's instructions: every thread's, and the main thread's (the event loop's) of them; and
 * every event callgrind counted (`Ir` alone, or with `--cache-sim=yes` also the simulated caches'
 * reads, writes and misses: `Dr`, `D1mr`, `DLmw`...), every thread's.
 */
export interface PhaseCount {
  all: number;
  main: number;
  events: Record<string, number>;
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
    const summary = /^summary: ([\d ]+)$/m.exec(text);
    const names = /^events: ([\w ]+)$/m.exec(text)?.[1]?.split(' ');
    if (phase === undefined || !summary || !names) continue;
    let values = summary[1]!.split(' ').map(Number);
    // a thread number taken over by a new thread since the last dump (a pool's thread that ended):
    // callgrind subtracts the old thread's count from the new one's and prints the negative
    // difference as an unsigned 64-bit number; the new thread's own count is then its totals
    if (values.some((v) => v >= 2 ** 63)) values = (/^totals: ([\d ]+)$/m.exec(text)?.[1] ?? '').split(' ').map(Number);
    const count = counts.get(phase) ?? { all: 0, main: 0, events: {} };
    names.forEach((name, i) => (count.events[name] = (count.events[name] ?? 0) + (values[i] ?? 0)));
    const ir = values[names.indexOf('Ir')] ?? 0;
    count.all += ir;
    if (/^thread: 1$/m.test(text)) count.main += ir;
    counts.set(phase, count);
  }
  return counts;
}
