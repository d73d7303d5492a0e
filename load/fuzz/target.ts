import { randomBytes } from 'node:crypto';
import { cpuMs, freePorts, rssBytes, startNode, type NodeProc } from '../harness/index.js';
import { metricSum } from '../lib/prom-text.js';

/**
 * The node under test: a `src/main.ts` process this fuzzer starts (and restarts after a crash) on
 * free ports of 127.0.0.1, or a node that is already running (`--url`), which is never restarted.
 */

export interface TargetOptions {
  /** an already running node: http://host:port (ws URLs are derived) */
  url?: string;
  adminUrl?: string;
  adminToken?: string;
  jwtSecret?: string;
  /** pid of an already running node, for its RSS */
  pid?: number;
  /** environment of a spawned node, on top of the fuzzer's defaults */
  env?: Record<string, string>;
  /** every output line of a spawned node */
  onLine?: (line: string) => void;
}

export interface ExitInfo {
  code: number | null;
  signal: string | null;
}

/**
 * The spawned node's defaults: rate limits far above what the fuzzer sends, so frames reach the
 * codec and the session instead of being refused as `rate_limited` (override with `--server-env`).
 */
export const FUZZ_SERVER_ENV: Readonly<Record<string, string>> = {
  LOG_LEVEL: 'warn',
  TIER_HUB_RATE_PER_SEC: '1000000',
  TIER_HUB_RATE_BURST: '1000000',
  TIER_APP_REQUESTS_PER_SEC: '1000000',
  TIER_APP_REQUESTS_BURST: '1000000',
  // the fuzz opens thousands of sessions of a few hubs: no limit on a hub's handshakes
  TIER_HUB_HELLOS_PER_MIN: '0',
  // and sends wrong tokens from the address it then uses the admin token from
  TIER_ADMIN_TOKEN_GUESSES: '0',
};

const TAIL = 120;
const READY_TIMEOUT_MS = 60_000;

export class Target {
  readonly spawned: boolean;
  readonly httpUrl: string;
  readonly wsUrl: string;
  readonly adminUrl: string | undefined;
  readonly adminToken: string;
  readonly jwtSecret: string | undefined;
  /** 1 for the first process, +1 per restart: a surface that sees it change sets itself up again */
  generation = 0;
  private proc: NodeProc | null = null;
  private readonly tail: string[] = [];
  private exitInfo: ExitInfo | null = null;
  private exitWaiters: Array<(e: ExitInfo) => void> = [];
  private readonly port: number;
  private readonly adminPort: number;
  private readonly fixedPid: number | undefined;

  private constructor(
    private readonly opts: TargetOptions,
    ports: { port: number; adminPort: number },
  ) {
    this.spawned = opts.url === undefined;
    this.port = ports.port;
    this.adminPort = ports.adminPort;
    if (opts.url !== undefined) {
      const u = new URL(opts.url);
      const http = u.protocol === 'ws:' ? 'http:' : u.protocol === 'wss:' ? 'https:' : u.protocol;
      this.httpUrl = `${http}//${u.host}`;
      this.wsUrl = `${http === 'https:' ? 'wss:' : 'ws:'}//${u.host}`;
      this.adminUrl = opts.adminUrl;
      if (!opts.adminToken) throw new Error('--url needs --admin-token');
      this.adminToken = opts.adminToken;
      this.jwtSecret = opts.jwtSecret;
    } else {
      this.httpUrl = `http://127.0.0.1:${ports.port}`;
      this.wsUrl = `ws://127.0.0.1:${ports.port}`;
      this.adminUrl = `http://127.0.0.1:${ports.adminPort}`;
      this.adminToken = opts.adminToken ?? `fuzz-admin-${randomBytes(12).toString('hex')}`;
      this.jwtSecret = opts.jwtSecret ?? `fuzz-jwt-${randomBytes(16).toString('hex')}`;
    }
    this.fixedPid = opts.pid;
  }

  static async start(opts: TargetOptions): Promise<Target> {
    const [port, adminPort] = opts.url === undefined ? await freePorts(2) : [0, 0];
    const ports = { port: port!, adminPort: adminPort! };
    const t = new Target(opts, ports);
    if (t.spawned) await t.launch();
    else t.generation = 1;
    return t;
  }

