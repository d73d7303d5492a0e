import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/**
 * The processes a benchmark starts: server nodes, the relay floor, nats-server and redis-server,
 * each on free ports of 127.0.0.1 (never 4222/6379). Every child is killed when the benchmark
 * exits, however it exits.
 */

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const GC_HOOK = fileURLToPath(new URL('./gc-hook.ts', import.meta.url));

const children = new Set<ChildProcess>();
function killAll(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}
process.on('exit', killAll);

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no free port'))));
    });
  });
}

export interface Proc {
  readonly child: ChildProcess;
  readonly pid: number;
  /** stdout and stderr lines so far */
  readonly lines: string[];
  readonly exited: Promise<number | null>;
  /** SIGTERM, then SIGKILL after 5 s; resolves when it has exited */
  stop(): Promise<void>;
  /** next stderr/stdout line that satisfies `match`, within `timeoutMs` */
  waitLine(match: (line: string) => boolean, timeoutMs?: number): Promise<string>;
}

function start(cmd: string, args: string[], env: Record<string, string>): Proc {
  const child = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const lines: string[] = [];
  const watchers = new Set<(line: string) => void>();
  const onLine = (line: string) => {
    if (lines.length < 5_000) lines.push(line);
    for (const w of watchers) w(line);
  };
  createInterface({ input: child.stdout! }).on('line', onLine);
  createInterface({ input: child.stderr! }).on('line', onLine);
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      children.delete(child);
      resolve(code);
    }),
  );
  return {
    child,
    pid: child.pid ?? 0,
    lines,
    exited,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
    waitLine(match, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          watchers.delete(watch);
          reject(new Error(`${cmd} ${args.join(' ')}: no expected line within ${timeoutMs} ms; last lines:\n${lines.slice(-10).join('\n')}`));
        }, timeoutMs);
        const watch = (line: string) => {
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
          reject(new ExitedError(code, lines));
        });
      });
    },
  };
}

/** A child exited before the line a caller waited for; `output` is everything it printed. */
export class ExitedError extends Error {
  override name = 'ExitedError';
  readonly output: string;
  constructor(
    readonly code: number | null,
    lines: string[],
  ) {
    super(`exited with ${code}: ${lines.slice(-8).join('\n')}`);
    this.output = lines.join('\n');
  }
}

const NODE_FLAGS = ['--expose-gc', '--import', 'tsx', '--import', GC_HOOK];

export interface NodeProc extends Proc {
  readonly port: number;
  readonly adminPort: number;
  readonly wsUrl: string;
  readonly httpUrl: string;
  readonly adminToken: string;
}

/** Starts a server node (`src/main.ts`) and waits for its "node ready" line. */
export async function startNode(opts: { env?: Record<string, string>; port?: number; adminToken?: string; nodeFlags?: string[] } = {}): Promise<NodeProc> {
  const port = opts.port ?? (await freePort());
  const adminPort = await freePort();
  const adminToken = opts.adminToken ?? `bench-${randomBytes(12).toString('hex')}`;
  const proc = start(process.execPath, [...(opts.nodeFlags ?? []), ...NODE_FLAGS, 'src/main.ts'], {
    HOST: '127.0.0.1',
    PORT: String(port),
    ADMIN_PORT: String(adminPort),
    ADMIN_TOKEN: adminToken,
    JWT_SECRET: `jwt-${randomBytes(16).toString('hex')}`,
    LOG_LEVEL: 'warn',
    UWS_REQUIRE_NATIVE: '1',
    ...opts.env,
  });
  // "node ready" is logged at info; with LOG_LEVEL=warn the banner line tells the same
  await proc.waitLine((l) => l.includes('"node ready"') || l.startsWith('hubtier node '), 60_000);
  return { ...proc, port, adminPort, wsUrl: `ws://127.0.0.1:${port}`, httpUrl: `http://127.0.0.1:${port}`, adminToken };
}

export interface FloorProc extends Proc {
  readonly port: number;
  readonly wsUrl: string;
  readonly httpUrl: string;
}

/** Starts `bench/relay-floor.ts`. */
export async function startRelayFloor(opts: { nodeFlags?: string[]; mode?: 'naive' | 'corked' } = {}): Promise<FloorProc> {
  const proc = start(process.execPath, [...(opts.nodeFlags ?? []), ...NODE_FLAGS, 'bench/relay-floor.ts'], { UWS_REQUIRE_NATIVE: '1', RELAY_MODE: opts.mode ?? 'naive' });
  const line = await proc.waitLine((l) => l.startsWith('{"ready":true'), 30_000);
  const { port } = JSON.parse(line) as { port: number };
  return { ...proc, port, wsUrl: `ws://127.0.0.1:${port}`, httpUrl: `http://127.0.0.1:${port}` };
}

/** nats-server on a free port. */
export async function startNats(): Promise<{ url: string; proc: Proc }> {
  const port = await freePort();
  const proc = start('/usr/sbin/nats-server', ['-a', '127.0.0.1', '-p', String(port)], {});
  await proc.waitLine((l) => l.includes('Server is ready'), 15_000);
  return { url: `nats://127.0.0.1:${port}`, proc };
}

/**
 * redis-server on a free port: without persistence, or with an append-only file fsynced as
 * `appendfsync` says, in a temporary directory removed when this process exits.
 */
export async function startRedis(opts: { appendfsync?: 'always' | 'everysec' | 'no' } = {}): Promise<{ url: string; proc: Proc }> {
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', ''];
  if (opts.appendfsync === undefined) args.push('--appendonly', 'no');
  else {
    const dir = mkdtempSync(join(tmpdir(), 'hubtier-bench-redis-'));
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
    args.push('--appendonly', 'yes', '--appendfsync', opts.appendfsync, '--dir', dir);
  }
  const proc = start('/usr/bin/redis-server', args, {});
  await proc.waitLine((l) => l.includes('Ready to accept connections'), 15_000);
  return { url: `redis://127.0.0.1:${port}`, proc };
}

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
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: Number(fields[11]) * 10, sys: Number(fields[12]) * 10 };
}

export interface GcReading {
  rss: number;
  heapUsed: number;
  /** V8 heap committed (used or not) */
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  /** heap snapshot written after the collection (HEAP_SNAPSHOT_DIR set for the process) */
  snapshot?: string;
}

/** Asks a process started with the gc hook to collect; its memory after the collection. */
export async function collect(proc: Proc): Promise<GcReading> {
  const line = proc.waitLine((l) => l.startsWith('{"gcHook":true'), 300_000);
  proc.child.kill('SIGUSR2');
  return JSON.parse(await line) as GcReading;
}
