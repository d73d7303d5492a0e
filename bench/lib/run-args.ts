/** The command line of `npm run bench`: its usage text and parsed options. */
import { parseArgs } from 'node:util';


export const USAGE = `Benchmarks of the latency-critical paths, with floors measured in the same run.

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
  --telemetry-peak N   then the same runs at this peak rate (default 20000, quick 0; 0: none): where a
                       node saturates, and what history costs there
  --history on|off|both  the nodes keep every home's event history (the default) or not
                       (TIER_HISTORY_SIZE=0: events carry no position); both: the embedded telemetry
                       runs on a node with and a node without, alternating with the floor: what history costs
                       (the p99 ratio of the two medians, round by round with its median, and the p99 of
                       every round pooled with a 90 % bootstrap interval over the rounds)
  --trace off|on       on: the nodes export spans (OTLP/HTTP) to a sink in this process that only counts
                       them, sampling new traces at --trace-ratio (default 0.01): what tracing costs
  --trace-ratio F      the sampling ratio of --trace on, 0..1 (default 0.01)
  --syscalls           count system calls per command (strace -c -f) of the relay floor, the server
                       and the corked relay at a fixed rate
  --node-options S     NODE_OPTIONS of the server nodes only (not the floors or the load workers), e.g.
                       "--max-semi-space-size=64": what a V8 setting does to the same runs
  --cpu-prof           write a CPU profile of the server node (in $TMPDIR/hubtier-bench/) and print its top functions
                       within the measured rounds (with --history both, the history-off node's too)
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
(whose acks wait for the shadow batch to be written to Redis: TIER_SHADOW_BATCH_MS, default 50 ms);
each target's CPU per report, also split into its main thread and the rest (libuv's pool, V8's and
lmdb-js's threads, all named \`node\`), and the errors its hubs and apps met.
`;

export interface Args {
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
  /** the telemetry runs again at this rate (0: not) */
  telemetryPeak: number;
  /** environment of every node: TIER_HISTORY_SIZE=0 with --history off */
  nodeEnv: Record<string, string>;
  /** --trace on: the nodes export spans to a counting sink, sampled at `traceRatio` (null: off) */
  traceRatio: number | null;
  /** --history both: the embedded telemetry also runs on a node without history */
  historyBoth: boolean;
  latencyRate: number;
  cpuProf: boolean;
  syscalls: boolean;
}

export function parse(): Args {
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
        'telemetry-peak': { type: 'string' },
        history: { type: 'string', default: 'on' },
        trace: { type: 'string', default: 'off' },
        'trace-ratio': { type: 'string', default: '0.01' },
        'latency-rate': { type: 'string', default: '1000' },
        'cpu-prof': { type: 'boolean', default: false },
        'node-options': { type: 'string' },
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
  if (!['on', 'off', 'both'].includes(values.history)) fail('--history is on, off or both');
  if (!['on', 'off'].includes(values.trace)) fail('--trace is on or off');
  const traceRatio = num(values['trace-ratio'], 0.01, '--trace-ratio', 0);
  if (traceRatio > 1) fail('--trace-ratio is at most 1');
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
    telemetryPeak: num(values['telemetry-peak'], quick ? 0 : 20_000, '--telemetry-peak', 0),
    nodeEnv: {
      ...(values.history === 'off' ? { TIER_HISTORY_SIZE: '0' } : {}),
      ...(values['node-options'] !== undefined ? { NODE_OPTIONS: values['node-options'] } : {}),
    },
    traceRatio: values.trace === 'on' ? traceRatio : null,
    historyBoth: values.history === 'both',
    cpuProf: values['cpu-prof'],
    syscalls: values.syscalls,
  };
}

export function fail(msg: string): never {
  process.stderr.write(`bench: ${msg}\n\n${USAGE}`);
  process.exit(2);
}
