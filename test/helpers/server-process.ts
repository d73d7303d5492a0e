import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { defaultEntry, startNode, type NodeOptions, type NodeProc } from '../../load/harness/index.js';

/** The child's soft and hard open-file limit set to `files` before it has loaded anything. */
export const fileLimit = (files: number): NonNullable<NodeOptions['spawnWith']> => (spawn) => {
  const child = spawn();
  execFileSync('prlimit', ['--pid', String(child.pid), `--nofile=${files}:${files}`]);
  return child;
};

/** Whether util-linux `prlimit` is here (the file limit helpers need it). */
export const hasPrlimit = (() => {
  try {
    execFileSync('prlimit', ['--version']);
    return true;
  } catch {
    return false;
  }
})();

/** The child's soft file size limit set to `bytes` (hard left as it is) before it has written anything: a disk that takes no more. */
export const fileSizeLimit = (bytes: number): NonNullable<NodeOptions['spawnWith']> => (spawn) => {
  const child = spawn();
  execFileSync('prlimit', ['--pid', String(child.pid), `--fsize=${bytes}:`]);
  return child;
};

/**
 * Node's arguments that run one of the node's programs (`src/doctor-cli.ts`): its compiled file in
 * the tree of HUBTIER_NODE_ENTRY when the suite compiled the node, else the source through tsx.
 */
export function scriptArgs(script: string): string[] {
  const entry = defaultEntry();
  return entry === undefined ? ['--import', 'tsx', script] : [join(dirname(entry), '..', script.replace(/\.ts$/, '.js'))];
}

/** Open descriptors of a process. */
export const fds = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;

/** A node process of a test: its log lines parsed, and `stop`/`kill` resolving with the exit code. */
export interface ServerProcess extends Omit<NodeProc, 'stop' | 'kill'> {
  /** log lines (parsed JSON where possible; stderr lines as `{ stderr }`) printed so far */
  readonly logs: Array<Record<string, unknown>>;
  /** the environment the node was given besides its ports and tokens (REDIS_URL, TIER_REDIS_PREFIX, …) */
  readonly env: Readonly<Record<string, string>>;
  /** SIGTERM and wait for the exit, however long the drain takes */
  stop(): Promise<number | null>;
  /** SIGKILL (a crash) and wait for the exit */
  kill(): Promise<number | null>;
}

/**
 * Starts `src/main.ts` as its own process on free ports (as deployed: no gc hook, LOG_LEVEL=info),
 * then waits for its rule workers' warm-up. PORT, ADMIN_PORT, ADMIN_TOKEN and JWT_SECRET in `env`
 * override the generated ones (nodes of one cluster share tokens; nodes sharing a port test SO_REUSEPORT).
 */
export async function startServerProcess(env: Record<string, string> = {}, spawnWith?: NodeOptions['spawnWith']): Promise<ServerProcess> {
  const { PORT, ADMIN_PORT, ADMIN_TOKEN, JWT_SECRET, ...rest } = env;
  const logs: Array<Record<string, unknown>> = [];
  const node = await startNode({
    env: { LOG_LEVEL: 'info', ...rest },
    port: PORT ? Number(PORT) : undefined,
    adminPort: ADMIN_PORT ? Number(ADMIN_PORT) : undefined,
    adminToken: ADMIN_TOKEN,
    jwtSecret: JWT_SECRET,
    measured: false,
    ...(spawnWith ? { spawnWith } : {}),
    onLine: (line, stream) => logs.push(stream === 'stderr' ? { stderr: line } : parseLog(line)),
  });
  await rulesWarmedUp(node.adminUrl);
  return {
    ...node,
    logs,
    env: rest,
    async stop() {
      await node.stop(Infinity);
      return node.exited;
    },
    async kill() {
      await node.kill();
      return node.exited;
    },
  };
}

/**
 * The first log line of `node` matching `pred`, waiting for it while the node writes. No deadline of
 * its own: the test's timeout is the ceiling, and its `signal` stops the wait when the test gives up.
 */
export async function logLine(node: ServerProcess, signal: AbortSignal, pred: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  for (;;) {
    const found = node.logs.find(pred);
    if (found) return found;
    if (signal.aborted) throw new Error(`no such log line; the last ones: ${JSON.stringify(node.logs.slice(-5))}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function parseLog(line: string): Record<string, unknown> {
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return { text: line };
  }
}

/**
 * Waits until the node's start-up warm-up of its rule workers has finished (succeeded or failed),
 * as `/readyz` reports it. A node closed while that first task still runs takes piscina's 30 s close
 * timeout to stop (a start-up issue of src/rules/pool.ts): a test that stops its node soon after
 * starting it would hit the hook timeout instead of testing anything.
 */
export async function rulesWarmedUp(adminUrl: string): Promise<void> {
  for (;;) {
    const res = await fetch(`${adminUrl}/readyz`).catch(() => null);
    const body = res ? ((await res.json()) as { rules?: { completed?: number; failed?: number } }) : {};
    if ((body.rules?.completed ?? 0) + (body.rules?.failed ?? 0) > 0) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** JSON request helper: returns status and parsed body. */
export async function api(base: string, method: string, path: string, token: string | undefined, body?: unknown): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = {};
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${base}${path}`, { method, headers, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body: parsed };
}
