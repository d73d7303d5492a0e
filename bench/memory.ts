/**
 * `npm run bench:memory`: memory per hub session against the bare uWS floor per idle socket, in one
 * run (usage and options in bench/lib/memory-args.ts; the fleets, the floor, heap census, store
 * pages, the memory cgroup and the probe in load/ and bench/lib).
 */
import { Fleet, partition } from '../load/loadgen/fleet.js';
import { parseMemoryArgs, type MemoryArgs } from './lib/memory-args.js';
import type { ConnectResult, HubSpec, WorkerConfig } from '../load/loadgen/ipc.js';
import { table } from '../load/lib/histogram.js';
import { metricSum } from '../load/lib/prom-text.js';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { cpus, tmpdir } from 'node:os';
import { censusDiff, census } from './lib/heap-summary.js';
import { collect, startNats, startNode, startRedis, type GcReading, type NodeProc, type Proc } from '../load/harness/index.js';
import { compiledNode } from './lib/compiled-node.js';
import { fitLine } from '../load/lib/fit-line.js';
import { startRelayFloor } from './lib/floor.js';
import { printResult, runMain } from './lib/output.js';
import { storePages, type StorePages } from './lib/store-pages.js';
import { chargePer, limitText, MemoryCgroup, type Charge, type LimitRun } from './lib/memory-cgroup.js';
import { probeSessions, probeText, type ProbeResult } from './lib/session-probe.js';

const say = (line: string) => process.stderr.write(`${line}\n`);

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function configs(url: string, hubs: HubSpec[], workers: number, base: Omit<WorkerConfig, 'targets' | 'hubs' | 'apps'>): WorkerConfig[] {
  return partition(hubs, [], workers).map((p) => ({ ...base, targets: [url], hubs: p.hubs, apps: [] }));
}

/**
 * Waits until `filled` hubs have had their fill's report acknowledged (the ack that covers it also
 * covers the device list sent before it: one ack may answer both) or `maxMs` passes.
 */
async function settle(fleet: Fleet, filled: number, maxMs: number): Promise<void> {
  const until = Date.now() + maxMs;
  let acked = 0;
  while (Date.now() < until) {
    acked = (await fleet.snapshot()).counters.reportAcks;
    if (acked >= filled) return;
    await sleep(250);
  }
  say(`only ${acked} of ${filled} hubs' fills acknowledged after ${maxMs} ms: read anyway`);
}

interface Measured {
  sockets: number;
  /** ms until every socket was connected, and the connects refused on the way (`busy`: tried again after 1 s, as a hub backs off) */
  connectMs: number;
  refused: number;
  /** the node's unpacked device caches at the `after` reading (null: not a server) */
  unpacked: number | null;
  before: GcReading;
  after: GcReading;
  rssPer: number;
  /** anonymous resident memory per socket (RssAnon): RSS without the pages of memory-mapped files; null where unknown */
  anonPer: number | null;
  /**
   * RSS per socket without V8's young generation in either reading: its size follows the allocation
   * rate, once per process (up to 32 MB here), so it moves a two-reading difference by more than
   * 10,000 sessions hold; null where the node did not report it
   */
  beyondYoungPer: number | null;
  heapPer: number;
  heapTotalPer: number;
  externalPer: number;
}

async function measure(proc: Proc, fleet: Fleet, sockets: number, filled: number, idleMs = 0, unpacked: () => Promise<number | null> = async () => null, connectRate = 0): Promise<Measured> {
  await sleep(500);
  const before = await collect(proc);
  const { connectMs, refused } = await connectAll(fleet, sockets, connectRate, () => proc.child.exitCode === null && proc.child.signalCode === null);
  await settle(fleet, filled, 30_000);
  await sleep(1_000);
  // with --idle-ms, the sessions' device caches packed (TIER_SHADOW_PACK_MS) before the reading
  await sleep(idleMs);
  return { ...between(await collect(proc), before, sockets), unpacked: await unpacked(), connectMs, refused };
}

/** How long refused hubs keep coming back: a node shedding for memory waits for V8 to return a burst's pages (25–30 s). */
const CONNECT_WITHIN_MS = 300_000;

/**
 * Connects the fleet's hubs (at `connectRate` a second, 0: at once), and those refused or failed
 * again every second (the node's Retry-After), as hubs would, until all are in, CONNECT_WITHIN_MS
 * passed, or the process has gone (killed for its memory limit).
 */
