import { randomBytes } from 'node:crypto';
import { cpus } from 'node:os';
import { Fleet, MAX_SOCKETS_PER_WORKER, partition } from '../load/loadgen/fleet.js';
import type { ConnectResult, HubSpec, Snapshot, WorkerConfig, WorkerMemory } from '../load/loadgen/ipc.js';
import { sources } from '../load/loadgen/options.js';
import { errorsSplit } from '../load/loadgen/report.js';
import { table } from '../load/lib/histogram.js';
import { mapLimit, sleep } from '../load/lib/async.js';
import { commandLine, usageError } from '../load/lib/cli.js';
import { AdminClient } from '../load/wire/admin.js';
import { startNode } from '../load/harness/index.js';
import { startRelayFloor } from './lib/floor.js';
import { printResult, runMain } from './lib/output.js';

const USAGE = `Memory per simulated hub in the load workers, against bare sockets of the same workers, in one run.

usage: npm run bench:load-memory -- [options]

  --hubs N          simulated hubs (default 10000); one node per 19,000 (the per-process file limit)
  --workers W       load worker processes (default: one per 19,000 hubs)
  --devices M       sub-devices per hub (default 8)
  --report-every S  seconds between two reports of a hub while held (default 10)
  --hold S          seconds the hubs stay online and reporting before the reading (default 15)
  --ramp R          new connections per second over all workers, floor and hubs alike (default 2000; 0: no limit)
  --json            print one JSON object on stdout (progress goes to stderr)
  -h, --help        this text

The floor: fresh workers holding the same number of bare sockets (the lean hub's own socket,
upgraded on a bare uWS server's /idle path, nothing sent after). Then fresh workers whose hubs
connect to real nodes (provisioned by this process), send their device lists and report. Each worker's resident memory is read
after a full collection (--expose-gc) before it is given its hubs (an empty worker) and at the end:
bytes per hub = (RSS at the end - RSS of the empty worker) / its hubs.
`;

const say = (line: string) => process.stderr.write(`${line}\n`);

function parse() {
  const values = commandLine('bench:load-memory', USAGE, {
    hubs: { type: 'string', default: '10000' },
    workers: { type: 'string' },
    devices: { type: 'string', default: '8' },
    'report-every': { type: 'string', default: '10' },
    hold: { type: 'string', default: '15' },
    ramp: { type: 'string', default: '2000' },
    json: { type: 'boolean', default: false },
  });
  const hubs = Number(values.hubs);
  const devices = Number(values.devices);
  const reportEveryS = Number(values['report-every']);
  const holdS = Number(values.hold);
  const ramp = Number(values.ramp);
  const workers = values.workers === undefined ? Math.ceil(hubs / MAX_SOCKETS_PER_WORKER) : Number(values.workers);
  const bad = (what: string) => usageError('bench:load-memory', USAGE, what);
  if (!Number.isInteger(hubs) || hubs < 100 || hubs > 200_000) bad('--hubs must be an integer in 100..200000');
  if (!Number.isInteger(workers) || workers < 1 || hubs / workers > MAX_SOCKETS_PER_WORKER) bad(`--workers must leave at most ${MAX_SOCKETS_PER_WORKER} hubs per worker`);
  if (!Number.isInteger(devices) || devices < 0 || devices > 64) bad('--devices must be an integer in 0..64');
  if (!(reportEveryS > 0) || !(holdS >= 0) || !(ramp >= 0)) bad('--report-every must be > 0, --hold and --ramp >= 0');
  return { hubs, workers, devices, reportEveryS, holdS, ramp, json: values.json };
}

/** Worker configs: `hubs` split over `workers`, each worker on its own source addresses (`firstAddress` + w). */
function configs(targets: string[], hubs: HubSpec[], workers: number, firstAddress: number, base: Omit<WorkerConfig, 'targets' | 'hubs' | 'apps' | 'sourceAddresses'>): WorkerConfig[] {
  const addresses = Array.from({ length: workers }, (_, w) => `127.0.0.${firstAddress + w}`);
  return partition(hubs, [], workers).map((p, w) => ({ ...base, ...sources(addresses, w, workers), targets, hubs: p.hubs, apps: [] }));
}

