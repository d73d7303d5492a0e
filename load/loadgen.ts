import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { Fleet, partition } from './fleet.js';
import { addCounters, emptyCounters, type AppSpec, type ConnectResult, type Counters, type HubSpec, type StormResult, type WorkerConfig } from './fleet-protocol.js';
import { encodeHistogram, summarize, table, type Histogram, type LatencySummary } from './lib/histogram.js';

const USAGE = `hubtier load tool: simulated hubs and app subscribers at scale, against any node URL.

usage: npm run load -- --url ws://HOST:PORT --admin-token TOKEN [options]

scenarios (--scenario):
  steady     N hubs x M devices reporting every T s, plus A app subscribers (default)
  commands   steady, plus HTTP commands at --command-rate across the hubs
  storm      steady for --warmup s, then every hub drops its TCP connection at once and reconnects
             at once; measures how long until all are back, and the errors on the way
  soak       steady for a long time (--duration, default 1800 s), watching server memory

options:
  --url URL              ws:// or wss:// address of a node; repeat it for several nodes (hubs are
                         spread over them; each is provisioned on its own node)
  --admin-token T        administrator token (default $ADMIN_TOKEN): provisioning, app tokens, commands
  --hubs N               hubs (default 1000)           --devices M        sub-devices per hub (default 8)
  --report-every S       seconds between reports of a hub (default 10; commands: 60)
  --apps A               app subscribers, one home each (default hubs/10, at most 1000)
  --command-rate R       HTTP commands per second over all hubs (default 0; commands: 100)
  --duration S           seconds of load after everything is connected (default 60; soak 1800)
  --warmup S             storm: seconds of steady load before the storm (default 10)
  --storm-deadline S     storm: give up waiting for reconnects after this (default 60)
  --ramp R               new hub connections per second while connecting (default 1000; 0: no limit)
  --workers W            client processes (default: one per 18,500 sockets)
  --source-addresses K   spread connections over 127.0.0.2 .. 127.0.0.(K+1), explicit source ports
                         below the ephemeral range (default: one per worker when the target is
                         loopback; 0: the system's choice)
  --prefix P             hub ids P-0, P-1, ... (default lt-<random>); homes P-home-<i/10>
  --server-pid PID       watch the resident memory of these node processes (comma list; local targets)
  --metrics-url URL      or read process_resident_memory_bytes from these /metrics URLs (comma list)
  --slo LIST             thresholds that make the run exit 1 when missed, e.g.
                         connect.p99=1000,command.p99=50,report.p99=100,errors=0,storm.s=10,rss.mb=2048
                         (latencies in ms; errors = errors other than admission control's)
  --report FILE          JSON report (default load-report-<scenario>-<time>.json)
  -h, --help             this text

Every run is bounded: it stops by itself after the phases above and says bye from every hub.
`;

const ADMISSION = /(^|:)(rate_limited|busy|draining|overloaded|too_many_requests|http_429|http_503|admission\w*)$/;

interface Options {
  urls: string[];
  adminToken: string;
  scenario: 'steady' | 'commands' | 'storm' | 'soak';
  hubs: number;
  devices: number;
  reportEveryS: number;
  apps: number;
  commandRate: number;
  durationS: number;
  warmupS: number;
  stormDeadlineS: number;
  ramp: number;
  workers: number;
  sourceAddresses: string[];
  prefix: string;
  serverPids: number[];
  metricsUrls: string[];
  slo: Array<{ key: string; limit: number }>;
  reportFile: string;
}

function fail(msg: string): never {
  process.stderr.write(`load: ${msg}\n\n${USAGE}`);
  process.exit(2);
}

