import { randomBytes } from 'node:crypto';
import { freePort, freshDataDir, startNats, startNode, startRedis, type Backend, type NodeProc } from '../harness/index.js';
import { request } from '../wire/admin.js';

/**
 * The nodes under test. Cluster mode: its own nats-server and redis-server (append-only file) on
 * free ports and K node processes, each on its own port so every connection names the process it
 * went to. Embedded: one node of the embedded default, restarted on its own data directory, so
 * what it keeps is what its disk kept. Nodes are killed, stopped and restarted on the same port;
 * the cluster remembers which signal each process got, so a request's failure can be put down to it.
 */

/**
 * `up`: takes hubs and requests. `stopping`: SIGTERM is on its way (taken out of rotation first,
 * as a load balancer does on readiness). `down`: no process. `starting`: a new process is booting.
 * `frozen`: stopped (SIGSTOP) and out of rotation, as a failing readiness probe takes it out.
 */
export type NodeState = 'starting' | 'up' | 'stopping' | 'down' | 'frozen';

export interface ChaosNode {
  readonly index: number;
  readonly id: string;
  readonly port: number;
  readonly wsUrl: string;
  readonly httpUrl: string;
  state: NodeState;
  /** the current (or last) process */
  proc: NodeProc;
}

export interface ClusterOptions {
  /** embedded: no NATS or Redis; every node keeps its DATA_DIR across restarts (one node is the product's case) */
  mode: 'cluster' | 'embedded';
  nodes: number;
  appendfsync: 'always' | 'everysec' | 'no';
  /** extra environment of every node (TIER_* settings) */
  env: Record<string, string>;
}

/** How long a restarted node may take to answer 200 on /readyz. */
const READY_MS = 30_000;

export class ChaosCluster {
  readonly adminToken = `chaos-${randomBytes(12).toString('hex')}`;
  readonly nodes: ChaosNode[] = [];
  /** the signal each node process got from this run, by pid */
  readonly signalled = new Map<number, 'SIGKILL' | 'SIGTERM'>();
  private env: Record<string, string> = {};
  private backends: Backend[] = [];
  /** embedded: each node's DATA_DIR, the same for every process of that node (cluster mode: a fresh one each, as a pod's emptyDir) */
  private dataDirs: Array<string | undefined> = [];

  static async start(opts: ClusterOptions): Promise<ChaosCluster> {
    const c = new ChaosCluster();
    c.env = { ...opts.env, JWT_SECRET: `jwt-${randomBytes(16).toString('hex')}` };
    if (opts.mode === 'cluster') {
      const [nats, redis] = await Promise.all([startNats(), startRedis({ appendfsync: opts.appendfsync })]);
      c.backends.push(nats, redis);
      Object.assign(c.env, { NATS_URL: nats.url, REDIS_URL: redis.url });
    }
    const ports: number[] = [];
    for (let i = 0; i < opts.nodes; i++) {
      ports.push(await freePort());
      c.dataDirs.push(opts.mode === 'embedded' ? freshDataDir() : undefined);
    }
    const procs = await Promise.all(ports.map((port, i) => c.boot(i, port)));
    procs.forEach((proc, i) => {
      const port = ports[i]!;
      c.nodes.push({ index: i, id: `node-${i}`, port, wsUrl: `ws://127.0.0.1:${port}`, httpUrl: `http://127.0.0.1:${port}`, state: 'up', proc });
    });
    return c;
  }

  /** The cluster's nats-server or redis-server (cluster mode), for faults of their own. */
  backend(kind: 'nats' | 'redis'): Backend {
    const b = this.backends.find((x) => x.kind === kind);
    if (!b) throw new Error(`no ${kind} server: the embedded default has none`);
    return b;
  }

  up(): ChaosNode[] {
    return this.nodes.filter((n) => n.state === 'up');
  }

  /** SIGKILL; resolves once the process has exited (the node is then `down`). */
  async kill(index: number): Promise<{ pid: number; exitMs: number }> {
    const node = this.nodes[index]!;
    const { pid } = node.proc;
    const t0 = performance.now();
    this.signalled.set(pid, 'SIGKILL');
    node.proc.child.kill('SIGKILL');
    await node.proc.exited;
    node.state = 'down';
    return { pid, exitMs: performance.now() - t0 };
  }

  /**
   * Takes the node out of rotation, sends SIGTERM and waits up to `graceMs` for the drain to end;
   * past that it is killed (`forced`). `code`: the exit code (null when killed).
   */
  async terminate(index: number, graceMs: number): Promise<{ pid: number; exitMs: number; code: number | null; forced: boolean }> {
    const node = this.nodes[index]!;
    const { pid } = node.proc;
    node.state = 'stopping';
    const t0 = performance.now();
    this.signalled.set(pid, 'SIGTERM');
    node.proc.child.kill('SIGTERM');
    let forced = false;
    const timer = setTimeout(() => {
      forced = true;
      node.proc.child.kill('SIGKILL');
    }, graceMs);
    const code = await node.proc.exited;
    clearTimeout(timer);
    node.state = 'down';
    return { pid, exitMs: performance.now() - t0, code, forced };
  }

  /** SIGSTOP: the process keeps its sockets and answers nothing (a long pause, a frozen VM). */
  freeze(index: number): number {
    const node = this.nodes[index]!;
    node.state = 'frozen';
    node.proc.child.kill('SIGSTOP');
    return node.proc.pid;
  }

  /** SIGCONT: the frozen process goes on where it stopped, and back into rotation. */
  thaw(index: number): void {
    const node = this.nodes[index]!;
    node.proc.child.kill('SIGCONT');
    node.state = 'up';
  }

  /** Starts a new process on the node's port; resolves when /readyz answers 200 (state `up`). */
  async restart(index: number): Promise<{ pid: number; readyMs: number }> {
    const node = this.nodes[index]!;
    node.state = 'starting';
    const t0 = performance.now();
    node.proc = await this.boot(index, node.port);
    node.state = 'up';
    return { pid: node.proc.pid, readyMs: performance.now() - t0 };
  }

  /** Stops every node (SIGTERM, then SIGKILL after 5 s) and the backends. */
  async close(): Promise<void> {
    await Promise.allSettled(this.nodes.map((n) => n.proc.stop()));
    await Promise.allSettled(this.backends.map((b) => b.stop()));
  }

  private async boot(index: number, port: number): Promise<NodeProc> {
    const proc = await startNode({ env: { ...this.env, NODE_ID: `node-${index}` }, adminToken: this.adminToken, port, dataDir: this.dataDirs[index] });
    const until = Date.now() + READY_MS;
    for (;;) {
      const ready = await request(`http://127.0.0.1:${proc.adminPort}`, 'GET', '/readyz', this.adminToken, undefined, 2_000).catch(() => null);
      if (ready?.status === 200) return proc;
      if (Date.now() > until) throw new Error(`node-${index} (pid ${proc.pid}) not ready within ${READY_MS} ms: ${JSON.stringify(ready?.body ?? null)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
