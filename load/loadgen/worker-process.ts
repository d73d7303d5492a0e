import { sleep } from '../lib/async.js';
import { AdminClient } from '../wire/admin.js';
import { AppPool } from './apps.js';
import { HubPool } from './hub-pool.js';
import type { FromWorker, Snapshot, ToWorker, WorkerConfig, WorkerMemory } from './ipc.js';
import { WorkerMetrics } from './metrics.js';
import { SourcePorts } from './sources.js';
import { COMMAND_TIMEOUT_MS, Traffic } from './traffic.js';

/**
 * One load worker process (forked by fleet.ts): holds a share of the hubs (lean hubs) and app
 * subscribers, and on the parent's word provisions, connects, reports, sends HTTP commands or
 * storms. Every second it sends its counters and the interval's latency histograms; nothing here
 * runs unbounded: the parent decides how long each phase lasts and stops the worker (it also
 * exits when the parent goes away).
 */

/** Everything one worker holds, built by the parent's `init`. */
class LoadWorker {
  readonly metrics = new WorkerMetrics();
  private readonly hubs: HubPool;
  private readonly apps: AppPool;
  private readonly traffic: Traffic;
  private readonly admins: AdminClient[];
  private readonly ticker: NodeJS.Timeout;

  constructor(config: WorkerConfig) {
    const sources = new SourcePorts(config.sourceAddresses, config.portSlice);
    // one admin client per node, pooled: hundreds of commands a second reuse their connections
    this.admins = config.targets.map((url) => new AdminClient(url, config.adminToken ?? '', { pooled: true, timeoutMs: COMMAND_TIMEOUT_MS }));
    this.hubs = new HubPool(config, this.metrics, sources);
    this.apps = new AppPool(config.apps, config, this.metrics, sources);
    this.traffic = new Traffic(this.hubs, config.devices, this.metrics, this.adminFor, this.apps.deliveries);
    this.ticker = setInterval(() => send({ type: 'tick', ...this.metrics.tick() }), 1_000);
  }

  private readonly adminFor = (target: number): AdminClient => this.admins[target]!;

  async handle(msg: Exclude<ToWorker, { type: 'init' | 'memory' }>): Promise<unknown> {
    switch (msg.type) {
      case 'provision':
        return this.hubs.provision(this.adminFor);
      case 'connect':
        return this.hubs.connectAll(msg.perSec ?? 0);
      case 'apps':
        return this.apps.connectAll(this.adminFor);
      case 'reports':
        return this.traffic.reports(msg.everyMs);
      case 'commands':
        return this.traffic.commands(msg.perSec);
      case 'drain':
        return this.traffic.drain(msg.waitMs);
      case 'storm':
        return this.hubs.storm(msg.deadlineMs);
      case 'reset':
        return this.metrics.reset(msg.latencies);
      case 'snapshot':
        return this.metrics.snapshot() satisfies Snapshot;
      case 'stop':
        return this.stop();
    }
  }

  private async stop(): Promise<void> {
    this.traffic.stop();
    clearInterval(this.ticker);
    this.metrics.stop();
    this.apps.stop();
    await this.hubs.stop(300);
  }
}

function send(msg: FromWorker): void {
  if (process.connected) process.send!(msg);
}

let worker: LoadWorker | null = null;

/** Memory after two full collections when the worker runs with --expose-gc (Fleet.start `exposeGc`). */
function memory(): WorkerMemory {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  gc?.();
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers, collected: gc !== undefined };
}

async function handle(msg: ToWorker): Promise<unknown> {
  if (msg.type === 'memory') return memory();
  if (msg.type === 'init') {
    worker = new LoadWorker(msg.config);
    return undefined;
  }
  if (!worker) throw new Error('worker not initialised');
  return worker.handle(msg);
}

process.on('message', (msg: ToWorker) => {
  handle(msg).then(
    (data) => {
      send({ type: 'reply', rid: msg.rid, ok: true, data });
      if (msg.type === 'stop') void sleep(50).then(() => process.exit(0));
    },
    (err: unknown) => send({ type: 'reply', rid: msg.rid, ok: false, error: (err as Error).stack ?? String(err) }),
  );
});
process.on('disconnect', () => process.exit(0));