function parse(): Options {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        url: { type: 'string', multiple: true },
        'admin-token': { type: 'string' },
        scenario: { type: 'string', default: 'steady' },
        hubs: { type: 'string', default: '1000' },
        devices: { type: 'string', default: '8' },
        'report-every': { type: 'string' },
        apps: { type: 'string' },
        'command-rate': { type: 'string' },
        duration: { type: 'string' },
        warmup: { type: 'string', default: '10' },
        'storm-deadline': { type: 'string', default: '60' },
        ramp: { type: 'string', default: '1000' },
        workers: { type: 'string' },
        'source-addresses': { type: 'string' },
        prefix: { type: 'string' },
        'server-pid': { type: 'string' },
        'metrics-url': { type: 'string' },
        slo: { type: 'string' },
        report: { type: 'string' },
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
  const scenario = values.scenario;
  if (scenario !== 'steady' && scenario !== 'commands' && scenario !== 'storm' && scenario !== 'soak') fail(`--scenario must be steady, commands, storm or soak, got ${scenario}`);
  const urls = values.url ?? fail('--url is required');
  for (const u of urls) {
    let parsed: URL;
    try {
      parsed = new URL(u);
    } catch {
      fail(`--url ${u} is not a URL`);
    }
    if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') fail(`--url must be ws:// or wss://, got ${u}`);
  }
  const adminToken = values['admin-token'] ?? process.env.ADMIN_TOKEN ?? fail('--admin-token (or ADMIN_TOKEN) is required');
  const num = (v: string | undefined, dflt: number, flag: string, min: number, max = Infinity) => {
    const n = v === undefined ? dflt : Number(v);
    if (!Number.isFinite(n) || n < min || n > max) fail(`${flag} must be a number in ${min}..${max}, got ${v}`);
    return n;
  };
  const hubs = Math.floor(num(values.hubs, 1000, '--hubs', 1, 2_000_000));
  const apps = Math.floor(num(values.apps, Math.min(1000, Math.ceil(hubs / 10)), '--apps', 0, 200_000));
  const sockets = hubs + apps;
  const workers = Math.floor(num(values.workers, Math.max(1, Math.ceil(sockets / 18_500)), '--workers', 1, 256));
  if (sockets / workers > 19_000) fail(`${sockets} sockets over ${workers} workers is more than 19,000 per process (the file limit is 20,000): raise --workers`);
  const loopback = urls.every((u) => /^(127\.|localhost$|\[::1\]$)/.test(new URL(u).hostname));
  const k = Math.floor(num(values['source-addresses'], loopback ? workers : 0, '--source-addresses', 0, 250));
  const slo = (values.slo ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => {
      const m = /^([a-z0-9.]+)=([0-9.]+)$/i.exec(s);
      if (!m || !SLO_KEYS.includes(m[1]!)) fail(`--slo ${s}: expected KEY=NUMBER with KEY one of ${SLO_KEYS.join(', ')}`);
      return { key: m[1]!, limit: Number(m[2]) };
    });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  return {
    urls,
    adminToken,
    scenario,
    hubs,
    devices: Math.floor(num(values.devices, 8, '--devices', 1, 256)),
    reportEveryS: num(values['report-every'], scenario === 'commands' ? 60 : 10, '--report-every', 0.05),
    apps,
    commandRate: num(values['command-rate'], scenario === 'commands' ? 100 : 0, '--command-rate', 0),
    durationS: num(values.duration, scenario === 'soak' ? 1800 : 60, '--duration', 1, 7 * 86_400),
    warmupS: num(values.warmup, 10, '--warmup', 0),
    stormDeadlineS: num(values['storm-deadline'], 60, '--storm-deadline', 1, 3_600),
    ramp: num(values.ramp, 1000, '--ramp', 0),
    workers,
    sourceAddresses: Array.from({ length: k }, (_, i) => `127.0.0.${i + 2}`),
    prefix: values.prefix ?? `lt-${Math.random().toString(36).slice(2, 7)}`,
    serverPids: (values['server-pid'] ?? '').split(',').filter(Boolean).map((p) => Math.floor(num(p, 0, '--server-pid', 1))),
    metricsUrls: (values['metrics-url'] ?? '').split(',').filter(Boolean),
    slo,
    reportFile: values.report ?? `load-report-${scenario}-${stamp}.json`,
  };
}

/** Worker `w` of `workers`: its source addresses and port slice. */
function sources(addresses: string[], w: number, workers: number): Pick<WorkerConfig, 'sourceAddresses' | 'portSlice'> {
  const k = addresses.length;
  if (k === 0) return { sourceAddresses: [] };
  if (k >= workers) return { sourceAddresses: addresses.filter((_, i) => i % workers === w), portSlice: { index: 0, count: 1 } };
  return { sourceAddresses: [addresses[w % k]!], portSlice: { index: Math.floor(w / k), count: Math.ceil(workers / k) } };
}

const SLO_KEYS = ['connect.p50', 'connect.p99', 'command.p50', 'command.p99', 'report.p50', 'report.p99', 'errors', 'storm.s', 'rss.mb'];

const say = (line: string) => process.stdout.write(`${line}\n`);
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** CPU seconds (user + system) of local processes so far; 0 for those that are gone. */
function cpuSeconds(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]);
    } catch {
      // gone
    }
  }
  return ticks / 100;
}

