import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { ROOT } from './harness/index.js';
import { commandLine, usageError } from './lib/cli.js';
import { AppWatch } from './chaos/apps.js';
import { Balancer } from './chaos/balancer.js';
import { ChaosCluster } from './chaos/cluster.js';
import { CommandStream } from './chaos/commands.js';
import { HubFleet } from './chaos/fleet.js';
import { newLedger } from './chaos/ledger.js';
import { Random } from './chaos/random.js';
import { commandsReport, failuresOf, formatReport, ledgerReport, STALL_MS, type EventReport, type RunReport } from './chaos/summary.js';

const USAGE = `hubtier chaos: crashes and restarts of nodes under traffic, and what they lose.

usage: npm run chaos -- [options]

Cluster mode (default): starts its own nats-server, redis-server (append-only file) and three
nodes on free ports of 127.0.0.1. --mode embedded: one node of the embedded default, restarted
on its own data directory. Connects the hubs, runs reports and commands, then:
  kill      kill -9 of a node, one at a time (--kills, default 3, spaced by --gap), each restarted
  rolling   a rolling restart: SIGTERM each node in turn, wait until it is back and ready
  both      kill, then rolling (default)
  nats      kill -9 of the nats-server, restarted on its port after --outage seconds (cluster mode)
  redis     the same of the redis-server, which comes back from its append-only file (cluster mode)
  hang      the nats-server, then the redis-server, stopped (SIGSTOP: connections open, nothing
            answered, as a hung server or a network black hole) for --outage seconds (cluster mode)
  freeze    a node stopped (SIGSTOP, out of the apps' rotation) for --outage seconds, then resumed
            (SIGCONT): a long pause or a frozen VM. Its hubs give up on it after 1 s without an
            ack, as firmware does on a silent server, and reconnect to another node; the node
            resumes with sessions that were taken over (cluster mode)
  all       kill, rolling, nats, redis, hang, freeze
In the middle of every gap a share of the hubs (--blip) drop their sockets and reconnect, so
faults find hubs on their first session and hubs on a later one.
Every report sets one device's counter; the server's ack says which reports it accepted. When a
hub comes back after its node died or drained, and at the end, its shadow must hold every
acknowledged counter. Before each fault and at the end, no hub online may have a report
unacknowledged for over ${STALL_MS / 1000} s (a node taking reports it never stores). Apps (the client
library) subscribed to the homes must get every event once and in order, and every acknowledged
report's event, across reconnects and recoveries, and never an old value after a newer one; a
reload is expected only after a kill -9 of the embedded node, and in cluster mode too_old for an app
that was away while an event of its home went out without a position (at most once a reconnect). Every command must get a definitive answer (200, or a code of the table in
proto/PROTOCOL.md with its HTTP status); only requests to a killed process may go unanswered.

options:
  --mode M            cluster | embedded (default cluster)
  --scenario S        kill | rolling | both | nats | redis | hang | freeze | all (default both)
  --hubs N            hubs (default 300), spread over the nodes
  --devices M         devices per hub (default 4)
  --report-ms T       ms between two reports of one hub (default 250)
  --command-rate R    HTTP commands per second over the cluster (default 30)
  --command-timeout-ms T  the commands' timeoutMs (default 2000)
  --kills K           kill -9 rounds (default 3; node i mod 3)
  --gap S             seconds of steady traffic before each fault (default 5)
  --outage S          nats, redis, hang, freeze: seconds the server stays down, hung or frozen (default 2)
  --apps N            app clients, the homes spread over them (default 10; 0: none)
  --blip F            share of the hubs online that drop their socket in the middle of each gap (default 0.2; 0: none)
  --appendfsync P     always | everysec | no: Redis append-only fsync policy (default everysec; cluster mode)
  --env KEY=VALUE     extra environment of every node, e.g. --env TIER_SHADOW_BATCH_MS=50 (repeatable);
                      TIER_HISTORY_SIZE is 5000 unless given (the default 100 a home is less than
                      a home's events while a node restarts here)
  --seed N            seed of every random choice (default random; printed)
  --max-time S        abort (exit 3) after S seconds (default 600)
  --json              print one JSON object on stdout (the table goes to stderr)
  -h, --help          this text

exit: 0 nothing lost and every check passed; 1 acknowledged reports lost, hubs stalled, an app
handed events out of order, missing an acknowledged report's event or told to reload where it
should have recovered, a command without a definitive answer (other than to a killed process) or
something left unverified; 2 bad options; 3 the run itself failed (a node did not start, hubs did
not connect, --max-time).
`;

