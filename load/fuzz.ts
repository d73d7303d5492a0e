import { randomBytes } from 'node:crypto';
import { commandLine, usageError } from './lib/cli.js';
import { formatReport } from './fuzz/report.js';
import { replay } from './fuzz/replay.js';
import { DEFAULTS, runFuzz, type FuzzOptions } from './fuzz/run.js';
import { withClusterBackends } from './fuzz/cluster-backends.js';

const USAGE = `Fuzzer of the three surfaces a client reaches (hub wire, app socket, HTTP API), against a
real node: by default it starts its own (src/main.ts on free ports of 127.0.0.1, generated
ADMIN_TOKEN and JWT_SECRET, rate limits raised so frames reach the codec) and restarts it after a
crash.

usage: npm run fuzz -- [options]

  --hub-frames N      hub frames to send (default ${DEFAULTS.hubFrames})
  --app-messages N    app-socket messages (default ${DEFAULTS.appMessages})
  --http-requests N   HTTP requests (default ${DEFAULTS.httpRequests})
  --hubs K            fuzzed hubs sending at once (default ${DEFAULTS.hubs}), plus one growing hub
  --seed S            seed of every generated input (default: random, printed)
  --window W          frames without a fixed answer per barrier (default ${DEFAULTS.window})
  --url URL           fuzz a running node (http:// or ws://host:port) instead of starting one
  --admin-url URL     its admin port (http://host:port), for /healthz and /metrics
  --admin-token T     its admin token (required with --url; default $ADMIN_TOKEN)
  --jwt-secret S      its JWT secret (optional with --url: expired-token cases)
  --pid P             its pid, for RSS (with --url)
  --server-env K=V    extra environment of the spawned node (repeatable)
  --cluster           the spawned node in cluster mode, with a nats-server and a redis-server of the
                      run's own on free ports (Debian's nats-server and redis-server); hubs are then
                      admitted after their upgrade, refusals as error, bye and close (with --replay too)
  --out DIR           where crash and violation files go (default ${DEFAULTS.outDir})
  --max-seconds S     stop after this long (default ${DEFAULTS.maxSeconds})
  --max-crashes N     stop after this many crashes (default ${DEFAULTS.maxCrashes})
  --crash-repeat N    an input class that crashed the node N times is not sent again (default ${DEFAULTS.crashRepeat}; 0: no limit)
  --replay FILE       send the inputs of a crash or violation file again, to a fresh node (or --url)
  --json              print the summary as one JSON object
  -h, --help          this text

Exit code: 0 when the node never crashed and no invariant was violated, 1 otherwise, 2 on a usage error.
FUZZ_DEBUG=1 prints each hub-wire oracle violation with the last windows (frames and answers) of its hub.
`;

function fail(message: string): never {
  return usageError('fuzz', USAGE, message);
}

function int(value: string | undefined, flag: string, min: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) fail(`${flag} must be an integer >= ${min}, got ${JSON.stringify(value)}`);
  return n;
}

async function main(): Promise<void> {
  const v = commandLine('fuzz', USAGE, {
    'hub-frames': { type: 'string', default: String(DEFAULTS.hubFrames) },
    'app-messages': { type: 'string', default: String(DEFAULTS.appMessages) },
    'http-requests': { type: 'string', default: String(DEFAULTS.httpRequests) },
    hubs: { type: 'string', default: String(DEFAULTS.hubs) },
    seed: { type: 'string' },
    window: { type: 'string', default: String(DEFAULTS.window) },
    url: { type: 'string' },
    'admin-url': { type: 'string' },
    'admin-token': { type: 'string' },
    'jwt-secret': { type: 'string' },
    pid: { type: 'string' },
    'server-env': { type: 'string', multiple: true, default: [] },
    cluster: { type: 'boolean', default: false },
    out: { type: 'string', default: DEFAULTS.outDir },
    'max-seconds': { type: 'string', default: String(DEFAULTS.maxSeconds) },
    'max-crashes': { type: 'string', default: String(DEFAULTS.maxCrashes) },
    'crash-repeat': { type: 'string', default: String(DEFAULTS.crashRepeat) },
    replay: { type: 'string' },
    json: { type: 'boolean', default: false },
  });
  const serverEnv: Record<string, string> = {};
  for (const kv of v['server-env']) {
    const i = kv.indexOf('=');
    if (i <= 0) fail(`--server-env wants KEY=VALUE, got ${JSON.stringify(kv)}`);
    serverEnv[kv.slice(0, i)] = kv.slice(i + 1);
  }
  const adminToken = v['admin-token'] ?? (v.url ? process.env.ADMIN_TOKEN : undefined);
  if (v.url && !adminToken) fail('--url needs --admin-token (or $ADMIN_TOKEN)');
  if (v.url && v.cluster) fail('--cluster starts its own node: not with --url');
  const targetOpts = { url: v.url, adminUrl: v['admin-url'], adminToken, jwtSecret: v['jwt-secret'], pid: v.pid === undefined ? undefined : int(v.pid, '--pid', 1), env: serverEnv };

  if (v.replay) {
    const file = v.replay;
    const print = (line: string) => process.stdout.write(`${line}\n`);
    const { crashed } = v.cluster ? await withClusterBackends((env) => replay(file, { ...targetOpts, env: { ...serverEnv, ...env } }, print)) : await replay(file, targetOpts, print);
    process.exit(crashed ? 1 : 0);
  }

  const opts: FuzzOptions = {
    ...targetOpts,
    seed: v.seed ?? randomBytes(4).toString('hex'),
    hubFrames: int(v['hub-frames'], '--hub-frames', 0),
    appMessages: int(v['app-messages'], '--app-messages', 0),
    httpRequests: int(v['http-requests'], '--http-requests', 0),
    hubs: int(v.hubs, '--hubs', 1),
    window: int(v.window, '--window', 1),
    growShare: DEFAULTS.growShare,
    serverEnv,
    cluster: v.cluster,
    outDir: v.out,
    maxSeconds: int(v['max-seconds'], '--max-seconds', 1),
    maxCrashes: int(v['max-crashes'], '--max-crashes', 1),
    crashRepeat: int(v['crash-repeat'], '--crash-repeat', 0),
    progress: (line) => process.stderr.write(`${line}\n`),
  };
  const command = [
    'npm run fuzz --',
    `--seed ${opts.seed}`,
    `--hub-frames ${opts.hubFrames}`,
    `--app-messages ${opts.appMessages}`,
    `--http-requests ${opts.httpRequests}`,
    `--hubs ${opts.hubs}`,
    ...(opts.window !== DEFAULTS.window ? [`--window ${opts.window}`] : []),
    ...(opts.cluster ? ['--cluster'] : []),
    ...Object.entries(serverEnv).map(([k, x]) => `--server-env ${k}=${x}`),
  ].join(' ');
  const report = await runFuzz(opts);
  process.stdout.write(v.json ? `${JSON.stringify({ ...report, command })}\n` : `${formatReport(report, command)}\n`);
  process.exit(report.crashes.length === 0 && report.violationCount === 0 ? 0 : 1);
}

main().catch((err: unknown) => {
  process.stderr.write(`fuzz: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(2);
});
