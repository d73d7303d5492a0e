import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { LATENCIES, addCounters, emptyCounters, type AppSpec, type Counters, type FromWorker, type HubSpec, type Latency, type Snapshot, type ToWorker, type WorkerConfig, type WorkerMemory } from './ipc.js';
import { latencyHistograms } from './metrics.js';
import { addEncoded, type Histogram } from '../lib/histogram.js';

const WORKER = fileURLToPath(new URL('./worker-process.ts', import.meta.url));

/** Sockets one worker may hold: the per-process file limit here is 20,000. */
export const MAX_SOCKETS_PER_WORKER = 19_000;

type Payload<T extends ToWorker['type']> = Omit<Extract<ToWorker, { type: T }>, 'rid' | 'type'>;

interface Worker {
  child: ChildProcess;
  pending: Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>;
  counters: Counters;
  exited: Promise<number | null>;
}

/** The counters and one histogram per latency: since the last `interval()`, or in all (`snapshot()`). */
export type FleetView = { counters: Counters } & Record<Latency, Histogram>;

/**
 * The parent side of the workers: forks one process per config, sends phases to all of them at
 * once and sums what they report. `interval()` returns the counters now and the latency
 * histograms received since the previous call (for the live progress line).
 */
export class Fleet {
  private readonly workers: Worker[] = [];
  private rid = 0;
  private since = latencyHistograms();

  private constructor() {}

  /** Each worker's memory before `init` (an empty worker), with `measured`; [] otherwise. */
  empty: WorkerMemory[] = [];

  /**
   * Forks one worker per config. `measured`: the workers run with --expose-gc, and their memory is
   * read once before `init`, so a benchmark can count everything the hubs add (`empty`).
   */
  static async start(configs: WorkerConfig[], opts: { measured?: boolean } = {}): Promise<Fleet> {
    const fleet = new Fleet();
    for (let i = 0; i < configs.length; i++) fleet.spawn(opts.measured === true);
    if (opts.measured) fleet.empty = await fleet.memory();
    await Promise.all(fleet.workers.map((w, i) => fleet.ask(w, 'init', { config: configs[i]! })));
    return fleet;
  }

  /** Every worker's memory now (after a full collection when `measured`), in worker order. */
  memory(): Promise<WorkerMemory[]> {
    return this.all<WorkerMemory, 'memory'>('memory');
  }

  get size(): number {
    return this.workers.length;
  }

  pids(): number[] {
    return this.workers.map((w) => w.child.pid ?? 0);
  }

  /**
   * Sends one phase to every worker; resolves with their answers in worker order. The payload may
   * be left out only where every field of it is optional.
   */
  all<T, K extends ToWorker['type']>(type: K, ...payload: {} extends Payload<K> ? [Payload<K>?] : [Payload<K>]): Promise<T[]> {
    return Promise.all(this.workers.map((w) => this.ask(w, type, payload[0] ?? {}) as Promise<T>));
  }

  /** Sums the counters and totals of every worker. */
  async snapshot(): Promise<FleetView> {
    const snaps = await this.all<Snapshot, 'snapshot'>('snapshot');
    const out: FleetView = { counters: emptyCounters(), ...latencyHistograms() };
    for (const s of snaps) {
      addCounters(out.counters, s.counters);
      for (const k of LATENCIES) addEncoded(out[k], s.total[k]);
    }
    return out;
  }

  interval(): FleetView {
    const counters = emptyCounters();
    for (const w of this.workers) addCounters(counters, w.counters);
    const view: FleetView = { counters, ...this.since };
    this.since = latencyHistograms();
    return view;
  }

  /** Stops every worker (bye from every hub); kills those that do not exit within 5 s. */
  async stop(): Promise<void> {
    await Promise.all(
      this.workers.map(async (w) => {
        if (w.child.exitCode !== null) return;
        const timer = setTimeout(() => w.child.kill('SIGKILL'), 5_000);
        try {
          await Promise.race([this.ask(w, 'stop', {}), w.exited]);
          await w.exited;
        } catch {
          w.child.kill('SIGKILL');
        } finally {
          clearTimeout(timer);
        }
      }),
    );
  }

  /** Kills every worker at once (on a fatal error or a second Ctrl-C). */
  kill(): void {
    for (const w of this.workers) if (w.child.exitCode === null) w.child.kill('SIGKILL');
  }

  private spawn(measured: boolean): void {
    const child = fork(WORKER, [], { execArgv: [...(measured ? ['--expose-gc'] : []), '--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
    const worker: Worker = {
      child,
      pending: new Map(),
      counters: emptyCounters(),
      exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))),
    };
    child.on('message', (msg: FromWorker) => {
      if (msg.type === 'tick') {
        worker.counters = msg.counters;
        for (const k of LATENCIES) addEncoded(this.since[k], msg.interval[k]);
        return;
      }
      const p = worker.pending.get(msg.rid);
      if (!p) return;
      worker.pending.delete(msg.rid);
      if (msg.ok) p.resolve(msg.data);
      else p.reject(new Error(`worker ${child.pid}: ${msg.error}`));
    });
    void worker.exited.then((code) => {
      for (const p of worker.pending.values()) p.reject(new Error(`worker ${child.pid} exited with ${code}`));
      worker.pending.clear();
    });
    this.workers.push(worker);
  }

  private ask(w: Worker, type: ToWorker['type'], payload: object): Promise<unknown> {
    const rid = ++this.rid;
    return new Promise((resolve, reject) => {
      if (w.child.exitCode !== null || !w.child.connected) {
        reject(new Error(`worker ${w.child.pid} is gone`));
        return;
      }
      w.pending.set(rid, { resolve, reject });
      w.child.send({ rid, type, ...payload } as ToWorker);
    });
  }
}

/**
 * Splits hubs and app subscribers over workers: whole homes per worker (a home's subscribers
 * measure its hubs' report latency in the same process), at most `perWorker` sockets each.
 */
export function partition(hubs: HubSpec[], apps: AppSpec[], workers: number): Array<{ hubs: HubSpec[]; apps: AppSpec[] }> {
  const out = Array.from({ length: workers }, () => ({ hubs: [] as HubSpec[], apps: [] as AppSpec[] }));
  const homeWorker = new Map<string, number>();
  const perWorker = Math.ceil(hubs.length / workers);
  let w = 0;
  for (const hub of hubs) {
    let k = homeWorker.get(hub.home);
    if (k === undefined) {
      if (out[w]!.hubs.length >= perWorker && w < workers - 1) w++;
      k = w;
      homeWorker.set(hub.home, k);
    }
    out[k]!.hubs.push(hub);
  }
  let spill = 0;
  for (const app of apps) {
    const k = homeWorker.get(app.homes[0] ?? '') ?? spill++ % workers;
    out[k]!.apps.push(app);
  }
  return out;
}