interface Options {
  mode: 'cluster' | 'embedded';
  scenario: 'kill' | 'rolling' | 'both' | 'nats' | 'redis' | 'hang' | 'freeze' | 'all';
  hubs: number;
  devices: number;
  reportMs: number;
  commandRate: number;
  commandTimeoutMs: number;
  kills: number;
  gapS: number;
  outageS: number;
  blip: number;
  apps: number;
  appendfsync: 'always' | 'everysec' | 'no';
  env: Record<string, string>;
  seed: number;
  maxTimeS: number;
  json: boolean;
}

/** nodes in cluster mode; the embedded default is one */
const CLUSTER_NODES = 3;
/** how long a drained node may take to exit before it is killed */
const DRAIN_GRACE_MS = 20_000;
/** how long the hubs of a node may take to be back online and checked */
const BACK_MS = 30_000;
/** a hub gives up on its node after this long without an ack of its oldest report (ms; scenario freeze) */
const SILENCE_MS = 1_000;
/** a node is signalled right after it acknowledged a report sent at most this long before (ms) */
const FRESH_ACK_MS = 20;
/** ...or after this long without such an ack (ms), noted in the event */
const FRESH_WAIT_MS = 5_000;

function fail(message: string): never {
  return usageError('chaos', USAGE, message);
}

function parse(): Options {
  const values = commandLine('chaos', USAGE, {
    mode: { type: 'string', default: 'cluster' },
    scenario: { type: 'string', default: 'both' },
    hubs: { type: 'string', default: '300' },
    devices: { type: 'string', default: '4' },
    'report-ms': { type: 'string', default: '250' },
    'command-rate': { type: 'string', default: '30' },
    'command-timeout-ms': { type: 'string', default: '2000' },
    kills: { type: 'string', default: '3' },
    gap: { type: 'string', default: '5' },
    outage: { type: 'string', default: '2' },
    blip: { type: 'string', default: '0.2' },
    apps: { type: 'string', default: '10' },
    appendfsync: { type: 'string', default: 'everysec' },
    env: { type: 'string', multiple: true },
    seed: { type: 'string' },
    'max-time': { type: 'string', default: '600' },
    json: { type: 'boolean', default: false },
  });
  const num = (flag: string, v: string, min: number, max: number) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || n > max) fail(`--${flag} must be a number in ${min}..${max}, got ${v}`);
    return n;
  };
  const int = (flag: string, v: string, min: number, max: number) => {
    const n = num(flag, v, min, max);
    if (!Number.isInteger(n)) fail(`--${flag} must be an integer, got ${v}`);
    return n;
  };
  const mode = values.mode;
  if (mode !== 'cluster' && mode !== 'embedded') fail(`--mode must be cluster or embedded, got ${mode}`);
  const scenario = values.scenario;
  if (scenario !== 'kill' && scenario !== 'rolling' && scenario !== 'both' && scenario !== 'nats' && scenario !== 'redis' && scenario !== 'hang' && scenario !== 'freeze' && scenario !== 'all') {
    fail(`--scenario must be kill, rolling, both, nats, redis, hang, freeze or all, got ${scenario}`);
  }
  if (mode === 'embedded' && (scenario === 'nats' || scenario === 'redis' || scenario === 'hang' || scenario === 'all')) fail(`--scenario ${scenario} needs cluster mode: the embedded default has no nats-server or redis-server`);
  if (mode === 'embedded' && scenario === 'freeze') fail('--scenario freeze needs cluster mode: a frozen node\'s hubs need another node to go to');
  const appendfsync = values.appendfsync;
  if (appendfsync !== 'always' && appendfsync !== 'everysec' && appendfsync !== 'no') fail(`--appendfsync must be always, everysec or no, got ${appendfsync}`);
  const env: Record<string, string> = {};
  for (const kv of values.env ?? []) {
    const m = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(kv);
    if (!m) fail(`--env must be KEY=VALUE with an upper-case KEY, got ${kv}`);
    if (['NATS_URL', 'REDIS_URL', 'NODE_ID', 'PORT', 'ADMIN_PORT', 'ADMIN_TOKEN', 'JWT_SECRET'].includes(m[1]!)) fail(`--env ${m[1]} is set by the chaos tool`);
    env[m[1]!] = m[2]!;
  }
  return {
    mode,
    scenario,
    hubs: int('hubs', values.hubs, 3, 5_000),
    devices: int('devices', values.devices, 1, 64),
    reportMs: num('report-ms', values['report-ms'], 20, 60_000),
    commandRate: num('command-rate', values['command-rate'], 0, 2_000),
    commandTimeoutMs: int('command-timeout-ms', values['command-timeout-ms'], 100, 60_000),
    kills: int('kills', values.kills, 0, 30),
    gapS: num('gap', values.gap, 0, 600),
    outageS: num('outage', values.outage, 0, 600),
    blip: num('blip', values.blip, 0, 1),
    apps: int('apps', values.apps, 0, 1_000),
    appendfsync,
    env,
    seed: values.seed === undefined ? randomBytes(4).readUInt32LE(0) : int('seed', values.seed, 0, 2 ** 32 - 1),
    maxTimeS: num('max-time', values['max-time'], 10, 86_400),
    json: values.json,
  };
}