  get pid(): number | undefined {
    return this.spawned ? this.proc?.pid : this.fixedPid;
  }

  /** False once a spawned node has exited (until it is restarted). */
  get alive(): boolean {
    return this.spawned ? this.proc !== null && this.exitInfo === null : true;
  }

  /** The last output lines of the current (or last) spawned process. */
  lastLines(): string[] {
    return [...this.tail];
  }

  /** Resolves when the current spawned process exits (never for a `--url` target). */
  whenExited(): Promise<ExitInfo> {
    if (this.exitInfo) return Promise.resolve(this.exitInfo);
    return new Promise((resolve) => this.exitWaiters.push(resolve));
  }

  /** RSS in bytes from /proc/<pid>/status, or null when the pid is unknown or gone. */
  rss(): number | null {
    const pid = this.pid;
    if (pid === undefined) return null;
    try {
      return rssBytes(pid);
    } catch {
      return null;
    }
  }

  /** CPU time (user + system) of the node so far, ms; null when the pid is unknown or gone. */
  cpuMs(): number | null {
    const pid = this.pid;
    if (pid === undefined) return null;
    try {
      return cpuMs(pid);
    } catch {
      return null;
    }
  }

  /** GET /healthz on the admin port: true for a 200 within `timeoutMs`; null without an admin URL. */
  async healthz(timeoutMs = 3_000): Promise<boolean | null> {
    if (!this.adminUrl) return null;
    try {
      const res = await fetch(`${this.adminUrl}/healthz`, { signal: AbortSignal.timeout(timeoutMs) });
      await res.text();
      return res.status === 200;
    } catch {
      return false;
    }
  }

  /** Sum of `tier_actor_failures_total` over its labels, from /metrics; null when unreadable. */
  async actorFailures(): Promise<number | null> {
    if (!this.adminUrl) return null;
    try {
      const res = await fetch(`${this.adminUrl}/metrics`, { signal: AbortSignal.timeout(5_000) });
      return metricSum(await res.text(), 'tier_actor_failures_total') ?? 0;
    } catch {
      return null;
    }
  }

  /** Starts the node again after it died (same ports, same tokens: its memory is gone). */
  async restart(): Promise<void> {
    if (!this.spawned) throw new Error('a --url target cannot be restarted by the fuzzer');
    if (this.alive) await this.stop();
    await this.launch();
  }

  /** SIGTERM, then SIGKILL after 5 s; resolves when it has exited. */
  async stop(): Promise<void> {
    const proc = this.proc;
    if (!proc || this.exitInfo) return;
    await proc.stop();
    await this.whenExited();
  }

  private async launch(): Promise<void> {
    this.exitInfo = null;
    this.tail.length = 0;
    this.proc = null;
    let proc: NodeProc;
    try {
      proc = await startNode({
        env: { ...FUZZ_SERVER_ENV, ...this.opts.env },
        port: this.port,
        adminPort: this.adminPort,
        adminToken: this.adminToken,
        jwtSecret: this.jwtSecret,
        measured: false,
        readyMs: READY_TIMEOUT_MS,
        onLine: (line) => {
          this.tail.push(line);
          if (this.tail.length > TAIL) this.tail.shift();
          this.opts.onLine?.(line);
        },
      });
    } catch (err) {
      throw new Error(`the node did not start: ${(err as Error).message}`, { cause: err });
    }
    this.proc = proc;
    // `exited` resolves once the output is read, so a crash report has the node's last lines
    void proc.exited.then((code) => {
      const info = { code, signal: proc.child.signalCode };
      this.exitInfo = info;
      const waiters = this.exitWaiters;
      this.exitWaiters = [];
      for (const w of waiters) w(info);
    });
    this.generation++;
  }
}

/**
 * Kills a spawned node when the fuzzer itself exits, however it exits: at `exit`, and on SIGINT and
 * SIGTERM, whose default action would end the fuzzer without `exit` handlers and leave the node running.
 */
export function killOnExit(target: Target): void {
  const kill = () => {
    const pid = target.spawned ? target.pid : undefined;
    if (pid !== undefined && target.alive) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  };
  process.once('exit', kill);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      kill();
      process.exit(signal === 'SIGINT' ? 130 : 143);
    });
  }
}
