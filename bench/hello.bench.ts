/**
 * Hub handshakes on one node against the bare uWS floor of the same run (issue 14 target 3):
 * `--hubs` hubs connect (upgrade, then hello → welcome, then their first report) to a fresh
 * embedded node (signed upgrade, nonce claim, directory claim, shadow load) and to the relay floor
 * (unsigned upgrade, welcome), alternating for `--rounds`. Per target: handshakes/s, and the
 * target process's CPU per handshake (user and kernel), which says what a node pays whatever the
 * clients beside it on the same cores can drive. Medians of the rounds; hubs are provisioned
 * before the clock starts. Then the server's hubs all drop their connections and come back at once
 * (`again`: as after a network blip; their records, shadows and devices already stored; refusals
 * `busy` and retries count in its CPU).
 *
 * With `--welcome-only` the measured hubs stop at the welcome (no device list, no first report):
 * the handshake as issue 14's target 3 names it (signed upgrade, nonce check, directory claim, shadow
 * load, welcome), without the first report's processing (the report path's cost). The warm-up
 * hubs still send theirs, so the report path is compiled in both.
 *
 * With `--cpu-prof` every server node writes a CPU profile, and the last one's top functions
 * within its measured connects and storm are printed (not its start or the provisioning).
 *
 *   npm run bench:hello -- [--hubs 10000] [--rounds 3] [--warm 2000] [--welcome-only] [--cpu-prof] [--json]
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { cpuSplitMs, startNode } from '../load/harness/index.js';
import { table } from '../load/lib/histogram.js';
import { Fleet } from '../load/loadgen/fleet.js';
import type { StormResult } from '../load/loadgen/ipc.js';
import { startRelayFloor } from './lib/floor.js';
import { hubSpecs, hubsOnline, medianOf, round, say, workerConfig } from './lib/fleet-runs.js';
import { runMain } from './lib/output.js';
import { cpuProfFlags, inSpan, mainThreadProfile, summarizeProfile, type Span } from './lib/profile-summary.js';

const { values: args } = parseArgs({ options: { hubs: { type: 'string' }, rounds: { type: 'string' }, warm: { type: 'string' }, 'welcome-only': { type: 'boolean', default: false }, 'cpu-prof': { type: 'boolean', default: false }, json: { type: 'boolean', default: false } } });
const HUBS = Number(args.hubs ?? 10_000);
const ROUNDS = Number(args.rounds ?? 3);
const WARM = Number(args.warm ?? 2_000);
const PROF_DIR = join(tmpdir(), 'hubtier-bench', 'hello');
/** the last server node's main-thread profile, with --cpu-prof, and the spans its CPU was measured in */
let lastProfile: string | undefined;
let lastSpans: Span[] = [];

interface Round {
  perSec: number;
  userUs: number;
  sysUs: number;
}

/** Per hub: the target's user and kernel CPU between two readings, and the rate given. */
function perHub(perSec: number, before: { user: number; sys: number }, after: { user: number; sys: number }): Round {
  return { perSec, userUs: ((after.user - before.user) * 1000) / HUBS, sysUs: ((after.sys - before.sys) * 1000) / HUBS };
}

/**
 * A round on a target started for it: WARM hubs connect first and stay (the process's code compiled
 * and its heap grown, as on a node that has run a while), then HUBS fresh hubs connect with the
 * target's CPU read around their connects alone; on the server those then all drop and come back at
 * once (the second result).
 */
