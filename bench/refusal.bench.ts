/**
 * What refusing a hub handshake costs a node. A node that is full, has too many handshakes in
 * flight, takes hubs faster than its rate or nears its memory limit answers `503 busy` before any
 * work, and every refused hub comes back (PROTOCOL.md §7): in a reconnect storm the refusals are
 * most of what the node does. Signed upgrade requests (headers of the right form, as hubs send
 * them) go to a fresh embedded node that holds the one hub session it may (`TIER_MAX_HUB_SESSIONS=1`),
 * so every one is refused `busy` (`full`) before any work, and to the relay floor's `/refuse` (bare uWS answering the same status,
 * headers and body). Each connection has its own loopback source address, as hubs behind their
 * own routers do, and sends its next request once the last is answered; connections are kept
 * alive: a real hub's new TCP connection per attempt costs both targets the same kernel work,
 * which would hide the difference measured here. The node logs at `--log-level` (info, its
 * default in production). Per target: refusals/s and the process's CPU per refusal (user +
 * kernel), medians of the rounds
 * (the floor first in even rounds, the node first in odd ones). With `--cpu-prof` the last node's
 * top functions while it refused are printed.
 *
 *   npm run bench:refusal -- [--rounds 3] [--seconds 10] [--connections 5000] [--log-level info] [--cpu-prof] [--json]
 */
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { cpuSplitMs, startNode, type NodeProc } from '../load/harness/index.js';
import { HubClient } from '../load/wire/hub-client.js';
import { table } from '../load/lib/histogram.js';
import { upgradeKey, upgradeRequest } from '../load/wire/ws-upgrade.js';
import { startRelayFloor } from './lib/floor.js';
import { knock } from './lib/knockers.js';
import { medianOf, round, say } from './lib/fleet-runs.js';
import { printResult, runMain } from './lib/output.js';
import { cpuProfFlags, inSpan, mainThreadProfile, summarizeProfile, type Span } from './lib/profile-summary.js';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '5000' },
    'log-level': { type: 'string', default: 'info' },
    'cpu-prof': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});
const ROUNDS = Number(args.rounds);
const SECONDS = Number(args.seconds);
const CONNECTIONS = Number(args.connections);
const PROF_DIR = join(tmpdir(), 'hubtier-bench', 'refusal');
/** with --cpu-prof: the last node's main-thread profile and the span it refused in */
let profile: { file: string; spans: Span[] } | undefined;

/** A hub's upgrade request: credentials of the right form (never checked: refused before), never admitted. */
function hubHeaders(): Record<string, string> {
  return {
    'x-hub-id': 'hub-refused-0001',
    'x-hub-ts': String(Math.floor(Date.now() / 1000)),
    'x-hub-nonce': randomBytes(12).toString('base64url'),
    'x-hub-signature': randomBytes(32).toString('hex'),
  };
}

interface Round {
  perSec: number;
  cpuUs: number;
  sysUs: number;
}

async function round1(server: boolean): Promise<Round> {
  const profiled = server && args['cpu-prof'];
  // full, not the connect rate: since 2026-12-05 a handshake refused for its credentials (these
  // hubs are not provisioned) gives its rate token back, and the node answered them all 401
  const env = { TIER_MAX_HUB_SESSIONS: '1', LOG_LEVEL: args['log-level'] };
  const node = server ? await startNode({ env, ...(profiled ? { nodeFlags: cpuProfFlags(PROF_DIR) } : {}) }) : undefined;
  const target = node ?? (await startRelayFloor());
  const spans: Span[] = [];
  let holder: HubClient | undefined;
  try {
    if (node) holder = await fillNode(node);
    const key = upgradeKey();
    const request = upgradeRequest(`127.0.0.1:${target.port}`, server ? '/hub/v1' : '/refuse', key, hubHeaders());
    const before = cpuSplitMs(target.pid);
    const r = await inSpan(spans, () => knock({ port: target.port, request, key, connections: CONNECTIONS, durationMs: SECONDS * 1000, status: 503 }));
    const after = cpuSplitMs(target.pid);
    const name = server ? 'node' : 'floor';
    if (r.answered === 0 || r.dropped > 0) throw new Error(`${name}: ${r.answered} refused 503, ${r.other} other answers, ${r.dropped} connections dropped`);
    const per = (ms: number) => round((ms * 1000) / r.answered, 1);
    return { perSec: Math.round(r.answered / SECONDS), cpuUs: per(after.user + after.sys - before.user - before.sys), sysUs: per(after.sys - before.sys) };
  } finally {
    await holder?.terminate();
    await target.stop();
    const file = profiled ? mainThreadProfile(PROF_DIR, target.pid) : undefined;
    if (file) profile = { file, spans };
  }
}

/** One provisioned hub connected: the node's one session taken. */
async function fillNode(node: NodeProc): Promise<HubClient> {
  const res = await fetch(`${node.httpUrl}/v1/admin/hubs`, { method: 'POST', headers: { authorization: `Bearer ${node.adminToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ hubId: 'refusal-holder', homeId: 'refusal-home' }) });
  const { secret } = (await res.json()) as { secret: string };
  const hub = new HubClient({ url: node.wsUrl, hubId: 'refusal-holder', secret });
  await hub.connect();
  return hub;
}

async function main(): Promise<void> {
  const runs: Record<'floor' | 'server', Round[]> = { floor: [], server: [] };
  for (let i = 0; i < ROUNDS; i++) {
    for (const server of i % 2 === 0 ? [false, true] : [true, false]) {
      const r = await round1(server);
      runs[server ? 'server' : 'floor'].push(r);
      say(`round ${i + 1}, ${server ? 'node' : 'floor'}: ${r.perSec} refusals/s, ${r.cpuUs} µs CPU per refusal (kernel ${r.sysUs})`);
    }
  }
  const med = (k: 'floor' | 'server'): Round => ({
    perSec: Math.round(medianOf(runs[k].map((r) => r.perSec))),
    cpuUs: medianOf(runs[k].map((r) => r.cpuUs)),
    sysUs: medianOf(runs[k].map((r) => r.sysUs)),
  });
  const floor = med('floor');
  const server = med('server');
  const out = { rounds: ROUNDS, seconds: SECONDS, connections: CONNECTIONS, floor, server, cpuRatio: round(server.cpuUs / floor.cpuUs), runs };
  const text = [
    `\nrefused handshakes over ${CONNECTIONS} keep-alive connections, ${SECONDS} s a round, medians of ${ROUNDS} rounds\n`,
    table([
      ['target', 'refusals/s', 'CPU µs per refusal', 'of it kernel µs'],
      ['relay floor (uWS answers 503)', floor.perSec, floor.cpuUs, floor.sysUs],
      ['node (admission control: busy)', server.perSec, server.cpuUs, server.sysUs],
    ]),
    `\nnode / floor: CPU per refusal ${out.cpuRatio}; one core refuses ${Math.round(1e6 / server.cpuUs)}/s at the node's cost`,
  ].join('\n');
  if (profile) say(`node CPU profile: ${profile.file}\n${summarizeProfile(profile.file, 30, profile.spans)}`);
  printResult(args.json, text, out);
}

runMain('bench:refusal', main);
