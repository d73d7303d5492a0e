import { mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { cpus, tmpdir } from 'node:os';
import { parseArgs } from 'node:util';
import { Fleet } from '../load/loadgen/fleet.js';
import type { AppSpec, ConnectResult, HubSpec, WorkerConfig } from '../load/loadgen/ipc.js';
import { summarize, table, type LatencySummary } from '../load/lib/histogram.js';
import { cannon, commandPaths, type CannonResult } from './lib/cannon.js';
import { paced } from './lib/paced.js';
import { countSyscalls } from './lib/syscalls.js';
import { ExitedError, startNats, startNode, startRedis, type NodeProc } from '../load/harness/index.js';
import { startRelayFloor } from './lib/floor.js';
import { summarizeProfile } from './lib/profile-summary.js';

const USAGE = `Benchmarks of the latency-critical paths, with floors measured in the same run.

usage: npm run bench -- [options]

  --quick              a run under a minute (shorter runs, fewer hubs)
  --json               print one JSON object on stdout (progress goes to stderr)
  --variant LIST       comma list of: same, cross, telemetry (default: all three); telemetry runs on
                       the embedded node and on a cluster-mode node
  --duration S         seconds per measured run (default 5, quick 3)
  --rounds N           floor and server alternate N times; figures are medians (default 3, quick 1)
  --connections N      HTTP connections of autocannon (default 100)
  --hubs N             simulated hubs (default 1000, quick 300), 8 sub-devices each
  --rate-fraction F    the fixed-rate runs go at F x the slower saturated rate (default 0.5)
  --latency-rate N     commands per second of the cross-node latency comparison (default 1000)
  --telemetry-rate N   hub reports per second in the telemetry runs (default 2000, quick 1000)
  --syscalls           count system calls per command (strace -c -f) of the relay floor, the server
                       and the corked relay at a fixed rate
  --cpu-prof           write a CPU profile of the server node (in $TMPDIR/hubtier-bench/) and print its top functions
  -h, --help           this text

Targets, each with its own hubs (1000 x 8 devices, in worker processes running the same lean hub,
load/loadgen/lean-hub.ts): the bare uWS GET handler and the relay floor (bench/relay-floor.ts: the POST body
relayed as a command frame to the hub and the hub's result back, no auth, validation or actors),
the server (src/main.ts, embedded default), and a corked relay: the relay floor writing after
the uWS callback returns, one cork per socket (a reference of what corking buys, not a floor).
Saturated runs use autocannon; fixed-rate runs an open-loop constant-rate sender (bench/lib/paced.ts).
Cross-node: two nodes in cluster mode with their own nats-server and redis-server, hubs on one,
commands to the other; skipped when cluster mode is not available.
Telemetry: hub reports at a fixed rate, report → app subscriber and report → ack (the hub's send to
the ack covering it), on the relay floor, the embedded node and the cluster node holding the hubs
(whose acks wait for the shadow batch to be written to Redis: TIER_SHADOW_BATCH_MS, default 50 ms).
`;

interface Args {
  quick: boolean;
  json: boolean;
  variants: Set<string>;
  durationS: number;
  rounds: number;
  connections: number;
  hubs: number;
  devices: number;
  rateFraction: number;
  telemetryRate: number;
  latencyRate: number;
  cpuProf: boolean;
  syscalls: boolean;
}

function parse(): Args {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        quick: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        variant: { type: 'string', default: 'same,cross,telemetry' },
        duration: { type: 'string' },
        rounds: { type: 'string' },
        connections: { type: 'string', default: '100' },
        hubs: { type: 'string' },
        'rate-fraction': { type: 'string', default: '0.5' },
        'telemetry-rate': { type: 'string' },
        'latency-rate': { type: 'string', default: '1000' },
        'cpu-prof': { type: 'boolean', default: false },
        syscalls: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }));
  } catch (err) {
    fail((err as Error).message);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const num = (v: string | undefined, dflt: number, flag: string, min: number) => {
    const n = v === undefined ? dflt : Number(v);
    if (!Number.isFinite(n) || n < min) fail(`${flag} must be a number >= ${min}, got ${v}`);
    return n;
  };
  const variants = new Set(values.variant.split(',').map((s) => s.trim()).filter(Boolean));
  for (const v of variants) if (!['same', 'cross', 'telemetry'].includes(v)) fail(`unknown variant ${v}`);
  const quick = values.quick;
  return {
    quick,
    json: values.json,
    variants,
    durationS: num(values.duration, quick ? 3 : 5, '--duration', 1),
    rounds: Math.floor(num(values.rounds, quick ? 1 : 3, '--rounds', 1)),
    connections: num(values.connections, 100, '--connections', 1),
    hubs: num(values.hubs, quick ? 300 : 1000, '--hubs', 1),
    devices: 8,
    rateFraction: num(values['rate-fraction'], 0.5, '--rate-fraction', 0.01),
    latencyRate: num(values['latency-rate'], 1000, '--latency-rate', 1),
    telemetryRate: num(values['telemetry-rate'], quick ? 1000 : 2000, '--telemetry-rate', 1),
    cpuProf: values['cpu-prof'],
    syscalls: values.syscalls,
  };
}

