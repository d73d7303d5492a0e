import { mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { table } from '../../load/lib/histogram.js';

/**
 * Reads a V8 `.cpuprofile` (from `node --cpu-prof`) and tells where the time went: self time by
 * function and by area (a package under node_modules, a file of src/, node internals, GC, idle).
 * Standalone: `node --import tsx bench/lib/profile-summary.ts FILE [TOP]`.
 */

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  /** µs on the machine's monotonic clock, the one `monotonicUs()` reads in any process */
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** A span of time, µs on the monotonic clock (`monotonicUs()`). */
export type Span = readonly [fromUs: number, toUs: number];

/** Now, µs on the clock V8 stamps its CPU profiles with (CLOCK_MONOTONIC, shared by every process of the machine). */
export function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/** Runs `run`, adding the span it took to `spans` (for `summarizeProfile`). */
export async function inSpan<T>(spans: Span[], run: () => Promise<T>): Promise<T> {
  const from = monotonicUs();
  try {
    return await run();
  } finally {
    spans.push([from, monotonicUs()]);
  }
}

function area(url: string, fn: string): string {
  if (url === '') return fn.startsWith('(') ? fn : '(native/builtin)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1]!;
  if (url.startsWith('node:')) return 'node internals';
  const src = /\/((?:src|load|bench|proto)\/.*)$/.exec(url);
  return src ? src[1]! : url;
}

/**
 * `spans`: only the samples taken within them count (a benchmark's measured phases, not the
 * process's start or the provisioning before them); absent, the whole profile.
 */
export function summarizeProfile(file: string, top = 25, spans?: readonly Span[]): string {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  let totalUs = 0;
  let at = p.startTime;
  p.samples.forEach((id, i) => {
    const dt = p.timeDeltas[i] ?? 0;
    at += dt;
    if (spans && !spans.some(([from, to]) => at >= from && at <= to)) return;
    selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
    totalUs += dt;
  });
  const fns = new Map<string, number>();
  const areas = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const n = byId.get(id);
    if (!n) continue;
    const { functionName, url, lineNumber } = n.callFrame;
    const a = area(url, functionName || '(anonymous)');
    const key = `${functionName || '(anonymous)'}  ${a}${url ? `:${lineNumber + 1}` : ''}`;
    fns.set(key, (fns.get(key) ?? 0) + us);
    areas.set(a, (areas.get(a) ?? 0) + us);
  }
  const busyUs = totalUs - (areas.get('(idle)') ?? 0);
  const pct = (us: number) => `${((100 * us) / Math.max(1, busyUs)).toFixed(1)}%`;
  const sorted = (m: Map<string, number>) => [...m].filter(([k]) => k !== '(idle)' && !k.startsWith('(idle)')).sort((a, b) => b[1] - a[1]);
  return [
    `profile ${file}${spans ? ` within ${spans.length} measured span(s)` : ''}: ${(totalUs / 1e6).toFixed(1)} s sampled, ${(busyUs / 1e6).toFixed(1)} s busy (percentages of busy time)`,
    table([['area', 'self'], ...sorted(areas).slice(0, 15).map(([k, us]) => [k, pct(us)])]),
    '',
    table([['function', 'self'], ...sorted(fns).slice(0, top).map(([k, us]) => [k, pct(us)])]),
  ].join('\n');
}

/** Node flags that write a process's CPU profiles into `dir` (made if missing). */
export function cpuProfFlags(dir: string): string[] {
  mkdirSync(dir, { recursive: true });
  return ['--cpu-prof', `--cpu-prof-dir=${dir}`];
}

/**
 * The main thread's profile of process `pid` in `dir`: one file per thread (tsx runs its loader on a
 * worker thread), and the main thread's is the largest. Undefined if none was written.
 */
export function mainThreadProfile(dir: string, pid: number): string | undefined {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile') && f.includes(`.${pid}.`))
    .map((f) => join(dir, f))
    .sort((a, b) => statSync(b).size - statSync(a).size)[0];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: node --import tsx bench/lib/profile-summary.ts FILE.cpuprofile [TOP]\n');
    process.exit(2);
  }
  process.stdout.write(`${summarizeProfile(file, Number(process.argv[3] ?? 30))}\n`);
}