async function connectAll(fleet: Fleet, sockets: number, connectRate: number, alive: () => boolean): Promise<{ connectMs: number; refused: number }> {
  const started = performance.now();
  let ok = 0;
  let refused = 0;
  for (;;) {
    const results = await fleet.all<ConnectResult, 'connect'>('connect', connectRate > 0 ? { perSec: connectRate / fleet.size } : {});
    ok += results.reduce((n, r) => n + r.ok, 0);
    if (ok >= sockets) return { connectMs: Math.round(performance.now() - started), refused };
    refused += results.reduce((n, r) => n + r.failed, 0);
    if (performance.now() - started > CONNECT_WITHIN_MS || !alive()) throw new Error(`only ${ok} of ${sockets} sockets connected in ${Math.round((performance.now() - started) / 1000)} s: ${JSON.stringify((await fleet.snapshot()).counters.errors)}`);
    await sleep(1_000);
  }
}

/** Memory per socket between two readings. */
function between(after: GcReading, before: GcReading, sockets: number): Omit<Measured, 'connectMs' | 'refused'> {
  return {
    unpacked: null,
    sockets,
    before,
    after,
    rssPer: Math.round((after.rss - before.rss) / sockets),
    anonPer: after.rssAnon !== undefined && before.rssAnon !== undefined ? Math.round((after.rssAnon - before.rssAnon) / sockets) : null,
    beyondYoungPer: after.youngPhysical !== undefined && before.youngPhysical !== undefined ? Math.round((after.rss - after.youngPhysical - (before.rss - before.youngPhysical)) / sockets) : null,
    heapPer: Math.round((after.heapUsed - before.heapUsed) / sockets),
    heapTotalPer: Math.round((after.heapTotal - before.heapTotal) / sockets),
    externalPer: Math.round((after.external - before.external) / sockets),
  };
}

/**
 * Lines through the node's readings (the first step's baseline, then after each step) against the
 * sessions held, from reading `from` on (1: without the baseline).
 */
function lineOf(steps: Measured[], from = 0) {
  const held = [0];
  for (const m of steps) held.push(held.at(-1)! + m.sockets);
  held.splice(0, from);
  const readings = [steps[0]!.before, ...steps.map((m) => m.after)].slice(from);
  const line = (value: (r: GcReading) => number) => fitLine(readings.map((r, i) => [held[i]!, value(r)] as const));
  const rss = line((r) => r.rss);
  const heap = line((r) => r.heapUsed);
  const anon = readings.every((r) => r.rssAnon !== undefined) ? line((r) => r.rssAnon!) : null;
  const native = readings.every((r) => r.rssAnon !== undefined && r.heapPhysical !== undefined) ? line((r) => r.rssAnon! - r.heapPhysical!) : null;
  // V8 sizes its young generation (up to 32 MB here) by the allocation rate, once per process:
  // between two readings it can move RSS by more than 10,000 sessions' worth
  const beyondYoung = readings.every((r) => r.youngPhysical !== undefined) ? line((r) => r.rss - r.youngPhysical!) : null;
  return {
    points: readings.map((r, i) => ({ sessions: held[i]!, at: r.at ?? null, rss: r.rss, rssAnon: r.rssAnon ?? null, heapPhysical: r.heapPhysical ?? null, newSpace: r.spaces?.new_space ?? null, youngPhysical: r.youngPhysical ?? null, heapUsed: r.heapUsed })),
    bytesPerSession: rss.slope,
    bytesSe: rss.slopeSe,
    beyondYoungBytesPerSession: beyondYoung ? beyondYoung.slope : null,
    beyondYoungBytesSe: beyondYoung ? beyondYoung.slopeSe : null,
    anonBytesPerSession: anon ? anon.slope : null,
    anonBytesSe: anon ? anon.slopeSe : null,
    nativeBytesPerSession: native ? native.slope : null,
    nativeBytesSe: native ? native.slopeSe : null,
    heapBytesPerSession: heap.slope,
    heapBytesSe: heap.slopeSe,
  };
}

function lineText(fit: ReturnType<typeof lineOf>): string {
  const pm = (slope: number | null, se: number | null) => (slope === null ? 'n/a' : `${Math.round(slope)} ± ${Math.round(se!)} B`);
  return `RSS ${pm(fit.bytesPerSession, fit.bytesSe)} (beyond V8's young generation: ${pm(fit.beyondYoungBytesPerSession, fit.beyondYoungBytesSe)}), anonymous ${pm(fit.anonBytesPerSession, fit.anonBytesSe)} (beyond V8's heap pages, native and pages V8 has not yet returned: ${pm(fit.nativeBytesPerSession, fit.nativeBytesSe)}), JS heap used ${pm(fit.heapBytesPerSession, fit.heapBytesSe)}`;
}

