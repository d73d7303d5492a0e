import { commandLine, usageError } from './lib/cli.js';
import { runSimulator, type Simulator } from './sim/simulator.js';

const USAGE = `Hub simulator: provisions hubs through the admin API, connects them, reports drifting
sub-device state and answers commands.

usage: npm run sim -- --url ws://127.0.0.1:8080 --admin-token TOKEN [options]

  --url URL            ws:// address of a node (the admin API is the same host over http)
  --admin-token T      administrator token (default: $ADMIN_TOKEN)
  --hubs N             number of hubs (default 10)
  --devices M          sub-devices per hub (default 8)
  --report-every S     mean seconds between reports of one hub (default 5)
  --prefix P           hub ids are P-0, P-1, ... in homes home-0 (hubs 0-9), home-1, ... (default sim)
  --first N            index of the first hub (default 0)
  --secrets FILE       where hub secrets are kept across runs (default .sim-secrets.json)
  --registry NAME      names the hub registry in that file: give every node of one cluster the same
                       name (default: derived from the admin token, which a cluster's nodes share)
  -h, --help           this text

Stops with bye frames on SIGINT/SIGTERM.
`;

function fail(message: string): never {
  return usageError('sim', USAGE, message);
}

async function main(): Promise<void> {
  const values = commandLine('sim', USAGE, {
    url: { type: 'string' },
    'admin-token': { type: 'string' },
    hubs: { type: 'string', default: '10' },
    devices: { type: 'string', default: '8' },
    'report-every': { type: 'string', default: '5' },
    prefix: { type: 'string', default: 'sim' },
    first: { type: 'string', default: '0' },
    secrets: { type: 'string', default: '.sim-secrets.json' },
    registry: { type: 'string' },
  });
  const int = (value: string, flag: string, min: number): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) fail(`${flag} must be an integer >= ${min}, got ${JSON.stringify(value)}`);
    return n;
  };
  const url = values.url ?? fail('--url is required');
  const adminToken = values['admin-token'] ?? process.env.ADMIN_TOKEN ?? fail('--admin-token (or ADMIN_TOKEN) is required');
  if (values.registry === '') fail('--registry must not be empty');
  const reportEverySec = Number(values['report-every']);
  if (!Number.isFinite(reportEverySec) || reportEverySec <= 0) fail(`--report-every must be a positive number of seconds, got ${values['report-every']}`);

  const out = (line: string) => process.stdout.write(`${new Date().toISOString()} ${line}\n`);
  let sim: Simulator | null = null;
  let status: NodeJS.Timeout | null = null;
  let stoppingSince = 0;
  const stop = (signal: string) => {
    if (stoppingSince > 0) {
      // `timeout` and process-group kills deliver the same signal twice at once: only a later one counts
      if (Date.now() - stoppingSince < 1_000) return;
      process.stderr.write(`sim: ${signal} again, exiting without goodbyes\n`);
      process.exit(1);
    }
    stoppingSince = Date.now();
    if (status) clearInterval(status);
    if (!sim) process.exit(130);
    out(`${signal}: saying bye to ${sim.stats().connected} hubs`);
    sim.stop().then(
      () => {
        out(sim!.statusLine());
        process.exit(0);
      },
      (err: unknown) => {
        process.stderr.write(`sim: stop failed: ${(err as Error).stack ?? String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));

  try {
    sim = await runSimulator({
      url,
      adminToken,
      hubs: int(values.hubs, '--hubs', 1),
      devices: int(values.devices, '--devices', 1),
      reportEverySec,
      prefix: values.prefix,
      firstIndex: int(values.first, '--first', 0),
      secretsFile: values.secrets,
      registry: values.registry,
      out,
    });
  } catch (err) {
    process.stderr.write(`sim: ${(err as Error).message}\n`);
    process.exit(1);
  }
  if (stoppingSince > 0) return;
  if (sim.stats().total === 0) {
    process.stderr.write('sim: no hub to simulate (see the lines above)\n');
    process.exit(1);
  }
  out(sim.statusLine());
  // the status line every 5 s; this timer also keeps the process alive while every hub waits to reconnect
  status = setInterval(() => out(sim!.statusLine()), 5_000);
}

main().catch((err: unknown) => {
  process.stderr.write(`sim: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
