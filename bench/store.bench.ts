/**
 * Shadow store benchmark for the embedded default: the memory store (the floor, measured in the
 * same run) against the LMDB store with DATA_SYNC=commit and DATA_SYNC=os (and, given `--sqlite`,
 * the same writes in SQLite: synchronous FULL and NORMAL, see bench/lib/sqlite-shadows.ts). Each variant runs in
 * its own process (so RSS is its own): `--hubs` hubs of `--devices` devices are written once,
 * then `--writes` reports are written as hub sessions make them (each turn `--per-turn` hubs
 * report one device and write their cursor; at most 4 turns unacknowledged), then `--loads`
 * random hubs are loaded one at a time.
 *
 * Reported: reports/s to the last acknowledgement, CPU per report while writing (all threads, and
 * the main thread's share: event-loop utilization × wall time; the memory store's is the harness's
 * own, so a store's cost is its figure less the floor's), ack latency (writeCursor → cursorStored)
 * p50/p99, load() p50/p99, event-loop delay while writing (SQLite commits on the main thread,
 * LMDB on its own), RSS and heap after a GC. RSS includes the pages of the LMDB file the
 * process touched (file-backed: the kernel may drop them), the heap does not.
 *
 *   node --import tsx bench/store.bench.ts [--hubs 10000] [--devices 8] [--writes 200000]
 *                                          [--per-turn 500] [--loads 5000] [--json]
 *                                          [--sqlite /tmp/x/node_modules]   (better-sqlite3 12.11.1)
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createLogger, emptyDevice, LmdbShadowStore, MemoryShadowStore, openDataStore } from '../src/internal.js';
import { sqliteShadows, type BenchStore } from './lib/sqlite-shadows.js';
import { cpuMeter } from './lib/cpu-meter.js';

const { values: args } = parseArgs({
  options: {
    hubs: { type: 'string', default: '10000' },
    devices: { type: 'string', default: '8' },
    writes: { type: 'string', default: '200000' },
    'per-turn': { type: 'string', default: '500' },
    loads: { type: 'string', default: '5000' },
    /** a node_modules folder holding better-sqlite3 (outside the project): adds the SQLite variants */
    sqlite: { type: 'string' },
    variant: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});
const HUBS = Number(args.hubs);
const DEVICES = Number(args.devices);
const WRITES = Number(args.writes);
const PER_TURN = Number(args['per-turn']);
const LOADS = Number(args.loads);
const ALL = ['memory', 'lmdb-commit', 'lmdb-os', 'sqlite-full', 'sqlite-normal'] as const;
type Variant = (typeof ALL)[number];
const VARIANTS = ALL.filter((v) => args.sqlite !== undefined || !v.startsWith('sqlite'));

interface Result {
  variant: Variant;
  reportsPerSec: number;
  /** CPU µs per report while writing: all threads, and the main thread's share */
  cpuUs: number;
  mainUs: number;
  ackP50: number;
  ackP99: number;
  loadP50: number;
  loadP99: number;
  /** event-loop delay during the writes, ms: what every socket of the node waits */
  loopP99: number;
  loopMax: number;
  rssMiB: number;
  heapMiB: number;
}

const pct = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;
const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