/** Committed bytes each V8 heap space grew by between the two readings (spaces that did not grow left out). */
function spaceGrowth(m: Measured): Record<string, number> {
  const before = m.before.spaces ?? {};
  return Object.fromEntries(Object.entries(m.after.spaces ?? {}).map(([name, size]) => [name, size - (before[name] ?? 0)]).filter(([, grew]) => grew !== 0));
}

/** Hub sessions the node holds now, from its metrics. */
async function sessionsHeld(node: NodeProc): Promise<number> {
  const held = metricSum(await (await fetch(`${node.adminUrl}/metrics`)).text(), 'tier_hub_sessions');
  if (held === null) throw new Error('tier_hub_sessions missing from /metrics');
  return held;
}

type FleetBase = Omit<WorkerConfig, 'targets' | 'hubs' | 'apps' | 'adminToken' | 'signed' | 'fill'>;

/** Signed hubs that fill their shadows, in `workers` processes, provisioned on `node` (not yet connected). */
async function hubFleet(node: NodeProc, hubs: HubSpec[], workers: number, base: FleetBase): Promise<Fleet> {
  const fleet = await Fleet.start(configs(node.wsUrl, hubs, workers, { ...base, adminToken: node.adminToken, signed: true, fill: true }));
  try {
    const prov = await fleet.all<{ ok: number; failed: number }, 'provision'>('provision');
    if (prov.some((p) => p.failed > 0)) throw new Error('provisioning failed');
    return fleet;
  } catch (err) {
    await fleet.stop();
    throw err;
  }
}

/**
 * Hubs that connect, fill their shadows and leave before the baseline: what the node compiles
 * for the session path (about 100 bytes per session when divided among 10,000) is then a cost of
 * the process, not of the sessions measured, as it is in a node that has served for a while.
 */
async function warmUp(node: NodeProc, args: MemoryArgs, base: FleetBase): Promise<void> {
  say(`warm-up: ${args.warmup} hubs connect, fill their shadows and leave`);
  const hubs = Array.from({ length: args.warmup }, (_, i) => ({ id: `warm-${i}`, home: `warm-home-${Math.floor(i / args.hubsPerHome)}`, target: 0 }));
  const fleet = await hubFleet(node, hubs, args.workers, base);
  try {
    await fleet.all<ConnectResult, 'connect'>('connect');
    await settle(fleet, args.devices > 0 ? args.warmup : 0, 30_000);
  } finally {
    await fleet.stop();
  }
  const until = Date.now() + 30_000;
  while ((await sessionsHeld(node)) > 0) {
    if (Date.now() > until) throw new Error('warm-up sessions did not close within 30 s');
    await sleep(250);
  }
}