interface Reading {
  hubs: number;
  empty: WorkerMemory;
  /** after `init`, before connecting */
  ready: WorkerMemory;
  end: WorkerMemory;
}

const perHub = (r: Reading, from: 'empty' | 'ready' = 'empty') => Math.round((r.end.rss - r[from].rss) / r.hubs);

async function connectAll(fleet: Fleet, n: number, ramp: number): Promise<void> {
  const results = await fleet.all<ConnectResult, 'connect'>('connect', { perSec: ramp / fleet.size });
  const ok = results.reduce((s, r) => s + r.ok, 0);
  if (ok < n) throw new Error(`only ${ok} of ${n} connected: ${JSON.stringify((await fleet.snapshot()).counters.errors)}`);
}

async function readings(fleet: Fleet, configsUsed: WorkerConfig[], ready: WorkerMemory[]): Promise<Reading[]> {
  const end = await fleet.memory();
  return end.map((m, w) => ({ hubs: configsUsed[w]!.hubs.length, empty: fleet.empty[w]!, ready: ready[w]!, end: m }));
}

async function main(): Promise<void> {
  const args = parse();
  const nodes = Math.ceil(args.hubs / MAX_SOCKETS_PER_WORKER);
  const stops: Array<() => Promise<void>> = [];
  const base = { devices: args.devices, connectConcurrency: 256, connectTimeoutMs: 30_000, reconnect: false };
  let floor: Reading[];
  let hubs: Reading[];
  let snap: Snapshot['counters'];
  let reportToAck = '';
  try {
    say(`floor: ${args.hubs} bare sockets in ${args.workers} worker(s) on ${nodes} bare uWS server(s)`);
    const relays = await Promise.all(Array.from({ length: nodes }, () => startRelayFloor()));
    for (const r of relays) stops.push(() => r.stop());
    const idle = Array.from({ length: args.hubs }, (_, i) => ({ id: `idle-${i}`, home: `h-${Math.floor(i / 10)}`, target: Math.floor(i / 10) % nodes }));
    const floorConfigs = configs(relays.map((r) => r.wsUrl), idle, args.workers, 2, { ...base, adminToken: null, signed: false, fill: false, path: '/idle', hello: false });
    const floorFleet = await Fleet.start(floorConfigs, { measured: true });
    stops.push(() => floorFleet.stop());
    const floorReady = await floorFleet.memory();
    await connectAll(floorFleet, args.hubs, args.ramp);
    await sleep(1_000);
    floor = await readings(floorFleet, floorConfigs, floorReady);
    await floorFleet.stop();
    await Promise.all(relays.map((r) => r.stop()));

    say(`hubs: ${args.hubs} lean hubs x ${args.devices} devices in ${args.workers} worker(s) on ${nodes} node(s), reporting every ${args.reportEveryS} s for ${args.holdS} s`);
    // one admin token for every node: a worker provisions each hub on the node it connects to
    const adminToken = `admin-${randomBytes(12).toString('hex')}`;
    const started = await Promise.all(Array.from({ length: nodes }, () => startNode({ measured: false, adminToken, env: { DATA_DIR: ':memory:' } })));
    for (const n of started) stops.push(() => n.stop());
    const specs: HubSpec[] = Array.from({ length: args.hubs }, (_, i) => ({ id: `lm-${i}`, home: `lm-home-${Math.floor(i / 10)}`, target: Math.floor(i / 10) % nodes }));
    // provisioned from here, not by the workers: the workers then do exactly what the floor's do
    // before connecting (HTTP calls would leave memory behind that the sockets then reuse)
    const admins = started.map((n) => new AdminClient(n.wsUrl, adminToken, { pooled: true, timeoutMs: 60_000 }));
    await mapLimit(specs, 32, async (spec) => {
      const done = await admins[spec.target]!.provisionHub(spec.id, spec.home, 'load-hub');
      if (!('secret' in done)) throw new Error(`${spec.id} exists already`);
      spec.secret = done.secret;
    });
    const hubConfigs = configs(started.map((n) => n.wsUrl), specs, args.workers, 2 + args.workers, { ...base, adminToken, signed: true, fill: true });
    const fleet = await Fleet.start(hubConfigs, { measured: true });
    stops.push(() => fleet.stop());
    const ready = await fleet.memory();
    await connectAll(fleet, args.hubs, args.ramp);
    await fleet.all('reset');
    await fleet.all('reports', { everyMs: args.reportEveryS * 1000 });
    await sleep(args.holdS * 1000);
    hubs = await readings(fleet, hubConfigs, ready);
    const s = await fleet.snapshot();
    snap = s.counters;
    if (s.reportToAck.totalCount > 0) reportToAck = `report -> ack p50 ${(s.reportToAck.getValueAtPercentile(50) / 1000).toFixed(2)} ms, p99 ${(s.reportToAck.getValueAtPercentile(99) / 1000).toFixed(2)} ms`;
    if (snap.connected < args.hubs || errorsSplit(snap.errors).other > 0) throw new Error(`hubs not all online and clean: ${snap.connected} connected, errors ${JSON.stringify(snap.errors)}`);
  } finally {
    for (const s of stops.reverse()) await s().catch(() => {});
  }

  const total = (rs: Reading[], from: 'empty' | 'ready' = 'empty') => Math.round(rs.reduce((s, r) => s + (r.end.rss - r[from].rss), 0) / args.hubs);
  const floorPer = total(floor);
  const hubPer = total(hubs);
  const kib = (b: number) => (b / 1024).toFixed(2);
  const mb = (b: number) => (b / 2 ** 20).toFixed(1);
  const rows: Array<Array<string | number>> = [['worker', 'sockets', 'RSS empty MB', 'RSS ready MB', 'RSS end MB', 'KiB per socket', 'of it after ready', 'JS heap used KiB per socket', 'JS heap committed', 'external']];
  const row = (name: string, r: Reading) => rows.push([name, r.hubs, mb(r.empty.rss), mb(r.ready.rss), mb(r.end.rss), kib(perHub(r)), kib(perHub(r, 'ready')), kib((r.end.heapUsed - r.empty.heapUsed) / r.hubs), kib((r.end.heapTotal - r.empty.heapTotal) / r.hubs), kib((r.end.external - r.empty.external) / r.hubs)]);
  floor.forEach((r, w) => row(`floor ${w + 1} (bare sockets)`, r));
  hubs.forEach((r, w) => row(`hubs ${w + 1} (lean hubs online, reporting)`, r));
  const out = {
    machine: { cores: cpus().length, node: process.version },
    hubs: args.hubs,
    workers: args.workers,
    devicesPerHub: args.devices,
    reportEveryS: args.reportEveryS,
    holdS: args.holdS,
    ramp: args.ramp,
    bytesPerHub: hubPer,
    floorBytesPerSocket: floorPer,
    addedOverFloor: hubPer - floorPer,
    reportsSent: snap.reportsSent,
    acks: snap.acks,
    floor: floor.map((r) => ({ hubs: r.hubs, rssEmpty: r.empty.rss, rssReady: r.ready.rss, rssEnd: r.end.rss, heapEmpty: r.empty.heapTotal, heapEnd: r.end.heapTotal, collected: r.end.collected })),
    workersWithHubs: hubs.map((r) => ({ hubs: r.hubs, rssEmpty: r.empty.rss, rssReady: r.ready.rss, rssEnd: r.end.rss, heapEmpty: r.empty.heapTotal, heapEnd: r.end.heapTotal, collected: r.end.collected })),
  };
  const text = [
    `machine: ${cpus().length} cores, Node ${process.version}; ${args.hubs} hubs in ${args.workers} worker(s), RSS after a full GC`,
    '',
    table(rows),
    '',
    `reports sent ${snap.reportsSent}, acks ${snap.acks}; ${reportToAck}`,
    `load worker memory per simulated hub: ${kib(hubPer)} KiB (bare socket floor of the same run: ${kib(floorPer)} KiB; the hub adds ${kib(hubPer - floorPer)} KiB)`,
    '',
  ].join('\n');
  printResult(args.json, text, out);
}

runMain('bench:load-memory', main);
