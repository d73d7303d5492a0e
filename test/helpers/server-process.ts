import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { freePort } from '../../bench/lib/procs.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** A free TCP port on 127.0.0.1 (closed again before it is returned); shared with the benchmarks. */
export { freePort };

export interface ServerProcess {
  readonly port: number;
  readonly adminPort: number;
  /** ws://127.0.0.1:port */
  readonly wsUrl: string;
  /** http://127.0.0.1:port */
  readonly httpUrl: string;
  readonly adminUrl: string;
  readonly adminToken: string;
  readonly jwtSecret: string;
  readonly child: ChildProcess;
  /** log lines (parsed JSON where possible) printed so far */
  readonly logs: Array<Record<string, unknown>>;
  /** resolves with the exit code when the process ends */
  readonly exited: Promise<number | null>;
  /** SIGTERM and wait for exit */
  stop(): Promise<number | null>;
  /** SIGKILL (a crash) and wait for exit */
  kill(): Promise<number | null>;
}

/**
 * Starts `src/main.ts` as its own process on free ports and waits for its "node ready" line.
 * PORT, ADMIN_PORT, ADMIN_TOKEN and JWT_SECRET in `env` override the generated ones (nodes of
 * one cluster share tokens; nodes sharing a port test SO_REUSEPORT).
 */
export async function startServerProcess(env: Record<string, string> = {}): Promise<ServerProcess> {
  const port = env.PORT ? Number(env.PORT) : await freePort();
  const adminPort = env.ADMIN_PORT ? Number(env.ADMIN_PORT) : await freePort();
  const adminToken = env.ADMIN_TOKEN ?? `admin-${randomBytes(12).toString('hex')}`;
  const jwtSecret = env.JWT_SECRET ?? `jwt-${randomBytes(16).toString('hex')}`;
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    env: {
      ...process.env,
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      ...env,
      PORT: String(port),
      ADMIN_PORT: String(adminPort),
      ADMIN_TOKEN: adminToken,
      JWT_SECRET: jwtSecret,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Array<Record<string, unknown>> = [];
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const ready = new Promise<void>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        entry = { text: line };
      }
      logs.push(entry);
      if (entry.msg === 'node ready') resolve();
    });
    const errLines = createInterface({ input: child.stderr! });
    errLines.on('line', (line) => logs.push({ stderr: line }));
    void exited.then((code) => reject(new Error(`server exited with ${code} before it was ready: ${JSON.stringify(logs.slice(-5))}`)));
  });
  await ready;
  await rulesWarmedUp(`http://127.0.0.1:${adminPort}`);
  return {
    port,
    adminPort,
    wsUrl: `ws://127.0.0.1:${port}`,
    httpUrl: `http://127.0.0.1:${port}`,
    adminUrl: `http://127.0.0.1:${adminPort}`,
    adminToken,
    jwtSecret,
    child,
    logs,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      return exited;
    },
  };
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
