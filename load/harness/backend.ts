import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { freePort } from './free-port.js';
import { start, type Proc } from './proc.js';

/** How long a backend may take to accept connections: a ceiling, reached only when it is broken. */
const READY_MS = 15_000;

/**
 * A nats-server or redis-server process of the harness, on a free port of 127.0.0.1 (never the
 * shared 4222/6379). `stop`, `kill`, `pause` and `restart` are for fault tests; `restart` comes
 * back on the same port, so clients reconnect to the address they know.
 */
export interface Backend {
  readonly kind: 'nats' | 'redis';
  readonly port: number;
  /** nats://127.0.0.1:port or redis://127.0.0.1:port */
  readonly url: string;
  /** true while the process runs */
  readonly running: boolean;
  /** pid of the current process; 0 while none runs */
  readonly pid: number;
  /** SIGTERM, SIGKILL after 5 s, and wait for the exit */
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

export interface BackendSpec {
  kind: Backend['kind'];
  bin: string;
  /** its arguments for `port`; called again before each restart, so it may prepare files */
  args(port: number): string[];
  /** after `stop`: removes what the process left (a restart prepares it again) */
  cleanup?(): void;
  /** this port, tried once (a client already told of it waits there) @default a free port */
  port?: number | undefined;
}

/** A key or subject prefix no other test uses: `t<uuid>:` (the keys of a test never meet another's). */
export function uniquePrefix(): string {
  return `t${randomUUID().replaceAll('-', '').slice(0, 20)}:`;
}

/** Starts the backend on a free port and resolves once it answers there. */
export async function startBackend(spec: BackendSpec): Promise<Backend> {
  let port = 0;
  let current: Proc | null = null;
  // a free port may be taken between the check and the bind: try a few
  for (let attempt = 1; current === null; attempt++) {
    port = spec.port ?? (await freePort());
    try {
      current = await launch(spec, port);
    } catch (err) {
      if (attempt >= 3 || spec.port !== undefined) throw err;
    }
  }

  async function end(how: 'stop' | 'kill'): Promise<void> {
    const proc = current;
    if (!proc) return;
    current = null;
    await (how === 'stop' ? proc.stop() : proc.kill());
  }

  return {
    kind: spec.kind,
    port,
    url: `${spec.kind}://127.0.0.1:${port}`,
    get running() {
      return current !== null;
    },
    get pid() {
      return current?.pid ?? 0;
    },
    stop: async () => {
      await end('stop');
      spec.cleanup?.();
    },
    kill: () => end('kill'),
    restart: async () => {
      await end('stop');
      current = await launch(spec, port);
    },
    pause: () => {
      if (!current) throw new Error(`${spec.kind} is not running`);
      current.child.kill('SIGSTOP');
    },
    resume: () => {
      current?.child.kill('SIGCONT');
    },
  };
}

/** Spawns the server and resolves once it answers on its port; rejects if it exits first. */
async function launch(spec: BackendSpec, port: number): Promise<Proc> {
  const proc = start(spec.bin, spec.args(port));
  let exited = false;
  void proc.exited.then(() => (exited = true));
  const deadline = Date.now() + READY_MS;
  for (let attempt = 0; ; attempt++) {
    if (exited) throw new Error(`${spec.kind} on port ${port} exited before it was ready: ${proc.tail.join('\n').slice(-500)}`);
    if (await answers(spec.kind, port)) return proc;
    if (Date.now() > deadline) {
      await proc.kill();
      throw new Error(`${spec.kind} on port ${port} not ready within ${READY_MS} ms: ${proc.tail.join('\n').slice(-500)}`);
    }
    // the next probe after a short, growing pause (the server is starting up)
    await new Promise((r) => setTimeout(r, Math.min(5 * 2 ** attempt, 100)));
  }
}

/**
 * One probe: NATS greets every connection with `INFO {...}`; Redis answers `PING` with `+PONG`
 * (and `-LOADING` while it loads, which counts as not ready; `-NOAUTH` when it requires a password).
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
      // a Redis that requires a password answers NOAUTH once it serves: ready too (not -LOADING)
      done(kind === 'nats' ? got.startsWith('INFO ') : got.startsWith('+PONG') || got.startsWith('-NOAUTH'));
    });
  });
}