function rssOf(pids: number[]): number {
  let total = 0;
  for (const pid of pids) {
    try {
      total += Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
    } catch {
      // gone
    }
  }
  return total;
}

/** Resident memory of the watched nodes, summed: /proc for local pids, /metrics otherwise. */
async function serverRss(o: Options): Promise<number | null> {
  if (o.serverPids.length === 0 && o.metricsUrls.length === 0) return null;
  let total = 0;
  for (const pid of o.serverPids) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      total += Number(m?.[1] ?? 0) * 1024;
    } catch {
      // the process is gone
    }
  }
  for (const url of o.metricsUrls) {
    try {
      const text = await (await fetch(url, { signal: AbortSignal.timeout(2_000) })).text();
      const m = /^process_resident_memory_bytes\s+([0-9.e+]+)/m.exec(text);
      total += Number(m?.[1] ?? 0);
    } catch {
      // unreachable this time
    }
  }
  return total;
}

function errorsSplit(errors: Record<string, number>): { admission: number; other: number } {
  let admission = 0;
  let other = 0;
  for (const [code, n] of Object.entries(errors)) {
    // a source port in use is retried at once with the next one: not an error of the target
    if (code.startsWith('source:')) continue;
    if (ADMISSION.test(code)) admission += n;
    else other += n;
  }
  return { admission, other };
}

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
      const rss = await serverRss(o);
      if (rss !== null && (memory.length === 0 || now - memory.at(-1)!.t >= 5_000)) memory.push({ t: now, rssBytes: rss });
      say(
        `[${String(Math.round((now - t0) / 1000)).padStart(5)}s ${phase.padEnd(11)}] connected ${v.counters.connected}/${o.hubs} apps ${v.counters.apps}/${o.apps}` +
          ` | reports ${rate('reportsSent')}/s events ${rate('eventsReceived')}/s | cmds ${rate('commandsOk')}/s` +
          ` | errors ${errs.other} admission ${errs.admission} | p99 ms: connect ${p99(v.connect)} cmd ${p99(v.command)} report→app ${p99(v.reportToApp)} report→ack ${p99(v.reportToAck)}` +
          (rss !== null ? ` | server rss ${(rss / 2 ** 20).toFixed(0)} MB` : ''),
      );
      last = { at: now, c: v.counters };
    })();
  }, 1_000);

  let storm: (StormResult & { allBackS: number; workers: StormResult[] }) | null = null;
  let connect: ConnectResult | null = null;
  let fatal: Error | null = null;
  /** CPU cores busy during the steady phase (local processes), and the load workers' memory */
  let usage: { seconds: number; serverCores: number | null; clientCores: number; clientRssMB: number } | null = null;
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
    say(`load: ${connect.ok} hubs connected in ${(connect.elapsedMs / 1000).toFixed(1)} s (${Math.round((connect.ok * 1000) / connect.elapsedMs)}/s), ${connect.failed} failed`);
    phase = 'apps';
    await fleet.all('apps');
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
      };
    }
  } catch (err) {
    fatal = err as Error;
  }
  phase = 'stopping';
  const snap = await fleet.snapshot().catch(() => null);
  clearInterval(progress);
  await fleet.stop();

  const counters = snap?.counters ?? addCounters(emptyCounters(), last.c);
  const lat: Record<string, LatencySummary> = snap
    ? { connect: summarize(snap.connect), command: summarize(snap.command), reportToApp: summarize(snap.reportToApp), reportToAck: summarize(snap.reportToAck) }
    : {};
  const errs = errorsSplit(counters.errors);
  const rssValues = memory.map((m) => m.rssBytes);
  const mem =
    memory.length === 0
      ? null
      : {
          samples: memory.map((m) => ({ t: (m.t - t0) / 1000, mb: Math.round(m.rssBytes / 2 ** 20) })),
          startMB: Math.round(rssValues[0]! / 2 ** 20),
          endMB: Math.round(rssValues.at(-1)! / 2 ** 20),
          maxMB: Math.round(Math.max(...rssValues) / 2 ** 20),
          // over the second half of the run, where connecting is over
          growthMBPerHour: growth(memory),
        };
  const value = (key: string): number | null => {
    const [what, stat] = key.split('.');
    if (key === 'errors') return errs.other;
    if (key === 'storm.s') return storm ? (storm.back === storm.hubs ? storm.allBackS : Infinity) : null;
    if (key === 'rss.mb') return mem?.maxMB ?? null;
    const name = what === 'report' ? 'reportToApp' : what!;
    const s = lat[name];
    if (!s || s.count === 0) return null;
    return stat === 'p50' ? s.p50Ms : s.p99Ms;
  };
  const slo = o.slo.map(({ key, limit }) => {
    const v = value(key);
    return { key, limit, value: v, ok: v !== null && v <= limit };
  });
  const passed = fatal === null && slo.every((s) => s.ok);

  const report = {
    tool: 'hubtier load',
    startedAt: startedAt.toISOString(),
    elapsedS: Math.round((Date.now() - t0) / 1000),
    machine: { cores: cpus().length, memoryGB: Math.round(totalmem() / 2 ** 30), node: process.version },
    scenario: o.scenario,
    targets: o.urls,
    options: { ...o, adminToken: '(hidden)' },
    connect,
    counters,
    errors: { admission: errs.admission, other: errs.other, byCode: counters.errors },
    latency: lat,
    hdr: snap
      ? { unit: 'µs', connect: encodeHistogram(snap.connect), command: encodeHistogram(snap.command), reportToApp: encodeHistogram(snap.reportToApp), reportToAck: encodeHistogram(snap.reportToAck) }
      : null,
    storm,
    memory: mem,
    usage,
    slo,
    passed,
    fatal: fatal?.message ?? null,
  };
  writeFileSync(o.reportFile, `${JSON.stringify(report, null, 2)}\n`);

  const latRows: Array<Array<string | number>> = [['latency (ms)', 'count', 'p50', 'p90', 'p99', 'p99.9', 'max']];
  const label: Record<string, string> = { reportToApp: 'report → app', reportToAck: 'report → ack' };
  for (const [name, s] of Object.entries(lat)) latRows.push([label[name] ?? name, s.count, s.p50Ms, s.p90Ms, s.p99Ms, s.p999Ms, s.maxMs]);
  say('');
  say(table(latRows));
  say('');
  say(
    table([
      ['count', 'value'],
      ['hubs connected at the end', counters.connected],
      ['reports sent', counters.reportsSent],
      ['state events received by apps', counters.eventsReceived],
      ['commands ok / failed', `${counters.commandsOk} / ${counters.commandsFailed}`],
      ['connects / failed connects', `${counters.connects} / ${counters.connectFailures}`],
      ['sessions dropped by the server', counters.disconnects],
      ['errors (admission control)', errs.admission],
      ['errors (other)', errs.other],
      ...(storm ? [['storm: hubs back / dropped', `${storm.back} / ${storm.hubs}`], ['storm: all back after (s)', storm.allBackS]] : []),
      ...(usage
        ? [
            ['cores busy in the steady phase: server / load', `${usage.serverCores ?? '-'} / ${usage.clientCores}`],
            ['load workers rss (MB)', usage.clientRssMB],
          ]
        : []),
      ...(mem ? [['server rss start / end / max (MB)', `${mem.startMB} / ${mem.endMB} / ${mem.maxMB}`], ['server rss growth (MB/h)', mem.growthMBPerHour ?? '-']] : []),
    ]),
  );
  if (Object.keys(counters.errors).length > 0) say(`errors by code: ${JSON.stringify(counters.errors)}`);
  for (const s of slo) say(`SLO ${s.key} <= ${s.limit}: ${s.value === null ? 'no data' : s.value} ${s.ok ? 'ok' : 'MISSED'}`);
  if (fatal) say(`load: failed: ${fatal.message}`);
  say(`report: ${o.reportFile}`);
  process.exit(fatal ? 3 : passed ? 0 : 1);
}

/** Least-squares slope of RSS over the second half of the samples, in MB per hour (runs of 5 min or more). */
function growth(samples: Array<{ t: number; rssBytes: number }>): number | null {
  const s = samples.slice(Math.floor(samples.length / 2));
  if (s.length < 3 || s.at(-1)!.t - s[0]!.t < 150_000) return null;
  const n = s.length;
  const mt = s.reduce((a, x) => a + x.t, 0) / n;
  const mr = s.reduce((a, x) => a + x.rssBytes, 0) / n;
  let num = 0;
  let den = 0;
  for (const x of s) {
    num += (x.t - mt) * (x.rssBytes - mr);
    den += (x.t - mt) ** 2;
  }
  if (den === 0) return null;
  return Math.round(((num / den) * 3_600_000) / 2 ** 20);
}

main().catch((err: unknown) => {
  process.stderr.write(`load: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(3);
});
