/** The cluster variants of the benchmark: two nodes with their own nats-server and redis-server. */
import { Fleet } from '../../load/loadgen/fleet.js';
import type { HubSpec } from '../../load/loadgen/ipc.js';
import { cannon, commandPaths, type CannonResult } from './cannon.js';
import { paced } from './paced.js';
import { ExitedError, startNats, startNode, startRedis, type NodeProc } from '../../load/harness/index.js';

import type { Args } from './run-args.js';
import { say, hubSpecs, appSpecs, workerConfig, hubsOnline, telemetryRounds, median, type TelemetryResult, type TelemetryTarget } from './fleet-runs.js';
import { sleep } from '../../load/lib/async.js';

/**
 * Two cluster nodes with their own nats-server and redis-server, the hubs on node B. With the
 * cross variant: commands to A (cross-node) and to B. With `floor` (the telemetry variant): hub
 * reports to B with an app subscriber per home on B, alternating with the relay floor's fleet.
 * Null when cluster mode is not built.
 */
export async function clusterNodes(
  args: Args,
  rate: number,
  stops: Array<() => Promise<void>>,
  floor: TelemetryTarget | null,
): Promise<{ cross: { same: CannonResult; cross: CannonResult } | null; telemetry: { floor: TelemetryResult; server: TelemetryResult } | null } | null> {
  say('cluster: starting nats-server, redis-server and two nodes');
  const nats = await startNats();
  stops.push(() => nats.stop());
  const redis = await startRedis();
  stops.push(() => redis.stop());
  const adminToken = `bench-cluster-${Date.now()}-token`;
  const env = { ...args.nodeEnv, NATS_URL: nats.url, REDIS_URL: redis.url };
  let a: NodeProc;
  let b: NodeProc;
  try {
    a = await startNode({ env: { ...env, NODE_ID: 'bench-a' }, adminToken });
    stops.push(() => a.stop());
    b = await startNode({ env: { ...env, NODE_ID: 'bench-b' }, adminToken });
    stops.push(() => b.stop());
  } catch (err) {
    if (err instanceof ExitedError && /cluster mode.*not available/i.test(err.output)) return null;
    throw err;
  }
  const hubs = hubSpecs(args.hubs, 'x');
  const fleet = await Fleet.start([workerConfig(b.wsUrl, hubs, true, adminToken, floor ? appSpecs(hubs) : [])]);
  stops.push(() => fleet.stop());
  await hubsOnline(fleet, 'cluster node B', true);
  await sleep(500); // directory and subscriptions settle
  // commands first, before the app subscribers connect: the cross-node figures stay as they were
  const cross = args.variants.has('cross') ? await crossCommands(args, rate, a, b, fleet, hubs, adminToken) : null;
  let telemetry: { floor: TelemetryResult; server: TelemetryResult } | null = null;
  if (floor) {
    say(`cluster telemetry: ${args.telemetryRate} reports/s to node B (apps on B), alternating with the relay floor, ${args.durationS} s each`);
    await fleet.all('apps');
    telemetry = await telemetryRounds(floor, { fleet, pid: b.pid }, args);
  }
  await fleet.stop();
  await Promise.all([a.stop(), b.stop()]);
  return { cross, telemetry };
}

/** Commands at `rate` to node A (cross-node, hubs on B) and to node B itself, alternating. */
export async function crossCommands(args: Args, rate: number, a: NodeProc, b: NodeProc, fleet: Fleet, hubs: HubSpec[], adminToken: string): Promise<{ same: CannonResult; cross: CannonResult }> {
  const paths = commandPaths(hubs.map((h) => h.id), args.devices);
  const common = { method: 'POST' as const, body: '{"set":{"on":true}}', headers: { authorization: `Bearer ${adminToken}` }, connections: args.connections, path: paths };
  const others = { hubs: fleet.pids() };
  await cannon({ ...common, url: a.httpUrl, pid: a.pid, others, durationS: args.quick ? 1 : 2 });
  say(`cross-node: commands at ${rate}/s to node A (hubs on node B), and to node B itself, ${args.durationS} s each, ${args.rounds} round(s)`);
  const crosses: CannonResult[] = [];
  const sames: CannonResult[] = [];
  for (let i = 0; i < args.rounds; i++) {
    crosses.push(await paced({ ...common, rate, url: a.httpUrl, pid: a.pid, others, durationS: args.durationS }));
    sames.push(await paced({ ...common, rate, url: b.httpUrl, pid: b.pid, others, durationS: args.durationS }));
  }
  return { same: median(sames), cross: median(crosses) };
}

