/** `npm run chaos`: faults under traffic and what they lose; its usage and options are in chaos/options.ts. */
import { execFileSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { ROOT } from './harness/index.js';
import { AppWatch } from './chaos/apps.js';
import { Balancer } from './chaos/balancer.js';
import { ChaosCluster } from './chaos/cluster.js';
import { CommandStream } from './chaos/commands.js';
import { HubFleet } from './chaos/fleet.js';
import { newLedger } from './chaos/ledger.js';
import { parse, type Fault } from './chaos/options.js';
import { Random } from './chaos/random.js';
import { commandsReport, failuresOf, formatReport, ledgerReport, STALL_MS, type EventReport, type RunReport } from './chaos/summary.js';

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

  const has = (k: Fault) => o.faults.has(k);
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