const say = (line: string) => process.stderr.write(`chaos: ${line}\n`);
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function git(args: string[]): string {
  try {
    return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch {
    return '';
  }
}

async function main(): Promise<void> {
  const o = parse();
  const deadline = setTimeout(() => {
    say(`--max-time ${o.maxTimeS} s reached: aborting`);
    process.exit(3);
  }, o.maxTimeS * 1000);
  deadline.unref();
  // Ctrl-C: the exit hooks of load/harness kill every process this run started
  process.on('SIGINT', () => process.exit(130));
  process.on('SIGTERM', () => process.exit(143));

  const rng = new Random(o.seed);
  const started = performance.now();
  const loadAtStart = loadavg()[0]!;
  const nodes = o.mode === 'embedded' ? 1 : CLUSTER_NODES;
  say(`seed ${o.seed}; starting ${o.mode === 'embedded' ? 'one node of the embedded default' : `nats-server, redis-server (appendfsync ${o.appendfsync}) and ${nodes} nodes`}`);
  const cluster = await ChaosCluster.start({ mode: o.mode, nodes, appendfsync: o.appendfsync, env: { TIER_HISTORY_SIZE: '5000', ...o.env } });
  say(`nodes up: ${cluster.nodes.map((n) => `${n.id} pid ${n.proc.pid} :${n.port}`).join(', ')}`);
  const fleet = new HubFleet(cluster, rng, { hubs: o.hubs, devices: o.devices, reportMs: o.reportMs, prefix: `chaos-${o.seed.toString(36)}` });
  await fleet.provision();
  await fleet.connectAll(60_000);
  const commands = new CommandStream(cluster, fleet.hubIds(), o.devices, rng, { rate: o.commandRate, timeoutMs: o.commandTimeoutMs });
  // apps reach the nodes as through a Kubernetes Service: each connection to a node that is up
  const balancer = await Balancer.start(cluster, rng);
  const apps = o.apps > 0 ? await AppWatch.start(balancer.url, cluster.adminToken, fleet.homes(), o.apps, (home) => fleet.counters('sent', home).get(home) ?? new Map(), fleet.order) : null;
  fleet.startReports();
  commands.start();
  const t0 = performance.now();
  say(`${o.hubs} hubs online; traffic started`);

  const events: EventReport[] = [];
  /** the apps' reloads so far when each fault was signalled: `too_old` apart, and `too_old` */
  const reloadMarks: Array<[number, number]> = [];
  const reloadsNow = (): [number, number] => [apps?.reloadCount ?? 0, apps?.lossReloadCount ?? 0];
  const signalled = new Set<number>();
  const event = async (kind: EventReport['kind'], round: number, of: number, index: number) => {
    await sleep((o.gapS * 1000) / 2);
    const blipped = fleet.blip(Math.round(o.hubs * o.blip));
    await sleep((o.gapS * 1000) / 2);
    const stalledBefore = fleet.stalled(STALL_MS);
    const backend = kind === 'kill' || kind === 'rolling' || kind === 'freeze' ? null : cluster.backend(kind.startsWith('nats') ? 'nats' : 'redis');
    const hang = kind.endsWith('-hang');
    const node = backend ? null : cluster.nodes[index]!;
    const pid = backend ? backend.pid : node!.proc.pid;
    if (node) signalled.add(pid);
    reloadMarks.push(reloadsNow());
    const name = `${kind} ${round}/${of}`;
    // a backend's fault hits every node: signalled when one of them is acknowledging
    const underTraffic = await fleet.whenFlowing(node ? pid : rng.pick(cluster.up())!.proc.pid, FRESH_ACK_MS, FRESH_WAIT_MS);
    const hubsOnNode = node ? fleet.onProcess(pid) : fleet.online();
    const atS = (performance.now() - t0) / 1000;
    let exitMs: number;
    let restartMs: number;
    let allBack: boolean;
    let abandoned = 0;
    const extra: Pick<EventReport, 'exitCode' | 'forced'> = {};
    if (backend && hang) {
      backend.pause();
      exitMs = 0;
      await sleep(o.outageS * 1000);
      backend.resume();
      restartMs = 0;
      allBack = await fleet.waitOnline(BACK_MS);
    } else if (backend) {
      const t = performance.now();
      await backend.kill();
      exitMs = performance.now() - t;
      await sleep(o.outageS * 1000);
      const r = performance.now();
      await backend.restart();
      restartMs = performance.now() - r;
      allBack = await fleet.waitOnline(BACK_MS);
    } else if (kind === 'freeze') {
      cluster.freeze(index);
      exitMs = 0;
      const until = performance.now() + o.outageS * 1000;
      while (performance.now() < until) {
        abandoned += fleet.abandonSilent(pid, SILENCE_MS);
        await sleep(50);
      }
      cluster.thaw(index);
      restartMs = 0;
      // hubs that had not given up stay on it: every hub online and checked, wherever it is
      allBack = await fleet.waitOnline(BACK_MS);
    } else if (kind === 'kill') {
      ({ exitMs } = await cluster.kill(index));
      // restarted at once, as a supervisor would; the hubs meanwhile reconnect to the others
      const restart = cluster.restart(index);
      allBack = await fleet.waitBack(pid, BACK_MS);
      ({ readyMs: restartMs } = await restart);
    } else {
      const stop = await cluster.terminate(index, DRAIN_GRACE_MS);
      exitMs = stop.exitMs;
      extra.exitCode = stop.code;
      extra.forced = stop.forced;
      ({ readyMs: restartMs } = await cluster.restart(index));
      allBack = await fleet.waitBack(pid, BACK_MS);
    }
    // a backend's fault ends no session of its own: sessions that ended count under their nodes (other closes)
    const ledger = ledgerReport(node ? fleet.byPid.get(pid) : undefined);
    const ev: EventReport = {
      name,
      kind,
      node: node ? node.id : `${backend!.kind}-server`,
      pid,
      atS: Math.round(atS * 10) / 10,
      hubsOnNode,
      exitMs: Math.round(exitMs),
      ...extra,
      restartMs: Math.round(restartMs),
      allBack,
      underTraffic,
      blipped,
      stalledBefore,
      ledger,
      commandsUndefined: node ? (commands.tally.undefinedByPid.get(pid) ?? 0) : 0,
      appReloads: 0, appLossReloads: 0,
    };
    events.push(ev);
    const signal = kind === 'rolling' ? 'SIGTERM' : hang || kind === 'freeze' ? 'SIGSTOP' : 'SIGKILL';
    say(
      `${name}: ${blipped} hubs blipped before; ${stalledBefore} stalled; ${ev.node} (pid ${pid}, ${hubsOnNode} hubs) ${signal}, gone in ${Math.round(exitMs)} ms` +
        `${kind === 'rolling' ? ` (exit ${ev.forced ? 'forced' : String(ev.exitCode)})` : ''}` +
        `${underTraffic ? '' : ` (no ack within ${FRESH_ACK_MS} ms of its report for ${FRESH_WAIT_MS / 1000} s: signalled anyway)`}; ` +
        (kind === 'freeze'
          ? `frozen ${o.outageS} s, then SIGCONT; ${abandoned} hubs gave up on it; hubs ${allBack ? 'all online and checked' : 'NOT ALL online within the limit'}`
          : backend && hang
          ? `hung ${o.outageS} s, then SIGCONT; hubs ${allBack ? 'all online' : 'NOT ALL online within the limit'}`
          : backend
          ? `down ${o.outageS} s, restarted in ${(restartMs / 1000).toFixed(1)} s as pid ${backend.pid}; hubs ${allBack ? 'all online' : 'NOT ALL online within the limit'}`
          : `hubs back and checked ${allBack ? `(max ${(ledger.backMaxMs / 1000).toFixed(1)} s)` : 'NOT ALL within the limit'}; ` +
            `acknowledged reports lost ${ledger.lost} on ${ledger.hubsWithLoss} hubs; restarted in ${(restartMs / 1000).toFixed(1)} s as pid ${node!.proc.pid}`),
    );
  };

  const has = (k: 'kill' | 'rolling' | 'nats' | 'redis' | 'hang' | 'freeze') => o.scenario === k || o.scenario === 'all' || (o.scenario === 'both' && (k === 'kill' || k === 'rolling'));
  if (has('kill')) for (let k = 0; k < o.kills; k++) await event('kill', k + 1, o.kills, k % nodes);
  if (has('rolling')) for (let k = 0; k < nodes; k++) await event('rolling', k + 1, nodes, k);
  if (has('nats')) await event('nats', 1, 1, -1);
  if (has('redis')) await event('redis', 1, 1, -1);
  if (has('hang')) {
    await event('nats-hang', 1, 1, -1);
    await event('redis-hang', 1, 1, -1);
  }
  if (has('freeze')) await event('freeze', 1, 1, 1);
  await sleep(o.gapS * 1000);
  const stalledAtEnd = fleet.stalled(STALL_MS);

  say('stopping traffic; waiting for every hub to be online with nothing unacknowledged, then reading every shadow');
  await commands.stop();
  const notIdle = await fleet.finalCheck(30_000);
  await apps?.settle(1_000, 15_000);
  const appsReport = apps?.report(apps.missedAcked(fleet.counters('acked')), balancer.byNode) ?? null;
  // the reloads after each fault, until the next one (or the end)
  reloadMarks.push(reloadsNow());
  events.forEach((e, i) => {
    e.appReloads = reloadMarks[i + 1]![0] - reloadMarks[i]![0];
    e.appLossReloads = reloadMarks[i + 1]![1] - reloadMarks[i]![1];
  });
  const durationS = (performance.now() - started) / 1000;

  const other = newLedger();
  for (const [pid, l] of fleet.byPid) {
    if (signalled.has(pid)) continue;
    for (const k of ['sessionsEnded', 'checked', 'lost', 'hubsWithLoss', 'late', 'cursorBehind', 'cursorFramesBehind', 'unreadable'] as const) other[k] += l[k];
    other.backMs.push(...l.backMs);
  }
  const otherReport = ledgerReport(other);
  const blipsReport = ledgerReport(fleet.blips);
  const end = { ...ledgerReport(fleet.end), notIdle, stalled: stalledAtEnd };
  const base: Omit<RunReport, 'failures' | 'pass'> = {
    tool: 'chaos',
    commit: git(['rev-parse', '--short', 'HEAD']),
    serverCommit: git(['log', '-1', '--format=%h', '--', 'src', 'proto']),
    srcClean: git(['status', '--porcelain', '--', 'src', 'proto']) === '',
    seed: o.seed,
    options: { mode: o.mode, scenario: o.scenario, hubs: o.hubs, devices: o.devices, reportMs: o.reportMs, commandRate: o.commandRate, commandTimeoutMs: o.commandTimeoutMs, kills: o.kills, gapS: o.gapS, outageS: o.outageS, blip: o.blip, apps: o.apps, appendfsync: o.appendfsync, env: o.env },
    durationS: Math.round(durationS * 10) / 10,
    machine: { cpus: cpus().length, loadAvg1mStart: loadAtStart, loadAvg1mEnd: loadavg()[0]! },
    events,
    other: otherReport,
    blips: blipsReport,
    end,
    totals: {
      lostAckedReports: events.reduce((a, e) => a + e.ledger.lost, 0) + otherReport.lost + blipsReport.lost + end.lost,
      lostPerKill: events.filter((e) => e.kind === 'kill').map((e) => e.ledger.lost),
      lostPerRestart: events.filter((e) => e.kind === 'rolling').map((e) => e.ledger.lost),
      reportsSent: fleet.stats.reportsSent,
    },
    commands: commandsReport(commands.tally),
    apps: appsReport,
    hubs: { closes: { ...fleet.stats.closes }, connectErrors: { ...fleet.stats.connectErrors }, errorFrames: { ...fleet.stats.errorFrames }, gaveUp: fleet.stats.gaveUp },
  };
  const failures = failuresOf(base);
  const report: RunReport = { ...base, failures, pass: failures.length === 0 };

  await apps?.close();
  await balancer.close();
  await fleet.close();
  await cluster.close();
  const text = formatReport(report);
  if (o.json) {
    process.stderr.write(`${text}\n`);
    process.stdout.write(`${JSON.stringify(report)}\n`);
  } else process.stdout.write(`${text}\n`);
  process.exit(report.pass ? 0 : 1);
}

main().catch((err: unknown) => {
  say(`the run failed: ${(err as Error).stack ?? String(err)}`);
  process.exit(3);
});