async function measure(variant: Variant): Promise<Result> {
  const dir = mkdtempSync(join(tmpdir(), 'hubtier-bench-'));
  const log = createLogger('silent');
  const data = variant.startsWith('lmdb') ? openDataStore(dir, { sync: variant === 'lmdb-commit' ? 'commit' : 'os' }) : null;
  const store: BenchStore = data
    ? new LmdbShadowStore(data, { log })
    : variant.startsWith('sqlite')
      ? sqliteShadows(args.sqlite!, join(dir, 'shadows.db'), variant === 'sqlite-full' ? 'FULL' : 'NORMAL')
      : new MemoryShadowStore();
  const hub = (i: number): string => `hub-${i}`;
  const device = (seq: number) => ({ ...emptyDevice(), kind: 'switch', reported: { on: seq % 2 === 0, level: seq % 100, power: seq * 0.5 }, reportedVersion: seq, reportedAt: Date.now() });
  for (let h = 0; h < HUBS; h++) {
    for (let d = 0; d < DEVICES; d++) store.writeReported(hub(h), `d${d}`, device(1));
    if (h % PER_TURN === 0) await turn();
  }
  await store.flush();

  /** per hub, the cursors not yet acknowledged: [seq, when written] */
  const sent = new Map<string, Array<[number, number]>>();
  const acks: number[] = [];
  let outstanding = 0;
  let wake: (() => void) | null = null;
  const listener = {
    cursorStored(hubId: string, seq: number): void {
      // cursors of one batch coalesce: an ack covers every earlier cursor of the hub
      const queue = sent.get(hubId)!;
      const now = performance.now();
      while (queue.length > 0 && queue[0]![0] <= seq) {
        acks.push(now - queue.shift()![1]);
        outstanding--;
      }
      wake?.();
    },
  };
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  const stop = cpuMeter();
  for (let seq = 0, n = 0; n < WRITES; seq++) {
    while (outstanding > PER_TURN * 4) await new Promise<void>((r) => (wake = r));
    for (let i = 0; i < PER_TURN && n < WRITES; i++, n++) {
      const h = hub((seq * PER_TURN + i) % HUBS);
      // as hub sessions write: the reported side only, no kind
      store.writeReported(h, `d${n % DEVICES}`, { ...device(n + 2), kind: undefined }, 1);
      let queue = sent.get(h);
      if (!queue) sent.set(h, (queue = []));
      queue.push([n, performance.now()]);
      outstanding++;
      store.writeCursor(h, { boot: 'b', seq: n }, 1, listener);
    }
    await turn();
  }
  await store.flush();
  while (outstanding > 0) await new Promise<void>((r) => (wake = r));
  const { cpuUs, mainUs, wallMs } = stop(WRITES);
  loop.disable();

  const loads: number[] = [];
  for (let i = 0; i < LOADS; i++) {
    const t = performance.now();
    const shadow = await store.load(hub(Math.floor(Math.random() * HUBS)));
    loads.push(performance.now() - t);
    if (Object.keys(shadow).length !== DEVICES) throw new Error('a hub lost devices');
  }
  (globalThis as { gc?: () => void }).gc?.();
  const mem = process.memoryUsage();
  await store.close();
  await data?.close();
  rmSync(dir, { recursive: true, force: true });
  acks.sort((a, b) => a - b);
  loads.sort((a, b) => a - b);
  return {
    variant,
    reportsPerSec: Math.round((WRITES * 1000) / wallMs),
    cpuUs,
    mainUs,
    ackP50: pct(acks, 0.5),
    ackP99: pct(acks, 0.99),
    loadP50: pct(loads, 0.5),
    loadP99: pct(loads, 0.99),
    loopP99: loop.percentile(99) / 1e6,
    loopMax: loop.max / 1e6,
    rssMiB: mem.rss / 2 ** 20,
    heapMiB: mem.heapUsed / 2 ** 20,
  };
}

function runChild(variant: Variant): Promise<Result> {
  const forwarded = ['hubs', 'devices', 'writes', 'per-turn', 'loads', 'sqlite'].flatMap((k) => (args[k as keyof typeof args] === undefined ? [] : [`--${k}`, String(args[k as keyof typeof args])]));
  const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', fileURLToPath(import.meta.url), '--variant', variant, ...forwarded], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as Result) : reject(new Error(`${variant} exited with ${code}`))));
  });
}

if (args.variant) {
  process.stdout.write(JSON.stringify(await measure(args.variant as Variant)));
} else {
  const results: Result[] = [];
  for (const v of VARIANTS) results.push(await runChild(v));
  if (args.json) console.log(JSON.stringify(results));
  else {
    const floor = results[0]!;
    console.log(`${HUBS} hubs × ${DEVICES} devices, ${WRITES} reports, ${PER_TURN} per turn, ${LOADS} loads`);
    console.log('variant       reports/s  ×floor  CPU µs/report (main)  over the floor (main)  ack p50/p99 ms   load p50/p99 ms   loop p99/max ms   RSS MiB  heap MiB');
    for (const r of results) {
      const cpu = `${r.cpuUs.toFixed(2)} (${r.mainUs.toFixed(2)})`;
      const over = `${(r.cpuUs - floor.cpuUs).toFixed(2)} (${(r.mainUs - floor.mainUs).toFixed(2)})`;
      console.log(
        `${r.variant.padEnd(12)} ${String(r.reportsPerSec).padStart(10)}  ${(r.reportsPerSec / floor.reportsPerSec).toFixed(2).padStart(6)}  ${cpu.padStart(20)}  ${over.padStart(21)}  ${r.ackP50.toFixed(2).padStart(6)}/${r.ackP99.toFixed(2).padEnd(7)}  ${r.loadP50.toFixed(3).padStart(7)}/${r.loadP99.toFixed(3).padEnd(8)}  ${r.loopP99.toFixed(1).padStart(7)}/${r.loopMax.toFixed(1).padEnd(8)}  ${r.rssMiB.toFixed(0).padStart(7)}  ${r.heapMiB.toFixed(0).padStart(8)}`,
      );
    }
  }
}
