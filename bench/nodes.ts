import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parseArgs } from 'node:util';
import { freePort, rssBytes, startNats, startNode, startRedis, type NodeProc } from '../load/harness/index.js';
import { pssOf } from '../load/loadgen/process-usage.js';
import { compiledNode } from './lib/compiled-node.js';

const USAGE = `Starts several server nodes on this machine for load runs past one process's 20,000 files.

usage: node --import tsx bench/nodes.ts [options]

  --nodes K         nodes to start (default 6)
  --cluster         cluster mode: own nats-server and redis-server (at nice -10, standing for
                    cores of their own), every node on ONE port (SO_REUSEPORT); default: embedded
                    nodes, each on its own port (each keeps its own registry, so the load tool
                    provisions each hub on its node)
  --max-time S      stop everything after S seconds (default 1800)
  --env K=V         an environment variable for every node (repeatable), e.g.
                    --env TIER_HEARTBEAT_MS=120000 --env TIER_IDLE_MS=300000, and for half a
                    million's sparse reports --env TIER_DISK_BATCH_MS=100 (group commit: a fifth
                    less node CPU, BENCHMARKS.md 2026-12-05 fourth) and --env TIER_PARALLEL_GC=false
                    (27 nodes on two cores: collections without helper threads, 2026-12-05 seventh)
  --tsx             run src/main.ts through tsx; default: compile once into dist/bench-node-<pid>
                    and run that, as the container image does (tsx costs each node ~100 MB)
  -h, --help        this text

Prints the URLs, pids and admin token, and the load command that uses them; every 10 s a line
with the nodes' resident memory (and its proportional share, PSS, which counts the pages nodes
share once) and the machine's TCP socket memory. Ctrl-C stops the nodes.
`;


function sockstat(): string {
  try {
    const tcp = /TCP: inuse (\d+) orphan \d+ tw (\d+) alloc (\d+) mem (\d+)/.exec(readFileSync('/proc/net/sockstat', 'utf8'));
    const slab = /Slab:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'utf8'));
    const avail = /MemAvailable:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'utf8'));
    if (!tcp) return '';
    return `tcp inuse ${tcp[1]} tw ${tcp[2]} mem ${Math.round((Number(tcp[4]) * 4) / 1024)} MB | slab ${Math.round(Number(slab?.[1] ?? 0) / 1024)} MB | available ${Math.round(Number(avail?.[1] ?? 0) / 1024)} MB`;
  } catch {
    return '';
  }
}

/** nice value of the cluster's nats-server and redis-server (needs root or CAP_SYS_NICE) */
const BACKEND_NICE = -10;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      nodes: { type: 'string', default: '6' },
      cluster: { type: 'boolean', default: false },
      'max-time': { type: 'string', default: '1800' },
      env: { type: 'string', multiple: true, default: [] },
      tsx: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  const k = Number(values.nodes);
  const maxTime = Number(values['max-time']);
  if (!Number.isInteger(k) || k < 1 || k > 64) throw new Error('--nodes must be an integer in 1..64');
  if (!Number.isFinite(maxTime) || maxTime <= 0) throw new Error('--max-time must be a positive number of seconds');
  const adminToken = `nodes-${randomBytes(12).toString('hex')}`;
  const env: Record<string, string> = { JWT_SECRET: `jwt-${randomBytes(16).toString('hex')}` };
  for (const kv of values.env) {
    const eq = kv.indexOf('=');
    if (eq < 1) throw new Error(`--env takes K=V, got ${JSON.stringify(kv)}`);
    env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  const stops: Array<() => Promise<void>> = [];
  if (values.cluster) {
    const nats = await startNats();
    stops.push(() => nats.stop());
    const redis = await startRedis();
    stops.push(() => redis.stop());
    // in a deployment NATS and Redis have cores of their own; here they share two with dozens of
    // nodes and load workers, and at an equal share Redis answered after the nodes' 2 s timeouts
    for (const b of [nats, redis]) {
      try {
        setPriority(b.pid, BACKEND_NICE);
      } catch (err) {
        process.stdout.write(`nodes: ${b.kind} keeps the default priority (${(err as Error).message}): under a full machine its answers may come late\n`);
      }
    }
    Object.assign(env, { NATS_URL: nats.url, REDIS_URL: redis.url });
  }
  const entry = values.tsx ? undefined : await compiledNode();
  const shared = values.cluster ? await freePort() : undefined;
  const nodes: NodeProc[] = [];
  for (let i = 0; i < k; i++) {
    const node = await startNode({ env: { ...env, NODE_ID: `node-${i}` }, adminToken, ...(entry !== undefined ? { entry } : {}), ...(shared !== undefined ? { port: shared } : {}) });
    nodes.push(node);
    stops.push(() => node.stop());
  }
  const urls = [...new Set(nodes.map((n) => n.wsUrl))];
  const stop = async (why: string) => {
    process.stdout.write(`nodes: ${why}: stopping\n`);
    for (const s of stops.reverse()) await s().catch(() => {});
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  setTimeout(() => void stop(`--max-time ${maxTime} s reached`), maxTime * 1000).unref();
  const pids = nodes.map((n) => n.pid).join(',');
  process.stdout.write(
    `${JSON.stringify({ ready: true, mode: values.cluster ? 'cluster' : 'embedded', urls, adminToken, pids: nodes.map((n) => n.pid), adminPorts: nodes.map((n) => n.adminPort) })}\n` +
      `load command:\n  npm run load -- ${urls.map((u) => `--url ${u}`).join(' ')} --admin-token ${adminToken} --server-pid ${pids} --hubs 100000 --report-every 60 --ramp 2000\n`,
  );
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 10_000));
    const rss = nodes.map((n) => {
      try {
        return Math.round(rssBytes(n.pid) / 2 ** 20);
      } catch {
        return -1;
      }
    });
    const pss = Math.round(pssOf(nodes.map((n) => n.pid)) / 2 ** 20);
    process.stdout.write(`nodes: rss MB ${rss.join(' ')} (sum ${rss.reduce((a, b) => a + Math.max(0, b), 0)}, pss sum ${pss}) | ${sockstat()}\n`);
    if (rss.some((r) => r < 0)) process.stdout.write('nodes: a node has exited\n');
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`nodes: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
