/** The command line of `npm run bench:memory`: its usage text and parsed options (exits on a bad one). */
import { parseArgs } from 'node:util';
import { MAX_SOCKETS_PER_WORKER } from '../../load/loadgen/fleet.js';

export const USAGE = `Server memory per hub session, against the bare-uWS floor per idle socket, in one run.

usage: npm run bench:memory -- [options]

  --sessions N   hub sessions held on one node (default 10000; at most 19000: one process holds
                 at most 20,000 files here)
  --devices M    sub-devices per hub, each with its reported state in the shadow (default 8)
  --device-ids per-hub|shared
                 per-hub (default): each hub's devices have ids of their own (<hubId>-<j>), as a
                 fleet's device addresses are; shared: dev-0… in every hub (the figures before
                 2026-11-30 (third), which V8 stores more cheaply: one set of hidden classes for all)
  --hubs-per-home H
                 hubs in each home (default 10; 1: a home per hub, as most homes of a fleet are,
                 so each session also carries its home's objects: rules index, marks, history)
  --warmup K     hubs that connect, fill their shadows and leave before the baseline is taken
                 (default 1000; 0: none, the figures before 2026-11-30 (fourth)), so that code
                 compiled for the session path, a cost of the process, is not divided among the sessions
  --marginal     connect the sessions in two halves and also report the second half on its own:
                 what each further session adds once the process has grown its heap and allocator
                 arenas for the first (old space's committed pages have grown by 15-100 MB, once;
                 the JSON's server.spaceGrowth says which V8 space grew)
  --steps K      connect the sessions in K equal steps, reading the node after each, and fit a
                 line to RSS, anonymous RSS and the anonymous part beyond V8's heap pages (native
                 memory, and pages V8 has let go but not yet returned) against the sessions held:
                 its slope per session,
                 with the slope's standard error (K >= 3), tells how far one step's jump (V8
                 growing a space once) moves the figure (default 1; --marginal is --steps 2);
                 with K >= 3 also the lines without the baseline (fitFromSecond), which can
                 still hold the warm-up's young generation
  --idle-ms T    how long the sessions are left idle after their fill is acknowledged before the
                 node is read, and the node after the warm-up before its baseline (default 20000:
                 V8 shrinks its young generation, up to 32 MB here, some 8 s after allocation
                 slows, and with 11000 (the default of 2026-12-02 third) some readings came before
                 it; every session's device cache is in its idle form by then, as most of a fleet's
                 are (TIER_SHADOW_PACK_MS, default 5 s, up to twice that): the node's count of
                 unpacked caches is printed at each reading; 0: read a second after the fill, the
                 figures before 2026-12-02 (third); the caches in use throughout:
                 TIER_SHADOW_PACK_MS=0 in the bench's environment, which the node inherits)
  --workers W    client processes (default: 2, or more so that each holds at most 19,000 sockets)
  --json         print one JSON object on stdout (progress goes to stderr)
  --cluster      run the node in cluster mode (its own nats-server and redis-server): the shadow
                 store then lives in Redis, not in the node (the embedded default keeps a copy)
  --tsx          run the node from src/ through tsx; default: compiled (npm run build, into
                 dist/bench-node-<pid>), as the container image runs it
  --memory-limit B
                 run the node in a memory cgroup of its own (cgroup v1, as a pod's limit) whose limit,
                 set just before the measured sessions connect, is what the node holds then that the
                 kernel cannot drop (anonymous, mapped file pages, kernel memory) plus B bytes per
                 session; the cgroup's readings (peak, limit hits, OOM kills, pages read back) are
                 printed, and --probe is implied. Pages of the store beyond the limit are reclaimed and
                 read back from disk when touched: the probe says what that costs
  --connect-rate N
                 the measured hubs connect at most N a second in all (default 0: as fast as 200
                 connections at a time per worker go), as a fleet's hubs come back after a deploy
  --node-options S
                 NODE_OPTIONS of the server node only, e.g. --max-semi-space-size=4 (V8's young
                 generation, which grows to 32 MB here in a burst, capped)
  --probe        after the readings, every hub reports for sessions/1000 s (at least 5 s; about two
                 reports each, spread evenly) and 1,000 shadows are read over HTTP one after another:
                 report → ack and read latency of the held sessions
  --heap-snapshot  also write heap snapshots of the server before and after (in $TMPDIR/hubtier-bench/) and
                 print what the sessions added, by constructor
  -h, --help     this text

Both processes are measured after a full garbage collection (--expose-gc and a SIGURG hook):
resident memory (VmRSS) before and after the sockets, divided by their number; of it, the
anonymous part (RssAnon: without the pages of memory-mapped files, which the embedded default's
LMDB store adds to RSS as the page cache holds them); and the JS heap used.
`;

