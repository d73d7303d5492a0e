/** `npm run chaos`'s command line: its usage, its options and the faults a scenario names. */
import { randomBytes } from 'node:crypto';
import { commandLine, usageError } from '../lib/cli.js';
import { STALL_MS } from './summary.js';

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
  --scenario S        kill | rolling | both | nats | redis | hang | freeze | all (default both),
                      or a comma list of them (nats,freeze); the faults run in the order of all
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

export type Fault = 'kill' | 'rolling' | 'nats' | 'redis' | 'hang' | 'freeze';
/** what each name of --scenario runs; the faults always run in the order of `all` */
const SCENARIOS = {
  kill: ['kill'],
  rolling: ['rolling'],
  both: ['kill', 'rolling'],
  nats: ['nats'],
  redis: ['redis'],
  hang: ['hang'],
  freeze: ['freeze'],
  all: ['kill', 'rolling', 'nats', 'redis', 'hang', 'freeze'],
} as const satisfies Record<string, readonly Fault[]>;

export interface Options {
  mode: 'cluster' | 'embedded';
  /** as given (`both`, `all`, `nats,redis`): shown in the report */
  scenario: string;
  /** the faults it names */
  faults: ReadonlySet<Fault>;
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

/** The faults `--scenario` names (`all`, `nats,redis`), or why it names none a run in `mode` can have. */
export function scenarioFaults(scenario: string, mode: Options['mode']): ReadonlySet<Fault> | string {
  const faults = new Set<Fault>();
  for (const name of scenario.split(',')) {
    if (!Object.hasOwn(SCENARIOS, name)) return `--scenario must be kill, rolling, both, nats, redis, hang, freeze or all, or a comma list of them, got ${scenario}`;
    for (const f of SCENARIOS[name as keyof typeof SCENARIOS]) faults.add(f);
  }
  const serverFault = (['nats', 'redis', 'hang'] as const).find((f) => faults.has(f));
  if (mode === 'embedded' && serverFault !== undefined) return `--scenario ${serverFault} needs cluster mode: the embedded default has no nats-server or redis-server`;
  if (mode === 'embedded' && faults.has('freeze')) return "--scenario freeze needs cluster mode: a frozen node's hubs need another node to go to";
  return faults;
}

function fail(message: string): never {
  return usageError('chaos', USAGE, message);
}

/** The options of this process's command line; exits 2 on a bad one (the usage on stderr). */
export function parse(): Options {
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
  const faults = scenarioFaults(scenario, mode);
  if (typeof faults === 'string') fail(faults);
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
    faults,
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
