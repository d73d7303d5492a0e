import { join } from 'node:path';
import { cpus, tmpdir } from 'node:os';
import { Fleet } from '../load/loadgen/fleet.js';
import { table } from '../load/lib/histogram.js';
import { cannon, commandPaths, type CannonResult } from './lib/cannon.js';
import { paced } from './lib/paced.js';
import { countSyscalls } from './lib/syscalls.js';
import { startNode } from '../load/harness/index.js';
import { startRelayFloor } from './lib/floor.js';
import { cpuProfFlags, inSpan, mainThreadProfile, summarizeProfile, type Span } from './lib/profile-summary.js';
import { parse } from './lib/run-args.js';
import { say, hubSpecs, appSpecs, workerConfig, hubsOnline, telemetryRunsOf, medianRound, median, historyPairs, latencyOf, round, type TelemetryResult } from './lib/fleet-runs.js';
import { pooledHistoryRatio, type PooledRatio } from './lib/history-bound.js';
import { clusterNodes } from './lib/cluster-runs.js';
import { startSpanSink } from './lib/span-sink.js';
import { printResult, runMain } from './lib/output.js';

async function main(): Promise<void> {
  const args = parse();
  const started = Date.now();
  const stops: Array<() => Promise<void>> = [];
  const cleanup = async () => {
    for (const s of stops.reverse()) await s().catch(() => {});
  };
  process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));
  const sink = args.traceRatio === null ? null : await startSpanSink();
  if (sink) {
    stops.push(() => sink.close());
    Object.assign(args.nodeEnv, { OTEL_EXPORTER_OTLP_ENDPOINT: sink.url, TIER_TRACE_RATIO: String(args.traceRatio) });
    say(`tracing on: spans to a counting sink at ${sink.url}, ratio ${String(args.traceRatio)}`);
  }

  const rows: Array<Array<string | number>> = [['run', 'target', 'req/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'server cpu µs/req', 'of it kernel', 'hubs cpu µs/req', 'errors', 'late']];
  const row = (name: string, target: string, r: CannonResult) =>
    rows.push([name, target, r.perSec, r.p50Ms, r.p99Ms, r.p999Ms, r.cpuUsPerReq, r.cpuSysUsPerReq, r.otherCpuUsPerReq.hubs ?? '', r.non2xx + r.errors + r.timeouts, r.late]);
  // report → app: events delivered per second, server cpu per report sent, errors the hubs and apps met, with the
  // reports still unacknowledged or undelivered 3 s after the round stopped sending; report → ack: acks that
  // covered a hub's newest unacknowledged report, per second
  const telemetryRows = (name: string, target: string, t: TelemetryResult) => {
    rows.push([`${name} (report → app)`, target, Math.round(t.delivered / args.durationS), t.p50Ms, t.p99Ms, t.p999Ms, t.cpuUsPerReport ?? '', '', '', t.errors, '']);
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
    // --cpu-prof summarizes the measured rounds only, not start-up, provisioning, handshakes or warm-up
    const measured: Span[] = [];
    const measuring = <T>(run: () => Promise<T>): Promise<T> => inSpan(measured, run);
    const node = await startNode({ env: args.nodeEnv, ...(args.cpuProf ? { nodeFlags: cpuProfFlags(profDir) } : {}) });
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
        serverSats.push(await measuring(() => cannon({ ...onNode, ...post, path: nodePaths, durationS: d })));
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
        serverAts.push(await measuring(() => paced({ ...onNode, ...post, path: nodePaths, durationS: d, rate })));
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
      await floorFleet.all('apps');
      await nodeFleet.all('apps');
      // --history both: a second node without history, its own hubs, in the same rounds
      // with --cpu-prof its profile goes beside the first node's, in a directory of its own
      const plainProf = args.cpuProf ? { nodeFlags: cpuProfFlags(join(profDir, 'history-off')) } : {};
      const plain = args.historyBoth ? await startNode({ env: { ...args.nodeEnv, TIER_HISTORY_SIZE: '0' }, ...plainProf }) : null;
      const plainFleet = plain ? await Fleet.start([workerConfig(plain.wsUrl, hubSpecs(args.hubs, 'n'), true, plain.adminToken, appSpecs(hubSpecs(args.hubs, 'n')))]) : null;
      if (plain && plainFleet) {
        stops.push(() => plain.stop(), () => plainFleet.stop());
        await hubsOnline(plainFleet, 'server without history', true);
        await plainFleet.all('apps');
      }
      const targets = [{ fleet: floorFleet, pid: floor.pid }, { fleet: nodeFleet, pid: node.pid }, ...(plain && plainFleet ? [{ fleet: plainFleet, pid: plain.pid }] : [])];
      // the usual rate, then the peak (where this machine may saturate: its figures say so)
      for (const [key, rate] of [['telemetry', args.telemetryRate], ['telemetryPeak', args.telemetryPeak]] as const) {
        if (rate === 0) continue;
        say(`telemetry: ${rate} reports/s, report → app subscriber and report → ack, ${d} s each`);
        const runs = await measuring(() => telemetryRunsOf(targets, args, rate));
        const [tf, ts, tn] = runs.map(medianRound);
        telemetryRows(`telemetry @ ${rate}/s`, 'relay floor', tf!);
        telemetryRows(`telemetry @ ${rate}/s`, plainFleet ? 'server, history on' : 'server', ts!);
        if (tn) telemetryRows(`telemetry @ ${rate}/s`, 'server, history off', tn);
        for (const [target, t] of [['relay floor', tf!], ['server', ts!], ['server, history off', tn]] as const) {
          if (t) say(`  ${target}: CPU µs per report by thread (median round): ${threadSplit(t.cpuUsPerReportByThread)}`);
        }
        out[key] = { ...telemetrySummary(rate, tf!, ts!, tn), ...(runs[2] ? { ...historyPairs(runs[1]!, runs[2]), historyP99Pooled: pooledHistoryRatio(runs[1]!.map(latencyOf), runs[2].map(latencyOf)) } : {}) };
      }
      await plainFleet?.stop();
      await plain?.stop();
      const plainProfile = plain && args.cpuProf ? mainThreadProfile(join(profDir, 'history-off'), plain.pid) : undefined;
      if (plainProfile) say(`server without history, CPU profile: ${plainProfile}\n${summarizeProfile(plainProfile, 25, measured)}`);
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
      const newest = mainThreadProfile(profDir, node.pid);
      if (newest) {
        say(`server CPU profile: ${newest}`);
        say(summarizeProfile(newest, 25, measured));
        out.cpuProfile = newest;
      }
    }

    if (args.variants.has('cross') || args.variants.has('telemetry')) {
      const at = args.latencyRate;
      const cluster = await clusterNodes(args, at, stops, args.variants.has('telemetry') ? { fleet: floorFleet, pid: floor.pid } : null);
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
  if (sink) {
    out.trace = { ratio: args.traceRatio, spansExported: sink.spans() };
    summary.push(`tracing on at ratio ${String(args.traceRatio)}: ${sink.spans()} spans exported during the run`);
  }
  const c = out.crossNode as { status: string; addedP50Ms?: number } | undefined;
  if (c?.status === 'ok') {
    const e = (out.crossNode as { addedP50MsOverEmbedded: number | null }).addedP50MsOverEmbedded;
    summary.push(`cross-node at ${args.latencyRate}/s: ${String(c.addedP50Ms)} ms added at p50 over same-node in cluster mode, ${String(e)} ms over the embedded node`);
  }
  if (c?.status === 'skipped') summary.push('cross-node: skipped (cluster mode unavailable)');
  type Tel = { rate: number; p50Ms: number; p99Ms: number; ackP50Ms: number; ackP99Ms: number; floorP50Ms: number; floorP99Ms: number; floorAckP50Ms: number; floorAckP99Ms: number };
  const telLine = (where: string, t: Tel) =>
    `telemetry at ${t.rate}/s, ${where}: report → app p50/p99 ${t.p50Ms}/${t.p99Ms} ms (floor ${t.floorP50Ms}/${t.floorP99Ms}); report → ack p50/p99 ${t.ackP50Ms}/${t.ackP99Ms} ms (floor ${t.floorAckP50Ms}/${t.floorAckP99Ms})`;
  type Pairs = { rate: number; historyP99Ratio?: number; historyP99RatiosByRound?: number[]; historyP99RatioMedianOfRounds?: number; historyP99Pooled?: PooledRatio };
  const pairsLine = (t: Pairs) =>
    t.historyP99RatiosByRound && t.historyP99Pooled
      ? [
          `history on / off at ${t.rate}/s, report → app p99: ${String(t.historyP99Ratio)} (medians); round by round ${t.historyP99RatiosByRound.join(', ')}, median ${String(t.historyP99RatioMedianOfRounds)}`,
          `  every round pooled: ${t.historyP99Pooled.onP99Ms} / ${t.historyP99Pooled.offP99Ms} ms, ${t.historyP99Pooled.ratio} (90 % of ${t.historyP99Pooled.resamples} resamples of the rounds: ${t.historyP99Pooled.low}–${t.historyP99Pooled.high})`,
        ]
      : [];
  if (out.telemetry) summary.push(telLine('embedded node', out.telemetry as Tel), ...pairsLine(out.telemetry as Pairs));
  if (out.telemetryPeak) summary.push(telLine('embedded node', out.telemetryPeak as Tel), ...pairsLine(out.telemetryPeak as Pairs));
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
  printResult(args.json, text, out);
}

runMain('bench', main);

function threadSplit(byThread: Record<string, number>): string {
  return Object.entries(byThread).sort((a, b) => b[1] - a[1]).map(([name, us]) => `${name} ${us}`).join(', ') || 'unknown';
}

/** The JSON of one telemetry rate: the server's figures against the floor's (and without history, if run). */
function telemetrySummary(rate: number, tf: TelemetryResult, ts: TelemetryResult, tn: TelemetryResult | undefined) {
  return {
    rate,
    p50Ms: ts.p50Ms,
    p99Ms: ts.p99Ms,
    ackP50Ms: ts.ack.p50Ms,
    ackP99Ms: ts.ack.p99Ms,
    floorP50Ms: tf.p50Ms,
    floorP99Ms: tf.p99Ms,
    floorAckP50Ms: tf.ack.p50Ms,
    floorAckP99Ms: tf.ack.p99Ms,
    cpuUsPerReport: ts.cpuUsPerReport,
    floorCpuUsPerReport: tf.cpuUsPerReport,
    server: ts,
    floor: tf,
    ...(tn ? { historyOff: tn, historyP99Ratio: round(ts.p99Ms / Math.max(0.001, tn.p99Ms)) } : {}),
  };
}
