import { commandLine, usageError } from '../lib/cli.js';
import type { WorkerConfig } from './ipc.js';

/** The load tool's command line: its usage text, the options it parses, and how they split over workers. */

const USAGE = `hubtier load tool: simulated hubs and app subscribers at scale, against any node URL.

usage: npm run load -- --url ws://HOST:PORT --admin-token TOKEN [options]

scenarios (--scenario):
  steady     N hubs x M devices reporting every T s, plus A app subscribers (default)
  commands   steady, plus HTTP commands at --command-rate across the hubs
  storm      steady for --warmup s, then every hub drops its TCP connection at once and reconnects
             at once; measures how long until all are back, and the errors on the way
  soak       steady for a long time (--duration, default 1800 s), watching server memory: the
             report's RSS growth (MB/h) is fitted over the run's second half, from a minute after
             the connects on (a node returns a connect burst's heap pages about 30 s after it)

options:
  --url URL              ws:// or wss:// address of a node; repeat it for several nodes (hubs are
                         spread over them; each is provisioned on its own node)
  --admin-token T        administrator token (default $ADMIN_TOKEN): provisioning, app tokens, commands
  --hubs N               hubs (default 1000)           --devices M        sub-devices per hub (default 8)
  --report-every S       seconds between reports of a hub (default 10; commands: 60)
  --apps A               app subscribers, one home each (default hubs/10, at most 1000)
  --command-rate R       HTTP commands per second over all hubs (default 0; commands: 100)
  --duration S           seconds of load after everything is connected (default 60; soak 1800)
  --drain S              then, sending stopped, wait at most S s for answers, acks and deliveries
                         in flight (default 3); what is still open counts as an error and as a
                         latency of its age (command:unanswered, report:unacknowledged, report:undelivered)
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

export interface Options {
  urls: string[];
  adminToken: string;
  scenario: 'steady' | 'commands' | 'storm' | 'soak';
  hubs: number;
  devices: number;
  reportEveryS: number;
  apps: number;
  commandRate: number;
  durationS: number;
  drainS: number;
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

function fail(message: string): never {
  return usageError('load', USAGE, message);
}

export function parse(): Options {
  const values = commandLine('load', USAGE, {
    url: { type: 'string', multiple: true },
    'admin-token': { type: 'string' },
    scenario: { type: 'string', default: 'steady' },
    hubs: { type: 'string', default: '1000' },
    devices: { type: 'string', default: '8' },
    'report-every': { type: 'string' },
    apps: { type: 'string' },
    'command-rate': { type: 'string' },
    duration: { type: 'string' },
    drain: { type: 'string', default: '3' },
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
  });
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
    drainS: num(values.drain, 3, '--drain', 0, 60),
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
export function sources(addresses: string[], w: number, workers: number): Pick<WorkerConfig, 'sourceAddresses' | 'portSlice'> {
  const k = addresses.length;
  if (k === 0) return { sourceAddresses: [] };
  if (k >= workers) return { sourceAddresses: addresses.filter((_, i) => i % workers === w), portSlice: { index: 0, count: 1 } };
  return { sourceAddresses: [addresses[w % k]!], portSlice: { index: Math.floor(w / k), count: Math.ceil(workers / k) } };
}

const SLO_KEYS = ['connect.p50', 'connect.p99', 'command.p50', 'command.p99', 'report.p50', 'report.p99', 'errors', 'storm.s', 'rss.mb'];

