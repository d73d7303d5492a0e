import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { freePort, rssBytes, startNats, startNode, startRedis, type NodeProc } from '../load/harness/index.js';

const USAGE = `Starts several server nodes on this machine for load runs past one process's 20,000 files.

usage: node --import tsx bench/nodes.ts [options]

  --nodes K         nodes to start (default 6)
  --cluster         cluster mode: own nats-server and redis-server, every node on ONE port
                    (SO_REUSEPORT); default: embedded nodes, each on its own port (each keeps its
                    own memory registry, so the load tool provisions each hub on its node)
  --max-time S      stop everything after S seconds (default 1800)
  -h, --help        this text

Prints the URLs, pids and admin token, and the load command that uses them; every 10 s a line
with each node's resident memory and the machine's TCP socket memory. Ctrl-C stops the nodes.
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

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      nodes: { type: 'string', default: '6' },
      cluster: { type: 'boolean', default: false },
      'max-time': { type: 'string', default: '1800' },
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
  const stops: Array<() => Promise<void>> = [];
  if (values.cluster) {
    const nats = await startNats();
    stops.push(() => nats.stop());
    const redis = await startRedis();
    stops.push(() => redis.stop());
    Object.assign(env, { NATS_URL: nats.url, REDIS_URL: redis.url });
  }
  const shared = values.cluster ? await freePort() : undefined;
  const nodes: NodeProc[] = [];
  for (let i = 0; i < k; i++) {
    const node = await startNode({ env: { ...env, NODE_ID: `node-${i}` }, adminToken, ...(shared !== undefined ? { port: shared } : {}) });
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
    process.stdout.write(`nodes: rss MB ${rss.join(' ')} (sum ${rss.reduce((a, b) => a + Math.max(0, b), 0)}) | ${sockstat()}\n`);
    if (rss.some((r) => r < 0)) process.stdout.write('nodes: a node has exited\n');
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`nodes: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
