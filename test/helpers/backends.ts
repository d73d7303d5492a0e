import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './server-process.js';

const NATS_SERVER = process.env.NATS_SERVER_BIN ?? '/usr/sbin/nats-server';
const REDIS_SERVER = process.env.REDIS_SERVER_BIN ?? '/usr/bin/redis-server';

/** How long a backend may take to accept connections: a ceiling, reached only when it is broken. */
const READY_MS = 10_000;

/**
 * A nats-server or redis-server process of the test harness, on a free port of 127.0.0.1 (never
 * the shared 4222/6379). `stop`, `kill` and `restart` are for fault tests; `restart` comes back on
 * the same port, so clients reconnect to the address they know.
 */
export interface Backend {
  readonly kind: 'nats' | 'redis';
  readonly port: number;
  /** nats://127.0.0.1:port or redis://127.0.0.1:port */
  readonly url: string;
  /** true while the process runs */
  readonly running: boolean;
  /** SIGTERM and wait for the exit (Redis saves nothing: started with --save '') */
  stop(): Promise<void>;
  /** SIGKILL and wait for the exit */
  kill(): Promise<void>;
  /** Starts again on the same port (stopping first if it runs) and waits until it accepts connections. */
  restart(): Promise<void>;
  /** SIGSTOP: connections stay open but nothing is answered (a hung server, a network black hole) */
  pause(): void;
  /** SIGCONT after `pause` */
  resume(): void;
}

interface Running {
  child: ChildProcess;
  exited: Promise<void>;
  output: string[];
}

const live = new Set<ChildProcess>();
const dirs = new Set<string>();
let hooked = false;

/** Whatever the test file forgets (or a crash skips), the children die with this process. */
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.once('exit', () => {
    for (const c of live) c.kill('SIGKILL');
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
}

/** Starts a nats-server (core NATS, no JetStream) on a free port. */
export function startNats(): Promise<Backend> {
  return startBackend('nats', (port) => [NATS_SERVER, ['-a', '127.0.0.1', '-p', String(port)]], (port) => `nats://127.0.0.1:${port}`);
}

/**
 * Starts a redis-server on a free port, its working dir under the OS temp dir. Without `persist`
 * it keeps nothing (the dir is removed by `stop` and made again by `restart`); with it, an
 * append-only file survives `stop`/`restart` (as a production Redis would), removed at exit.
 */
export function startRedis(options: { persist?: boolean } = {}): Promise<Backend> {
  const persist = options.persist === true;
  const dir = mkdtempSync(join(tmpdir(), 'hubtier-redis-'));
  dirs.add(dir);
  return startBackend(
    'redis',
    (port) => {
      mkdirSync(dir, { recursive: true });
      return [REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', persist ? 'yes' : 'no', '--dir', dir, '--protected-mode', 'no']];
    },
    (port) => `redis://127.0.0.1:${port}`,
    () => {
      if (persist) return; // the append-only file must outlive the stop
      rmSync(dir, { recursive: true, force: true });
      dirs.delete(dir);
    },
  );
}

/** A key prefix no other test uses: `t<uuid>:` (Redis keys of a test never meet another's). */
export function uniquePrefix(): string {
  return `t${randomUUID().replaceAll('-', '').slice(0, 20)}:`;
}

async function startBackend(
  kind: Backend['kind'],
  command: (port: number) => [string, string[]],
  url: (port: number) => string,
  /** after `stop`: removes what the process left (a `restart` prepares it again) */
  cleanup?: () => void,
): Promise<Backend> {
  hookExit();
  let port = 0;
  let current: Running | null = null;
  // a free port may be taken between the check and the bind: try a few
  for (let attempt = 1; current === null; attempt++) {
    port = await freePort();
    try {
      current = await launch(kind, command(port), port);
    } catch (err) {
      if (attempt >= 3) throw err;
    }
  }

  async function end(signal: NodeJS.Signals): Promise<void> {
    const r = current;
    if (!r) return;
    current = null;
    if (r.child.exitCode === null && r.child.signalCode === null) {
      r.child.kill(signal);
      r.child.kill('SIGCONT'); // a paused process handles SIGTERM only once it runs again
    }
    await r.exited;
  }

  return {
    kind,
    port,
    url: url(port),
    get running() {
      return current !== null;
    },
    stop: async () => {
      await end('SIGTERM');
      cleanup?.();
    },
    kill: () => end('SIGKILL'),
    restart: async () => {
      if (current) current.child.kill('SIGCONT');
      await end('SIGTERM');
      current = await launch(kind, command(port), port);
    },
    pause: () => {
      if (!current) throw new Error(`${kind} is not running`);
      current.child.kill('SIGSTOP');
    },
    resume: () => {
      current?.child.kill('SIGCONT');
    },
  };
}

/** Spawns the server and resolves once it answers on its port; rejects if it exits first. */
async function launch(kind: Backend['kind'], [bin, args]: [string, string[]], port: number): Promise<Running> {
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  const output: string[] = [];
  const keep = (chunk: Buffer): void => {
    output.push(chunk.toString());
    if (output.length > 50) output.shift();
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  let exitedNow = false;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      exitedNow = true;
      live.delete(child);
      resolve();
    });
    child.once('error', (err) => {
      output.push(String(err));
      exitedNow = true;
      live.delete(child);
      resolve();
    });
  });
  const deadline = Date.now() + READY_MS;
  for (let attempt = 0; ; attempt++) {
    if (exitedNow) throw new Error(`${kind} on port ${port} exited before it was ready: ${output.join('').slice(-500)}`);
    if (await answers(kind, port)) return { child, exited, output };
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      await exited;
      throw new Error(`${kind} on port ${port} not ready within ${READY_MS} ms: ${output.join('').slice(-500)}`);
    }
    // the next probe after a short, growing pause (the server is starting up)
    await new Promise((r) => setTimeout(r, Math.min(5 * 2 ** attempt, 100)));
  }
}

/**
 * One probe: NATS greets every connection with `INFO {...}`; Redis answers `PING` with `+PONG`
 * (and `-LOADING` while it loads, which counts as not ready).
 */
function answers(kind: Backend['kind'], port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let got = '';
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => {
      if (kind === 'redis') socket.write('PING\r\n');
    });
    socket.on('data', (chunk) => {
      got += chunk.toString();
      if (!got.includes('\r\n')) return;
      done(kind === 'nats' ? got.startsWith('INFO ') : got.startsWith('+PONG'));
    });
  });
}