async function round1(server: boolean, tag: string): Promise<Round[]> {
  const node = server ? await startNode({ env: {}, ...(args['cpu-prof'] ? { nodeFlags: cpuProfFlags(PROF_DIR) } : {}) }) : null;
  const target = node ?? (await startRelayFloor());
  const fleetOf = (n: number, t: string, fill: boolean) => Fleet.start([{ ...workerConfig(target.wsUrl, hubSpecs(n, t), server, node?.adminToken ?? null, []), fill }]);
  const warm = WARM > 0 ? await fleetOf(WARM, `${tag}w`, true) : null;
  const fleet = await fleetOf(HUBS, tag, !args['welcome-only']);
  try {
    if (warm) await hubsOnline(warm, `${server ? 'server' : 'floor'} warm-up`, server);
    if (server) await fleet.all('provision');
    const spans: Span[] = [];
    const before = cpuSplitMs(target.pid);
    const perSec = await inSpan(spans, () => hubsOnline(fleet, server ? 'server' : 'floor', false));
    const after = cpuSplitMs(target.pid);
    const first = perHub(perSec, before, after);
    if (!node) return [first];
    const [storm] = await inSpan(spans, () => fleet.all<StormResult, 'storm'>('storm', { deadlineMs: 60_000 }));
    const end = cpuSplitMs(target.pid);
    lastSpans = spans;
    if (storm!.back !== HUBS) throw new Error(`again: ${storm!.back} of ${HUBS} hubs came back in 60 s`);
    return [first, perHub(Math.round((HUBS * 1000) / storm!.allBackMs), after, end)];
  } finally {
    await fleet.stop();
    await warm?.stop();
    await target.stop();
    if (node && args['cpu-prof']) lastProfile = mainThreadProfile(PROF_DIR, node.pid);
  }
}

async function main(): Promise<void> {
  const runs: Record<'floor' | 'server' | 'again', Round[]> = { floor: [], server: [], again: [] };
  const show = (i: number, name: string, r: Round) =>
    say(`round ${i + 1}, ${name}: ${r.perSec} handshakes/s, ${Math.round(r.userUs)} + ${Math.round(r.sysUs)} µs CPU (user + kernel) per handshake`);
  for (let i = 0; i < ROUNDS; i++) {
    // the floor first in even rounds, the server first in odd ones
    for (const server of i % 2 === 0 ? [false, true] : [true, false]) {
      const [r, again] = await round1(server, `${server ? 's' : 'f'}${i}`);
      runs[server ? 'server' : 'floor'].push(r!);
      show(i, server ? 'server' : 'floor', r!);
      if (again) {
        runs.again.push(again);
        show(i, 'server, the same hubs again at once', again);
      }
    }
  }
  const med = (k: 'floor' | 'server' | 'again') => ({
    perSec: Math.round(medianOf(runs[k].map((r) => r.perSec))),
    userUs: Math.round(medianOf(runs[k].map((r) => r.userUs))),
    sysUs: Math.round(medianOf(runs[k].map((r) => r.sysUs))),
  });
  const floor = med('floor');
  const server = med('server');
  const again = med('again');
  const cpu = (r: Round) => r.userUs + r.sysUs;
  const out = { hubs: HUBS, rounds: ROUNDS, welcomeOnly: args['welcome-only'], floor, server, again, rateRatio: round(server.perSec / floor.perSec), cpuRatio: round(cpu(server) / cpu(floor)), runs };
  if (lastProfile) say(`server CPU profile: ${lastProfile}\n${summarizeProfile(lastProfile, 30, lastSpans)}`);
  if (args.json) {
    console.log(JSON.stringify(out));
    return;
  }
  console.log(`\n${HUBS} hubs per round, medians of ${ROUNDS} rounds${args['welcome-only'] ? ', each stopping at its welcome' : ', each sending its device list and first report after its welcome'}\n`);
  console.log(table([
    ['target', 'handshakes/s', 'user µs', 'kernel µs', 'CPU µs per handshake'],
    ['relay floor (unsigned)', floor.perSec, floor.userUs, floor.sysUs, cpu(floor)],
    ['server (signed, embedded)', server.perSec, server.userUs, server.sysUs, cpu(server)],
    ['server, the same hubs again at once', again.perSec, again.userUs, again.sysUs, cpu(again)],
  ]));
  console.log(`\nserver / floor: handshakes/s ${out.rateRatio}, CPU per handshake ${out.cpuRatio}; one core at the server's CPU per handshake: ${Math.round(1e6 / cpu(server))}/s`);
}

runMain('bench:hello', main);