export type MemoryArgs = ReturnType<typeof parseMemoryArgs>;

export function parseMemoryArgs() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        sessions: { type: 'string', default: '10000' },
        devices: { type: 'string', default: '8' },
        'device-ids': { type: 'string', default: 'per-hub' },
        'hubs-per-home': { type: 'string', default: '10' },
        warmup: { type: 'string', default: '1000' },
        marginal: { type: 'boolean', default: false },
        steps: { type: 'string', default: '1' },
        'idle-ms': { type: 'string', default: '20000' },
        workers: { type: 'string' },
        json: { type: 'boolean', default: false },
        'heap-snapshot': { type: 'boolean', default: false },
        'memory-limit': { type: 'string' },
        probe: { type: 'boolean', default: false },
        'connect-rate': { type: 'string', default: '0' },
        'node-options': { type: 'string' },
        cluster: { type: 'boolean', default: false },
        tsx: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }));
  } catch (err) {
    process.stderr.write(`bench:memory: ${(err as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const sessions = Number(values.sessions);
  const devices = Number(values.devices);
  if (!Number.isInteger(sessions) || sessions < 100 || sessions > 19_000) {
    process.stderr.write('bench:memory: --sessions must be an integer in 100..19000\n');
    process.exit(2);
  }
  if (!Number.isInteger(devices) || devices < 0 || devices > 256) {
    process.stderr.write('bench:memory: --devices must be an integer in 0..256\n');
    process.exit(2);
  }
  const warmup = Number(values.warmup);
  if (!Number.isInteger(warmup) || warmup < 0 || warmup > 5_000) {
    process.stderr.write('bench:memory: --warmup must be an integer in 0..5000\n');
    process.exit(2);
  }
  const hubsPerHome = Number(values['hubs-per-home']);
  if (!Number.isInteger(hubsPerHome) || hubsPerHome < 1 || hubsPerHome > 1_000) {
    process.stderr.write('bench:memory: --hubs-per-home must be an integer in 1..1000\n');
    process.exit(2);
  }
  const deviceIds = values['device-ids'] as 'per-hub' | 'shared';
  if (deviceIds !== 'per-hub' && deviceIds !== 'shared') {
    process.stderr.write('bench:memory: --device-ids must be per-hub or shared\n');
    process.exit(2);
  }
  const idleMs = Number(values['idle-ms']);
  if (!Number.isInteger(idleMs) || idleMs < 0 || idleMs > 600_000) {
    process.stderr.write('bench:memory: --idle-ms must be an integer in 0..600000\n');
    process.exit(2);
  }
  const workers = values.workers === undefined ? Math.max(2, Math.ceil(sessions / MAX_SOCKETS_PER_WORKER)) : Number(values.workers);
  const steps = values.marginal ? 2 : Number(values.steps);
  if (!Number.isInteger(steps) || steps < 1 || steps > 10) {
    process.stderr.write('bench:memory: --steps must be an integer in 1..10\n');
    process.exit(2);
  }
  const memoryLimit = values['memory-limit'] === undefined ? null : Number(values['memory-limit']);
  if (memoryLimit !== null && !(Number.isInteger(memoryLimit) && memoryLimit >= 0)) {
    process.stderr.write('bench:memory: --memory-limit must be a whole number of bytes per session\n');
    process.exit(2);
  }
  const connectRate = Number(values['connect-rate']);
  if (!(Number.isInteger(connectRate) && connectRate >= 0)) {
    process.stderr.write('bench:memory: --connect-rate must be a whole number of connections a second (0: as fast as they go)\n');
    process.exit(2);
  }
  return { nodeOptions: values['node-options'], connectRate, memoryLimit, probe: values.probe || memoryLimit !== null, sessions, devices, hubsPerHome, deviceIds, warmup, marginal: values.marginal, steps, idleMs, workers, json: values.json, heapSnapshot: values['heap-snapshot'], cluster: values.cluster, tsx: values.tsx };
}