async function main(): Promise<void> {
  const args = parseMemoryArgs();
  const stops: Array<() => Promise<void>> = [];
  const base = { devices: args.devices, deviceIds: args.deviceIds, sourceAddresses: [], connectConcurrency: 200, connectTimeoutMs: 30_000, reconnect: false };
  let floor: Measured;
  let server: Measured;
  let unpackedSteps: Array<number | null> = [];
  /** the node's malloc_trim calls (TIER_MALLOC_TRIM_MS) by the last reading: count, seconds, bytes returned */
  let trims: { count: number; seconds: number; returnedBytes: number } | null = null;
  let pages: StorePages[] | undefined;
  let second: Measured | undefined;
  let fit: ReturnType<typeof lineOf> | undefined;
  let fitFromSecond: ReturnType<typeof lineOf> | undefined;
  let limited: LimitRun | null = null;
  let floorCharge: Charge | undefined;
  let probe: ProbeResult | undefined;
  try {
    // the floor: a bare uWS server holding idle sockets
    say(`floor: ${args.sessions} idle sockets on a bare uWS server`);
    // with --memory-limit the floor too runs in a cgroup of its own (no limit): what its sockets charge
    const floorCgroup = args.memoryLimit === null ? null : MemoryCgroup.create(`hubtier-bench-floor-${process.pid}`);
    if (floorCgroup) stops.push(async () => floorCgroup.remove());
    const relay = await startRelayFloor(floorCgroup ? { spawnWith: floorCgroup.spawnInside } : {});
    stops.push(() => relay.stop());
    const idle = Array.from({ length: args.sessions }, (_, i) => ({ id: `idle-${i}`, home: `h-${i}`, target: 0 }));
    const floorFleet = await Fleet.start(configs(relay.wsUrl, idle, args.workers, { ...base, adminToken: null, signed: false, fill: false, path: '/idle', hello: false }));
    stops.push(() => floorFleet.stop());
    const floorBase = floorCgroup?.read();
    floor = await measure(relay, floorFleet, args.sessions, 0);
    if (floorCgroup) floorCharge = chargePer(floorBase!, floorCgroup.read(), args.sessions);
    await floorFleet.stop();
    await relay.stop();

    // the server: hub sessions with a filled shadow
    say(`server: ${args.sessions} hub sessions with ${args.devices} devices each, ${args.hubsPerHome} a home`);
    const profDir = join(tmpdir(), 'hubtier-bench');
    if (args.heapSnapshot) mkdirSync(profDir, { recursive: true });
    const env: Record<string, string> = args.heapSnapshot ? { HEAP_SNAPSHOT_DIR: profDir } : {};
    if (args.nodeOptions !== undefined) env.NODE_OPTIONS = args.nodeOptions;
    if (args.cluster) {
      const nats = await startNats();
      stops.push(() => nats.stop());
      const redis = await startRedis();
      stops.push(() => redis.stop());
      Object.assign(env, { NATS_URL: nats.url, REDIS_URL: redis.url });
    }
    const entry = args.tsx ? undefined : await compiledNode();
    // made before the node, so that its removal runs after the node's stop
    const cgroup = args.memoryLimit === null ? null : MemoryCgroup.create(`hubtier-bench-${process.pid}`);
    if (cgroup) stops.push(async () => cgroup.remove());
    // its last lines, said if it dies: a node that exited showed only as sockets refused
    const lastLines: string[] = [];
    const onLine = (line: string) => void (lastLines.push(line) > 20 && lastLines.shift());
    const node = await startNode({ env, onLine, ...(entry !== undefined ? { entry } : {}), ...(cgroup ? { spawnWith: cgroup.spawnInside } : {}) });
    stops.push(() => node.stop());
    if (args.warmup > 0) await warmUp(node, args, base);
    // the baseline after the same idle wait as every reading: V8 shrinks its young generation (up to
    // 32 MB here) only once allocation has been low for a while, and a baseline read within seconds
    // of the warm-up's burst can hold 30 MB that the later readings do not
    await sleep(args.idleMs);
    const hubs = Array.from({ length: args.sessions }, (_, i) => ({ id: `mem-${i}`, home: `home-${Math.floor(i / args.hubsPerHome)}`, target: 0 }));
    // --steps (--marginal: 2): a fleet per step, so that each step's sessions are measured on their own
    const batches = Array.from({ length: args.steps }, (_, k) => hubs.slice(Math.floor((k * hubs.length) / args.steps), Math.floor(((k + 1) * hubs.length) / args.steps)));
    const fleets: Fleet[] = [];
    for (const batch of batches) {
      const fleet = await hubFleet(node, batch, Math.max(1, Math.round(args.workers / batches.length)), base);
      stops.push(() => fleet.stop());
      fleets.push(fleet);
    }
    // provisioned hub records are not session memory: the baseline is taken after them
    const steps: Measured[] = [];
    const unpacked = async () => metricSum(await (await fetch(`${node.adminUrl}/metrics`)).text(), 'tier_hub_device_caches_unpacked');
    if (cgroup) {
      // what the kernel could not drop now (the unmapped page cache it can), and the budget beside it
      const base = cgroup.read();
      const bytes = base.anon + base.mappedFile + base.kernel + args.sessions * args.memoryLimit!;
      cgroup.limit(bytes);
      limited = { bytesPerSession: args.memoryLimit!, limitBytes: bytes, base, atReading: null, afterProbe: null, sessionsHeld: null };
    }
    try {
      for (const [i, fleet] of fleets.entries()) steps.push(await measure(node, fleet, batches[i]!.length, args.devices > 0 ? batches[i]!.length : 0, args.idleMs, unpacked, args.connectRate));
    } catch (err) {
      if (node.child.exitCode !== null || node.child.signalCode !== null) say(`the node ended (${node.child.exitCode ?? node.child.signalCode}); its last lines:\n${lastLines.join('\n')}`);
      const killed = cgroup?.read().oomKills ?? 0;
      if (killed > 0) throw new Error(`the node was killed for its memory limit (${(limited!.limitBytes / 2 ** 20).toFixed(1)} MB, peak ${(cgroup!.read().peak / 2 ** 20).toFixed(1)} MB)`, { cause: err });
      throw err;
    }
    if (limited) limited.atReading = cgroup!.read();
    if (args.probe) {
      if (limited) limited.sessionsHeld = await sessionsHeld(node);
      probe = await probeSessions(node, fleets, hubs.map((h) => h.id), Math.max(5_000, args.sessions), 1_000);
      if (limited) limited.afterProbe = cgroup!.read();
    }
    unpackedSteps = steps.map((m) => m.unpacked);
    const metrics = await (await fetch(`${node.adminUrl}/metrics`)).text();
    const count = metricSum(metrics, 'tier_malloc_trims_total');
    if (count !== null) trims = { count, seconds: metricSum(metrics, 'tier_malloc_trim_seconds_total') ?? 0, returnedBytes: metricSum(metrics, 'tier_malloc_trim_returned_bytes_total') ?? 0 };
    server = { ...between(steps.at(-1)!.after, steps[0]!.before, args.sessions), connectMs: steps.reduce((n, m) => n + m.connectMs, 0), refused: steps.reduce((n, m) => n + m.refused, 0) };
    if (!args.cluster) pages = storePages(node.dataDir);
    if (args.marginal) second = steps[1]!;
    if (args.steps >= 3) fit = lineOf(steps);
    // the baseline, read after the warm-up, can still hold that burst's young generation (14-32 MB)
    if (args.steps >= 3) fitFromSecond = lineOf(steps, 1);
  } finally {
    for (const s of stops.reverse()) await s().catch(() => {});
  }

  const kb = (b: number) => (b / 1024).toFixed(2);
  const anonKb = (m: Measured) => (m.anonPer === null ? 'n/a' : kb(m.anonPer));
  let heapText = '';
  let heapRows: unknown = undefined;
  if (server.before.snapshot && server.after.snapshot) {
    const diff = censusDiff(census(server.before.snapshot), census(server.after.snapshot), args.sessions, 25);
    heapText = `\nJS heap added per hub session (heap snapshots ${server.before.snapshot}, ${server.after.snapshot}):\n${diff.text}\n`;
    heapRows = diff.rows;
  }
  const perSession = (p: StorePages) => (p.pages * 4096) / args.sessions;
  const out = {
    /** the embedded store's LMDB files at the last reading, by sub-database (every hub written, the warm-up's included) */
    storePages: pages?.map((p) => ({ ...p, bytesPerSession: Math.round(perSession(p)) })),
    machine: { cores: cpus().length, node: process.version },
    sessions: args.sessions,
    mode: args.cluster ? 'cluster' : 'embedded',
    runtime: args.tsx ? 'tsx' : 'compiled',
    devicesPerHub: args.devices,
    deviceIds: args.deviceIds,
    hubsPerHome: args.hubsPerHome,
    warmupHubs: args.warmup,
    bytesPerSession: server.rssPer,
    anonBytesPerSession: server.anonPer,
    beyondYoungBytesPerSession: server.beyondYoungPer,
    heapBytesPerSession: server.heapPer,
    idleMs: args.idleMs,
    /** time to connect every hub (all steps), and the connects the node refused on the way (tried again after 1 s) */
    connect: { ms: server.connectMs, refused: server.refused },
    /** per step: the node's unpacked device caches at the step's reading */
    unpackedCaches: unpackedSteps,
    /** the node's malloc_trim calls by the last reading (null: none available, or TIER_MALLOC_TRIM_MS=0 with no series) */
    mallocTrims: trims,
    heapCommittedBytesPerSession: server.heapTotalPer,
    externalBytesPerSession: server.externalPer,
    marginal: second && { sessions: second.sockets, bytesPerSession: second.rssPer, anonBytesPerSession: second.anonPer, heapBytesPerSession: second.heapPer, heapCommittedBytesPerSession: second.heapTotalPer },
    fit,
    fitFromSecond,
    floorBytesPerSocket: floor.rssPer,
    floorAnonBytesPerSocket: floor.anonPer,
    floorHeapBytesPerSocket: floor.heapPer,
    ratio: Math.round((100 * server.rssPer) / Math.max(1, floor.rssPer)) / 100,
    server: { rssBefore: server.before.rss, rssAfter: server.after.rss, heapBefore: server.before.heapUsed, heapAfter: server.after.heapUsed, spaceGrowth: spaceGrowth(server) },
    floor: { rssBefore: floor.before.rss, rssAfter: floor.after.rss, heapBefore: floor.before.heapUsed, heapAfter: floor.after.heapUsed },
    heapPerSession: heapRows,
    /** --memory-limit: the node's cgroup, its limit, and its readings at the baseline, at the last reading and after the probe */
    memoryLimit: limited && { ...limited, chargedPerSession: limited.atReading && chargePer(limited.base, limited.atReading, args.sessions), floorChargedPerSocket: floorCharge },
    /** --probe: reports from every hub, and shadow reads, after the readings */
    probe,
  };
  const text = [
    `machine: ${cpus().length} cores, Node ${process.version}; ${args.sessions} sockets per process, measured after a full GC${args.warmup > 0 ? `; the server's baseline after ${args.warmup} warm-up hubs came and went` : ''}`,
    '',
    table([
      ['process', 'RSS before MB', 'RSS after MB', 'RSS KB/socket', 'RSS anon KB/socket', 'JS heap used KB/socket', 'JS heap committed KB/socket', 'external KB/socket'],
      ['bare uWS, idle sockets (floor)', (floor.before.rss / 2 ** 20).toFixed(1), (floor.after.rss / 2 ** 20).toFixed(1), kb(floor.rssPer), anonKb(floor), kb(floor.heapPer), kb(floor.heapTotalPer), kb(floor.externalPer)],
      [`server (${args.cluster ? 'cluster' : 'embedded'}, ${args.tsx ? 'tsx' : 'compiled'}), hub sessions (${args.devices}-device shadow, ids ${args.deviceIds}, ${args.hubsPerHome} a home)`, (server.before.rss / 2 ** 20).toFixed(1), (server.after.rss / 2 ** 20).toFixed(1), kb(server.rssPer), anonKb(server), kb(server.heapPer), kb(server.heapTotalPer), kb(server.externalPer)],
    ]),
    '',
    `server memory per hub session: ${kb(server.rssPer)} KB (${out.ratio}x the bare socket's ${kb(floor.rssPer)} KB)${args.idleMs > 0 ? `, read after ${args.idleMs} ms idle` : ''}`,
    server.beyondYoungPer === null ? '' : `the same without V8's young generation in either reading (${((server.before.youngPhysical ?? 0) / 2 ** 20).toFixed(1)} MB before, ${((server.after.youngPhysical ?? 0) / 2 ** 20).toFixed(1)} MB after): ${kb(server.beyondYoungPer)} KB`,
    `connecting every hub took ${(server.connectMs / 1000).toFixed(1)} s${server.refused > 0 ? `; ${server.refused} connects were refused on the way (tried again after 1 s)` : ''}`,
    `the node's unpacked device caches at each reading: ${unpackedSteps.map((u) => u ?? 'n/a').join(', ')}`,
    trims ? `the node's malloc_trim calls by the last reading: ${trims.count}, ${(trims.seconds * 1000).toFixed(1)} ms in all, ${(trims.returnedBytes / 2 ** 20).toFixed(1)} MB of RSS returned` : '',
    second ? `the second ${second.sockets} sessions alone (what each further session adds): RSS ${kb(second.rssPer)} KB, anonymous ${anonKb(second)} KB, JS heap used ${kb(second.heapPer)} KB, committed ${kb(second.heapTotalPer)} KB` : '',
    fit ? `a line through the ${args.steps + 1} readings, per session (± the slope's standard error): ${lineText(fit)}` : '',
    fitFromSecond ? `the same from the second reading on (the baseline left out): ${lineText(fitFromSecond)}` : '',
    pages ? `the store's files at the last reading (LMDB maps them: a page the node has read counts in its RSS), 4 KB pages per session, the warm-up's hubs included:\n${pages
      .filter((p) => p.pages > 1)
      .map((p) => `  ${p.file} ${p.db}: ${p.pages} pages${p.overflowPages > 0 ? ` (${p.overflowPages} overflow)` : ''}, ${(perSession(p) / 1024).toFixed(2)} KB${p.db === '(file)' ? '' : `, ${p.entries} entries`}`)
      .join('\n')}` : '',
    limited ? limitText(limited, args.sessions, floorCharge) : '',
    probe ? probeText(probe) : '',
    heapText,
  ]
    .filter((line) => line !== '')
    .join('\n');
  printResult(args.json, text, out);
}

runMain('bench:memory', main);
