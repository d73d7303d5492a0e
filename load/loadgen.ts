import { writeFileSync } from 'node:fs';
import { sleep } from './lib/async.js';
import type { Histogram } from './lib/histogram.js';
import { Fleet, partition, type FleetView } from './loadgen/fleet.js';
import { emptyCounters, STEADY_LATENCIES, type AppSpec, type ConnectResult, type Counters, type HubSpec, type StormResult, type WorkerConfig } from './loadgen/ipc.js';
import { parse, sources } from './loadgen/options.js';
import type { Drained } from './loadgen/traffic.js';
import { cpuSeconds, pssOf, rssOf, serverRss } from './loadgen/process-usage.js';
import { errorsSplit, finalReport, type StormSummary, type Usage } from './loadgen/report.js';

/**
 * The load tool (`npm run load`): simulated hubs and app subscribers at scale in worker processes
 * (loadgen/), against any node URL, through the phases of a scenario; then the report. Options and
 * usage text: loadgen/options.ts.
 */

const say = (line: string) => process.stdout.write(`${line}\n`);

/** the longest wait after the connects for the hubs' first reports to be acknowledged */
const SETTLE_MAX_MS = 60_000;

async function main(): Promise<void> {
  const o = parse();
  const startedAt = new Date();
  const homes = Math.ceil(o.hubs / 10);
  // a home's hubs all go to one target: its subscriber sees them on the node it is connected to
  const hubs: HubSpec[] = Array.from({ length: o.hubs }, (_, i) => ({ id: `${o.prefix}-${i}`, home: `${o.prefix}-home-${Math.floor(i / 10)}`, target: Math.floor(i / 10) % o.urls.length }));
  // subscribers spread evenly over the homes (and so over the workers and the report cycle)
  const apps: AppSpec[] = Array.from({ length: o.apps }, (_, i) => {
    const home = o.apps >= homes ? i % homes : Math.floor((i * homes) / o.apps);
    return { homes: [`${o.prefix}-home-${home}`], target: home % o.urls.length };
  });
  const parts = partition(hubs, apps, o.workers);
  const configs: WorkerConfig[] = parts.map((p, w) => ({
    targets: o.urls,
    hubs: p.hubs,
    devices: o.devices,
    // each worker binds its own addresses (or its own slice of the ports of a shared one), with
    // explicit ports, so no two workers race for a port and the kernel never searches for one
    ...sources(o.sourceAddresses, w, o.workers),
    connectConcurrency: 256,
    connectTimeoutMs: 30_000,
    adminToken: o.adminToken,
    signed: true,
    fill: true,
    reconnect: true,
    apps: p.apps,
  }));

  say(`load: ${o.scenario} against ${o.urls.join(', ')}: ${o.hubs} hubs x ${o.devices} devices, ${o.apps} app subscribers, ${o.workers} worker(s)` + (o.sourceAddresses.length > 0 ? `, source addresses 127.0.0.2-${o.sourceAddresses.at(-1)}` : ''));
  const fleet = await Fleet.start(configs);
  let interrupted = false;
  process.on('SIGINT', () => {
    if (interrupted) {
      fleet.kill();
      process.exit(130);
    }
    interrupted = true;
    say('load: interrupted: stopping (Ctrl-C again to kill)');
  });

  const memory: Array<{ t: number; rssBytes: number }> = [];
  const t0 = Date.now();
  let last = { at: Date.now(), c: emptyCounters() };
  let phase = 'provisioning';
  const progress = setInterval(() => {
    void (async () => {
      const v = fleet.interval();
      const now = Date.now();
      const dt = (now - last.at) / 1000;
      const rate = (k: keyof Omit<Counters, 'errors'>) => Math.round((v.counters[k] - last.c[k]) / dt);
      const errs = errorsSplit(v.counters.errors);
      const p99 = (h: Histogram) => (h.totalCount === 0 ? '-' : (h.getValueAtPercentile(99) / 1000).toFixed(1));
      const rss = await serverRss(o.serverPids, o.metricsUrls);
      if (rss !== null && (memory.length === 0 || now - memory.at(-1)!.t >= 5_000)) memory.push({ t: now, rssBytes: rss });
      say(
        `[${String(Math.round((now - t0) / 1000)).padStart(5)}s ${phase.padEnd(11)}] connected ${v.counters.connected}/${o.hubs} apps ${v.counters.apps}/${o.apps}` +
          ` | reports ${rate('reportsSent')}/s events ${rate('eventsReceived')}/s | cmds ${rate('commandsOk')}/s` +
          ` | errors ${errs.other} admission ${errs.admission} | p99 ms: connect ${p99(v.connect)} cmd ${p99(v.command)} report→app ${p99(v.reportToApp)} report→ack ${p99(v.reportToAck)} load loop ${p99(v.loopDelay)}` +
          (rss !== null ? ` | server rss ${(rss / 2 ** 20).toFixed(0)} MB` : ''),
      );
      last = { at: now, c: v.counters };
    })();
  }, 1_000);

  let storm: StormSummary | null = null;
  let connect: ConnectResult | null = null;
  let connectedAt: number | null = null;
  let fatal: Error | null = null;
  let usage: Usage | null = null;
  let beforeSteady: FleetView | null = null;
  const until = async (ms: number) => {
    const end = Date.now() + ms;
    while (Date.now() < end && !interrupted) await sleep(Math.min(250, end - Date.now()));
  };
  try {
    const prov = await fleet.all<{ ok: number; failed: number }, 'provision'>('provision');
    const provFailed = prov.reduce((n, p) => n + p.failed, 0);
    if (provFailed === o.hubs) throw new Error(`no hub could be provisioned: ${JSON.stringify((await fleet.snapshot()).counters.errors)}`);
    phase = 'connecting';
    const perWorker = o.ramp > 0 ? o.ramp / o.workers : 0;
    const results = await fleet.all<ConnectResult, 'connect'>('connect', { perSec: perWorker });
    connect = { ok: results.reduce((n, r) => n + r.ok, 0), failed: results.reduce((n, r) => n + r.failed, 0), elapsedMs: Math.max(...results.map((r) => r.elapsedMs)) };
    connectedAt = Date.now();
    say(`load: ${connect.ok} hubs connected in ${(connect.elapsedMs / 1000).toFixed(1)} s (${Math.round((connect.ok * 1000) / connect.elapsedMs)}/s), ${connect.failed} failed`);
    phase = 'apps';
    await fleet.all('apps');
    if (o.scenario !== 'storm') {
      // the report's latencies are the steady phase's (what an SLO judges): the first reports of hubs
      // still connecting waited behind the others' handshakes, and are reported apart, once acknowledged
      phase = 'settling';
      const settleBy = Date.now() + SETTLE_MAX_MS;
      for (let s = await fleet.snapshot(); s.counters.reportAcks < s.counters.reportsSent && Date.now() < settleBy && !interrupted; s = await fleet.snapshot()) await sleep(250);
      beforeSteady = await fleet.snapshot();
      await fleet.all('reset', { latencies: STEADY_LATENCIES });
    }
    await fleet.all('reports', { everyMs: o.reportEveryS * 1000 });
    if (o.commandRate > 0) await fleet.all('commands', { perSec: o.commandRate / o.workers });
    if (o.scenario === 'storm') {
      phase = 'warmup';
      await until(o.warmupS * 1000);
      phase = 'storm';
      say(`load: storm: every hub drops its connection now and reconnects at once`);
      const r = await fleet.all<StormResult, 'storm'>('storm', { deadlineMs: o.stormDeadlineS * 1000 });
      const hubsDropped = r.reduce((n, x) => n + x.hubs, 0);
      const back = r.reduce((n, x) => n + x.back, 0);
      const allBackMs = Math.max(...r.map((x) => x.allBackMs));
      storm = { hubs: hubsDropped, back, allBackMs, allBackS: Math.round(allBackMs) / 1000, attempts: r.reduce((n, x) => n + x.attempts, 0), workers: r };
      say(`load: storm: ${back}/${hubsDropped} hubs back in ${(allBackMs / 1000).toFixed(2)} s (${storm.attempts} attempts)`);
      phase = 'after storm';
      await until(5_000);
    } else {
      phase = o.scenario;
      const cpu0 = { at: Date.now(), server: cpuSeconds(o.serverPids), clients: cpuSeconds(fleet.pids()) };
      await until(o.durationS * 1000);
      const s = (Date.now() - cpu0.at) / 1000;
      usage = {
        seconds: Math.round(s),
        serverCores: o.serverPids.length > 0 ? Math.round(((cpuSeconds(o.serverPids) - cpu0.server) / s) * 100) / 100 : null,
        clientCores: Math.round(((cpuSeconds(fleet.pids()) - cpu0.clients) / s) * 100) / 100,
        clientRssMB: Math.round(rssOf(fleet.pids()) / 2 ** 20),
        serverPssMB: o.serverPids.length > 0 ? Math.round(pssOf(o.serverPids) / 2 ** 20) : null,
        clientPssMB: Math.round(pssOf(fleet.pids()) / 2 ** 20),
      };
    }
    // what is in flight when the phase ends is waited for a bounded time, then counted: a node that
    // stopped answering shows as errors and as latencies, not as fewer samples
    phase = 'draining';
    const open = await fleet.all<Drained, 'drain'>('drain', { waitMs: o.drainS * 1000 });
    const left = open.reduce((n, d) => n + d.commandsUnanswered + d.reportsUnacknowledged + d.reportsUndelivered, 0);
    if (left > 0) say(`load: after ${o.drainS} s of drain, still open: ${open.reduce((n, d) => n + d.commandsUnanswered, 0)} commands unanswered, ${open.reduce((n, d) => n + d.reportsUnacknowledged, 0)} reports unacknowledged, ${open.reduce((n, d) => n + d.reportsUndelivered, 0)} report deliveries to apps missing`);
  } catch (err) {
    fatal = err as Error;
  }
  phase = 'stopping';
  const snap = await fleet.snapshot().catch(() => null);
  clearInterval(progress);
  await fleet.stop();

  const { report, lines, passed } = finalReport({ o, startedAt, t0, snap, beforeSteady, lastCounters: last.c, memory, connect, connectedAt, storm, usage, fatal });
  writeFileSync(o.reportFile, `${JSON.stringify(report, null, 2)}\n`);
  for (const line of lines) say(line);
  say(`report: ${o.reportFile}`);
  process.exit(fatal ? 3 : passed ? 0 : 1);
}

main().catch((err: unknown) => {
  process.stderr.write(`load: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(3);
});