function fail(msg: string): never {
  process.stderr.write(`bench: ${msg}\n\n${USAGE}`);
  process.exit(2);
}

const say = (line: string) => process.stderr.write(`${line}\n`);

function hubSpecs(n: number, prefix: string): HubSpec[] {
  return Array.from({ length: n }, (_, i) => ({ id: `${prefix}-${i}`, home: `${prefix}-home-${Math.floor(i / 10)}`, target: 0 }));
}

/** One app subscriber per home, each following its home's 10 hubs. */
function appSpecs(hubs: HubSpec[]): AppSpec[] {
  return [...new Set(hubs.map((h) => h.home))].map((home) => ({ homes: [home], target: 0 }));
}

function workerConfig(url: string, hubs: HubSpec[], signed: boolean, adminToken: string | null, apps: AppSpec[]): WorkerConfig {
  return {
    targets: [url],
    hubs,
    devices: 8,
    sourceAddresses: [],
    connectConcurrency: 100,
    connectTimeoutMs: 20_000,
    adminToken,
    signed,
    fill: true,
    reconnect: false,
    apps,
  };
}

async function hubsOnline(fleet: Fleet, label: string, provision: boolean): Promise<number> {
  if (provision) {
    const p = await fleet.all<{ ok: number; failed: number }, 'provision'>('provision');
    const failed = p.reduce((n, x) => n + x.failed, 0);
    if (failed > 0) throw new Error(`${label}: ${failed} hubs could not be provisioned`);
  }
  const r = (await fleet.all<ConnectResult, 'connect'>('connect'))[0]!;
  if (r.failed > 0) throw new Error(`${label}: ${r.failed} hubs could not connect: ${JSON.stringify((await fleet.snapshot()).counters.errors)}`);
  return Math.round((r.ok * 1000) / r.elapsedMs);
}

interface TelemetryResult extends LatencySummary {
  rate: number;
  delivered: number;
  reportsSent: number;
  /** report → ack: the hub's send of a report to the ack covering it */
  ack: LatencySummary;
}

async function telemetry(fleet: Fleet, hubs: number, rate: number, durationS: number): Promise<TelemetryResult> {
  await fleet.all('reports', { everyMs: (hubs * 1000) / rate });
  await sleep(1_000); // settle
  await fleet.all('reset');
  const before = (await fleet.snapshot()).counters;
  await sleep(durationS * 1_000);
  const snap = await fleet.snapshot();
  await fleet.all('reports', { everyMs: 0 });
  return {
    rate,
    reportsSent: snap.counters.reportsSent - before.reportsSent,
    delivered: snap.counters.eventsReceived - before.eventsReceived,
    ...summarize(snap.reportToApp),
    ack: summarize(snap.reportToAck),
  };
}

/**
 * Telemetry on the floor and on a server, alternating round after round; the round with the
 * median report → app p99 stands for each target.
 */
async function telemetryRounds(floor: Fleet, server: Fleet, args: Args): Promise<{ floor: TelemetryResult; server: TelemetryResult }> {
  const fs: TelemetryResult[] = [];
  const ss: TelemetryResult[] = [];
  for (let i = 0; i < args.rounds; i++) {
    fs.push(await telemetry(floor, args.hubs, args.telemetryRate, args.durationS));
    ss.push(await telemetry(server, args.hubs, args.telemetryRate, args.durationS));
  }
  const byP99 = (xs: TelemetryResult[]) => [...xs].sort((a, b) => a.p99Ms - b.p99Ms)[Math.floor(xs.length / 2)]!;
  return { floor: byP99(fs), server: byP99(ss) };
}

/** Each figure the median over the runs (runs of one target under the same load). */
function median(runs: CannonResult[]): CannonResult {
  const mid = <T>(xs: T[], by: (x: T) => number) => {
    const v = xs.map(by).sort((a, b) => a - b);
    return v.length % 2 === 1 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
  };
  const first = runs[0]!;
  const out = { ...first } as CannonResult;
  for (const k of Object.keys(first) as Array<keyof CannonResult>) {
    if (typeof first[k] === 'number') (out as unknown as Record<string, number>)[k] = mid(runs, (r) => r[k] as number);
  }
  out.otherCpuUsPerReq = Object.fromEntries(Object.keys(first.otherCpuUsPerReq).map((k) => [k, mid(runs, (r) => r.otherCpuUsPerReq[k] ?? 0)]));
  return out;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const round = (n: number, d = 2) => Math.round(n * 10 ** d) / 10 ** d;

async function main(): Promise<void> {
  const args = parse();
  const started = Date.now();
  const stops: Array<() => Promise<void>> = [];
  const cleanup = async () => {
    for (const s of stops.reverse()) await s().catch(() => {});
  };
  process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));

  const rows: Array<Array<string | number>> = [['run', 'target', 'req/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'server cpu µs/req', 'of it kernel', 'hubs cpu µs/req', 'errors', 'late']];
  const row = (name: string, target: string, r: CannonResult) =>
    rows.push([name, target, r.perSec, r.p50Ms, r.p99Ms, r.p999Ms, r.cpuUsPerReq, r.cpuSysUsPerReq, r.otherCpuUsPerReq.hubs ?? '', r.non2xx + r.errors + r.timeouts, r.late]);
  // report → app: events delivered per second, errors = reports not delivered; report → ack: acks
  // that covered a hub's newest unacknowledged report, per second
  const telemetryRows = (name: string, target: string, t: TelemetryResult) => {
    rows.push([`${name} (report → app)`, target, Math.round(t.delivered / args.durationS), t.p50Ms, t.p99Ms, t.p999Ms, '', '', '', t.reportsSent - t.delivered, '']);
    rows.push([`${name} (report → ack)`, target, Math.round(t.ack.count / args.durationS), t.ack.p50Ms, t.ack.p99Ms, t.ack.p999Ms, '', '', '', '', '']);
  };
  const out: Record<string, unknown> = {
    machine: { cores: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', node: process.version },
    quick: args.quick,
    durationS: args.durationS,
    connections: args.connections,
    hubs: args.hubs,
    devicesPerHub: args.devices,
  };
  let syscallTable = '';
  const d = args.durationS;
  const warm = args.quick ? 1 : 2;
  const body = '{"set":{"on":true}}';

  try {
    // ---------------------------------------------------------------- the floors
    const floor = await startRelayFloor();
    stops.push(() => floor.stop());
    const uwsLine = floor.lines.find((l) => l.startsWith('{"ready":true'));
    out.uws = uwsLine ? (JSON.parse(uwsLine) as { uws: string; native: boolean }) : null;
    const floorHubs = hubSpecs(args.hubs, 'f');
    const floorFleet = await Fleet.start([workerConfig(floor.wsUrl, floorHubs, false, null, args.variants.has('telemetry') ? appSpecs(floorHubs) : [])]);
    stops.push(() => floorFleet.stop());
    const helloFloorPerSec = await hubsOnline(floorFleet, 'relay floor', false);
    say(`relay floor: ${args.hubs} hubs online (${helloFloorPerSec} hellos/s)`);
    // the reference of what corking buys: the same relay writing after the uWS callback returns
    const ref = args.variants.has('same') ? await startRelayFloor({ mode: 'corked' }) : null;
    if (ref) stops.push(() => ref.stop());
    const refHubs = hubSpecs(args.hubs, 'c');
    const refFleet = ref ? await Fleet.start([workerConfig(ref.wsUrl, refHubs, false, null, [])]) : null;
    if (refFleet) {
      stops.push(() => refFleet.stop());
      await hubsOnline(refFleet, 'corked relay', false);
    }

    // ---------------------------------------------------------------- the server, same node
    const profDir = join(tmpdir(), 'hubtier-bench');
    if (args.cpuProf) mkdirSync(profDir, { recursive: true });
    const node = await startNode(args.cpuProf ? { nodeFlags: ['--cpu-prof', `--cpu-prof-dir=${profDir}`] } : {});
    stops.push(() => node.stop());
    const nodeHubs = hubSpecs(args.hubs, 's');
    const nodeFleet = await Fleet.start([workerConfig(node.wsUrl, nodeHubs, true, node.adminToken, args.variants.has('telemetry') ? appSpecs(nodeHubs) : [])]);
    stops.push(() => nodeFleet.stop());
    const helloPerSec = await hubsOnline(nodeFleet, 'server', true);
    say(`server: ${args.hubs} hubs online (${helloPerSec} signed hellos/s)`);
    out.helloPerSec = helloPerSec;
    out.helloFloorPerSec = helloFloorPerSec;

    const auth = { authorization: `Bearer ${node.adminToken}` };
    const floorPaths = commandPaths(floorHubs.map((h) => h.id), args.devices);
    const nodePaths = commandPaths(nodeHubs.map((h) => h.id), args.devices);
    const onFloor = { url: floor.httpUrl, pid: floor.pid, others: { hubs: floorFleet.pids() } };
    const onNode = { url: node.httpUrl, pid: node.pid, others: { hubs: nodeFleet.pids() } };
    const refPaths = commandPaths(refHubs.map((h) => h.id), args.devices);
    const onRef = ref && refFleet ? { url: ref.httpUrl, pid: ref.pid, others: { hubs: refFleet.pids() } } : null;
    const post = { method: 'POST' as const, body, headers: auth, connections: args.connections };

    if (args.variants.has('same')) {
      say('warming up');
      await cannon({ ...onFloor, ...post, path: floorPaths, durationS: warm });
      await cannon({ ...onNode, ...post, path: nodePaths, durationS: warm });
      await cannon({ ...onFloor, method: 'GET', path: '/bare', connections: args.connections, durationS: warm });
      await cannon({ ...onRef!, ...post, path: refPaths, durationS: warm });

      // floor and server alternate, round after round, and each figure is the median of its
      // rounds: a neighbour's burst of CPU on this shared machine then shifts both, not one
      const rounds = args.rounds;
      const bares: CannonResult[] = [];
      const relaySats: CannonResult[] = [];
      const serverSats: CannonResult[] = [];
      const refSats: CannonResult[] = [];
      for (let i = 1; i <= rounds; i++) {
        say(`round ${i}/${rounds}: bare GET, relay floor, server, corked relay, saturated, ${d} s each`);
        bares.push(await cannon({ ...onFloor, method: 'GET', path: '/bare', connections: args.connections, durationS: d }));
        relaySats.push(await cannon({ ...onFloor, ...post, path: floorPaths, durationS: d }));
        serverSats.push(await cannon({ ...onNode, ...post, path: nodePaths, durationS: d }));
        refSats.push(await cannon({ ...onRef!, ...post, path: refPaths, durationS: d }));
      }
      const bare = median(bares);
      const relaySat = median(relaySats);
      const serverSat = median(serverSats);
      const refSat = median(refSats);
      row('bare GET (saturated)', 'bare uWS', bare);
      row('command (saturated)', 'relay floor', relaySat);
      row('command (saturated)', 'server', serverSat);
      row('command (saturated)', 'corked relay (ref.)', refSat);
      const rate = Math.max(100, Math.round((args.rateFraction * Math.min(relaySat.perSec, serverSat.perSec)) / 100) * 100);
      const relayAts: CannonResult[] = [];
      const serverAts: CannonResult[] = [];
      for (let i = 1; i <= rounds; i++) {
        say(`round ${i}/${rounds}: relay floor and server at ${rate} commands/s, ${d} s each`);
        relayAts.push(await paced({ ...onFloor, ...post, path: floorPaths, durationS: d, rate }));
        serverAts.push(await paced({ ...onNode, ...post, path: nodePaths, durationS: d, rate }));
      }
      const relayAt = median(relayAts);
      const serverAt = median(serverAts);
      row(`command @ ${rate}/s`, 'relay floor', relayAt);
      row(`command @ ${rate}/s`, 'server', serverAt);
      if (args.variants.has('cross')) {
        // the reference of the cross-node comparison: the same node at the latency rate
        const lowRuns: CannonResult[] = [];
        for (let i = 1; i <= rounds; i++) lowRuns.push(await paced({ ...onNode, ...post, path: nodePaths, durationS: d, rate: args.latencyRate }));
        const low = median(lowRuns);
        row(`command @ ${args.latencyRate}/s`, 'server', low);
        out.atLatencyRate = { rate: args.latencyRate, server: { p50Ms: low.p50Ms, p99Ms: low.p99Ms } };
      }
      let syscalls: Record<string, Record<string, number>> | null = null;
      if (args.syscalls) {
        const at = Math.min(rate, 1000);
        say(`system calls per command at ${at}/s (strace -c -f), relay floor, server, corked relay`);
        syscalls = {};
        for (const [name, on, paths] of [['relay floor', onFloor, floorPaths], ['server', onNode, nodePaths], ['corked relay (ref.)', onRef!, refPaths]] as const) {
          const { result, calls } = await countSyscalls(on.pid, () => paced({ ...on, ...post, path: paths, durationS: Math.min(d, 5), rate: at }));
          const per: Record<string, number> = {};
          for (const [k, n] of Object.entries(calls)) if (n / Math.max(1, result.ok) >= 0.05) per[k] = round(n / Math.max(1, result.ok));
          syscalls[name] = per;
        }
        const keys = [...new Set(Object.values(syscalls).flatMap((x) => Object.keys(x)))].sort((a, b) => (syscalls!.server![b] ?? 0) - (syscalls!.server![a] ?? 0));
        syscallTable = table([['system calls per command', ...Object.keys(syscalls)], ...keys.map((k) => [k, ...Object.values(syscalls!).map((x) => x[k] ?? 0)])]);
      }
      Object.assign(out, {
        commandsPerSec: serverSat.perSec,
        p50Ms: serverSat.p50Ms,
        p99Ms: serverSat.p99Ms,
        floorPerSec: relaySat.perSec,
        floorP50Ms: relaySat.p50Ms,
        floorP99Ms: relaySat.p99Ms,
        ratio: round(serverSat.perSec / Math.max(1, relaySat.perSec)),
        corkedRelayPerSec: refSat.perSec,
        ratioVsCorkedRelay: round(serverSat.perSec / Math.max(1, refSat.perSec)),
        syscallsPerCommand: syscalls,
        bareGetPerSec: bare.perSec,
        floorVsBareGet: round(relaySat.perSec / Math.max(1, bare.perSec)),
        atRate: {
          rate,
          server: { p50Ms: serverAt.p50Ms, p99Ms: serverAt.p99Ms, perSec: serverAt.perSec },
          floor: { p50Ms: relayAt.p50Ms, p99Ms: relayAt.p99Ms, perSec: relayAt.perSec },
          p99Ratio: round(serverAt.p99Ms / Math.max(0.001, relayAt.p99Ms)),
        },
        cpuUsPerCommand: { server: serverSat.cpuUsPerReq, serverKernel: serverSat.cpuSysUsPerReq, floor: relaySat.cpuUsPerReq, floorKernel: relaySat.cpuSysUsPerReq, corkedRelay: refSat.cpuUsPerReq, corkedRelayKernel: refSat.cpuSysUsPerReq, serverHubs: serverSat.otherCpuUsPerReq.hubs, floorHubs: relaySat.otherCpuUsPerReq.hubs },
        rounds,
        runs: { bares, relaySats, serverSats, refSats, relayAts, serverAts },
      });
    }

    if (args.variants.has('telemetry')) {
      const rate = args.telemetryRate;
      say(`telemetry: ${rate} reports/s, report → app subscriber and report → ack, ${d} s each`);
      await floorFleet.all('apps');
      await nodeFleet.all('apps');
      const { floor: tf, server: ts } = await telemetryRounds(floorFleet, nodeFleet, args);
      telemetryRows(`telemetry @ ${rate}/s`, 'relay floor', tf);
      telemetryRows(`telemetry @ ${rate}/s`, 'server', ts);
      out.telemetry = {
        rate,
        p50Ms: ts.p50Ms,
        p99Ms: ts.p99Ms,
        ackP50Ms: ts.ack.p50Ms,
        ackP99Ms: ts.ack.p99Ms,
        floorP50Ms: tf.p50Ms,
        floorP99Ms: tf.p99Ms,
        floorAckP50Ms: tf.ack.p50Ms,
        floorAckP99Ms: tf.ack.p99Ms,
        server: ts,
        floor: tf,
      };
    }

    // the same-node processes make way for the cluster (the relay floor stays for the cluster's telemetry)
    await nodeFleet.stop();
    await refFleet?.stop();
    await ref?.stop();
    await node.stop();
    if (!args.variants.has('telemetry')) {
      await floorFleet.stop();
      await floor.stop();
    }
    if (args.cpuProf) {
      // one file per thread (tsx runs its loader on a worker thread): the main thread's is the largest
      const newest = readdirSync(profDir)
        .filter((f) => f.endsWith('.cpuprofile') && f.includes(`.${node.pid}.`))
        .map((f) => join(profDir, f))
        .sort((a, b) => statSync(b).size - statSync(a).size)[0];
      if (newest) {
        say(`server CPU profile: ${newest}`);
        say(summarizeProfile(newest, 25));
        out.cpuProfile = newest;
      }
    }

    if (args.variants.has('cross') || args.variants.has('telemetry')) {
      const at = args.latencyRate;
      const cluster = await clusterNodes(args, at, stops, args.variants.has('telemetry') ? floorFleet : null);
      if (cluster === null) {
        say('cluster mode unavailable: cross-node and cluster telemetry skipped');
        if (args.variants.has('cross')) out.crossNode = { status: 'skipped', reason: 'cluster mode unavailable' };
        if (args.variants.has('telemetry')) out.clusterTelemetry = { status: 'skipped', reason: 'cluster mode unavailable' };
      }
      const cross = cluster?.cross;
      if (cross) {
        row(`cluster same-node @ ${at}/s`, 'server (NATS)', cross.same);
        row(`cross-node @ ${at}/s`, 'server A → B', cross.cross);
        const sameEmbedded = (out.atLatencyRate as { server: { p50Ms: number } } | undefined)?.server.p50Ms;
        out.crossNode = {
          status: 'ok',
          rate: at,
          p50Ms: cross.cross.p50Ms,
          p99Ms: cross.cross.p99Ms,
          clusterSameNodeP50Ms: cross.same.p50Ms,
          addedP50Ms: round(cross.cross.p50Ms - cross.same.p50Ms, 3),
          addedP50MsOverEmbedded: sameEmbedded === undefined ? null : round(cross.cross.p50Ms - sameEmbedded, 3),
          runs: cross,
        };
      }
      const tel = cluster?.telemetry;
      if (tel) {
        const rate = args.telemetryRate;
        telemetryRows(`cluster telemetry @ ${rate}/s`, 'relay floor', tel.floor);
        telemetryRows(`cluster telemetry @ ${rate}/s`, 'server (cluster)', tel.server);
        out.clusterTelemetry = {
          status: 'ok',
          rate,
          p50Ms: tel.server.p50Ms,
          p99Ms: tel.server.p99Ms,
          ackP50Ms: tel.server.ack.p50Ms,
          ackP99Ms: tel.server.ack.p99Ms,
          floorP50Ms: tel.floor.p50Ms,
          floorP99Ms: tel.floor.p99Ms,
          floorAckP50Ms: tel.floor.ack.p50Ms,
          floorAckP99Ms: tel.floor.ack.p99Ms,
          server: tel.server,
          floor: tel.floor,
        };
      }
    }
  } finally {
    await cleanup();
  }

  out.elapsedS = Math.round((Date.now() - started) / 1000);
  const summary: string[] = [];
  if (out.ratio !== undefined) {
    const a = out.atRate as { rate: number; p99Ratio: number };
    summary.push(
      `commands: ${String(out.commandsPerSec)}/s = ${String(out.ratio)}x the relay floor (${String(out.floorPerSec)}/s; the floor is ${String(out.floorVsBareGet)}x a bare GET); at ${a.rate}/s the server's p99 is ${a.p99Ratio}x the floor's`,
      `corked relay (reference): ${String(out.corkedRelayPerSec)}/s; the server reaches ${String(out.ratioVsCorkedRelay)}x of it`,
    );
  }
  summary.push(`hellos: ${String(out.helloPerSec)}/s signed (relay floor, unsigned: ${String(out.helloFloorPerSec)}/s)`);
  const c = out.crossNode as { status: string; addedP50Ms?: number } | undefined;
  if (c?.status === 'ok') {
    const e = (out.crossNode as { addedP50MsOverEmbedded: number | null }).addedP50MsOverEmbedded;
    summary.push(`cross-node at ${args.latencyRate}/s: ${String(c.addedP50Ms)} ms added at p50 over same-node in cluster mode, ${String(e)} ms over the embedded node`);
  }
  if (c?.status === 'skipped') summary.push('cross-node: skipped (cluster mode unavailable)');
  type Tel = { rate: number; p50Ms: number; p99Ms: number; ackP50Ms: number; ackP99Ms: number; floorP50Ms: number; floorP99Ms: number; floorAckP50Ms: number; floorAckP99Ms: number };
  const telLine = (where: string, t: Tel) =>
    `telemetry at ${t.rate}/s, ${where}: report → app p50/p99 ${t.p50Ms}/${t.p99Ms} ms (floor ${t.floorP50Ms}/${t.floorP99Ms}); report → ack p50/p99 ${t.ackP50Ms}/${t.ackP99Ms} ms (floor ${t.floorAckP50Ms}/${t.floorAckP99Ms})`;
  if (out.telemetry) summary.push(telLine('embedded node', out.telemetry as Tel));
  if ((out.clusterTelemetry as { status?: string } | undefined)?.status === 'ok') summary.push(telLine('cluster node', out.clusterTelemetry as Tel));
  const uws = out.uws as { uws: string; native: boolean } | null;
  const text = [
    `machine: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), Node ${process.version}, uWS ${uws?.uws ?? '?'} (${uws?.native ? 'native' : 'SHIM'})`,
    `${args.hubs} hubs x ${args.devices} devices, ${args.connections} HTTP connections, ${d} s per run, medians of ${args.rounds} alternating round(s)`,
    '',
    table(rows),
    '',
    ...(syscallTable ? [syscallTable, ''] : []),
    ...summary,
    '',
  ].join('\n');
  if (args.json) {
    process.stderr.write(text);
    process.stdout.write(`${JSON.stringify(out)}\n`);
  } else process.stdout.write(text);
}

/**
 * Two cluster nodes with their own nats-server and redis-server, the hubs on node B. With the
 * cross variant: commands to A (cross-node) and to B. With `floor` (the telemetry variant): hub
 * reports to B with an app subscriber per home on B, alternating with the relay floor's fleet.
 * Null when cluster mode is not built.
 */
async function clusterNodes(
  args: Args,
  rate: number,
  stops: Array<() => Promise<void>>,
  floor: Fleet | null,
): Promise<{ cross: { same: CannonResult; cross: CannonResult } | null; telemetry: { floor: TelemetryResult; server: TelemetryResult } | null } | null> {
  say('cluster: starting nats-server, redis-server and two nodes');
  const nats = await startNats();
  stops.push(() => nats.stop());
  const redis = await startRedis();
  stops.push(() => redis.stop());
  const adminToken = `bench-cluster-${Date.now()}-token`;
  const env = { NATS_URL: nats.url, REDIS_URL: redis.url };
  let a: NodeProc;
  let b: NodeProc;
  try {
    a = await startNode({ env: { ...env, NODE_ID: 'bench-a' }, adminToken });
    stops.push(() => a.stop());
    b = await startNode({ env: { ...env, NODE_ID: 'bench-b' }, adminToken });
    stops.push(() => b.stop());
  } catch (err) {
    if (err instanceof ExitedError && /cluster mode.*not available/i.test(err.output)) return null;
    throw err;
  }
  const hubs = hubSpecs(args.hubs, 'x');
  const fleet = await Fleet.start([workerConfig(b.wsUrl, hubs, true, adminToken, floor ? appSpecs(hubs) : [])]);
  stops.push(() => fleet.stop());
  await hubsOnline(fleet, 'cluster node B', true);
  await sleep(500); // directory and subscriptions settle
  // commands first, before the app subscribers connect: the cross-node figures stay as they were
  const cross = args.variants.has('cross') ? await crossCommands(args, rate, a, b, fleet, hubs, adminToken) : null;
  let telemetry: { floor: TelemetryResult; server: TelemetryResult } | null = null;
  if (floor) {
    say(`cluster telemetry: ${args.telemetryRate} reports/s to node B (apps on B), alternating with the relay floor, ${args.durationS} s each`);
    await fleet.all('apps');
    telemetry = await telemetryRounds(floor, fleet, args);
  }
  await fleet.stop();
  await Promise.all([a.stop(), b.stop()]);
  return { cross, telemetry };
}

/** Commands at `rate` to node A (cross-node, hubs on B) and to node B itself, alternating. */
async function crossCommands(args: Args, rate: number, a: NodeProc, b: NodeProc, fleet: Fleet, hubs: HubSpec[], adminToken: string): Promise<{ same: CannonResult; cross: CannonResult }> {
  const paths = commandPaths(hubs.map((h) => h.id), args.devices);
  const common = { method: 'POST' as const, body: '{"set":{"on":true}}', headers: { authorization: `Bearer ${adminToken}` }, connections: args.connections, path: paths };
  const others = { hubs: fleet.pids() };
  await cannon({ ...common, url: a.httpUrl, pid: a.pid, others, durationS: args.quick ? 1 : 2 });
  say(`cross-node: commands at ${rate}/s to node A (hubs on node B), and to node B itself, ${args.durationS} s each, ${args.rounds} round(s)`);
  const crosses: CannonResult[] = [];
  const sames: CannonResult[] = [];
  for (let i = 0; i < args.rounds; i++) {
    crosses.push(await paced({ ...common, rate, url: a.httpUrl, pid: a.pid, others, durationS: args.durationS }));
    sames.push(await paced({ ...common, rate, url: b.httpUrl, pid: b.pid, others, durationS: args.durationS }));
  }
  return { same: median(sames), cross: median(crosses) };
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);

