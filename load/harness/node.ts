import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { tempDir } from './exit-hooks.js';
import { freePort } from './free-port.js';
import { MEASURED_COMPILED_FLAGS, MEASURED_NODE_FLAGS } from './measured.js';
import { ExitedError, start, type Proc, type ProcOptions } from './proc.js';

export interface NodeOptions {
  /** environment on top of the defaults (LOG_LEVEL=warn, HOST=127.0.0.1): TIER_*, NATS_URL, NODE_ID… */
  env?: Record<string, string>;
  /** @default a free port (nodes sharing one test SO_REUSEPORT) */
  port?: number;
  /** @default a free port */
  adminPort?: number;
  /** @default random (nodes of one cluster share it) */
  adminToken?: string;
  /** @default random (nodes of one cluster share it) */
  jwtSecret?: string;
  /**
   * DATA_DIR of the node: a node started again on the same directory finds its data there.
   * @default a fresh temporary directory (the embedded default's disk store, as deployed), removed at exit
   */
  dataDir?: string;
  /** node flags before the script, e.g. `--cpu-prof` */
  nodeFlags?: string[];
  /**
   * The compiled entry point (`npm run build`: `dist/src/main.js`), run without a TypeScript
   * loader as the container image runs it. @default HUBTIER_NODE_ENTRY when set (see
   * defaultEntry), else src/main.ts through tsx, which costs each process about 40 MB more of its
   * own memory (BENCHMARKS.md, "Half a million again") and 1.5 s more CPU to start
   */
  entry?: string;
  /** src/main.ts through tsx, as `npm start` runs it, even when HUBTIER_NODE_ENTRY names a compiled entry */
  source?: boolean;
  /**
   * A measured process: MEASURED_NODE_FLAGS (so `collect` works) and UWS_REQUIRE_NATIVE=1 (a
   * fallback transport would skew every figure). Tests and the fuzzer run the node as deployed.
   * @default true
   */
  measured?: boolean;
  /** every output line, as it comes */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
  /** ceiling on the start-up @default 60_000 (ms) */
  readyMs?: number;
  /** see ProcOptions.spawnWith */
  spawnWith?: ProcOptions['spawnWith'];
}

export interface NodeProc extends Proc {
  readonly port: number;
  readonly adminPort: number;
  /** ws://127.0.0.1:port */
  readonly wsUrl: string;
  /** http://127.0.0.1:port */
  readonly httpUrl: string;
  /** http://127.0.0.1:adminPort */
  readonly adminUrl: string;
  readonly adminToken: string;
  readonly jwtSecret: string;
  /** the node's DATA_DIR (cluster-mode nodes ignore it) */
  readonly dataDir: string;
}

/**
 * Starts a server node (`src/main.ts`) as its own process and resolves on its "node ready" log
 * line (or the banner printed after it, which LOG_LEVEL=warn still shows); a node that exits or
 * times out first is killed and the start rejects (ExitedError carries its output).
 */
export async function startNode(opts: NodeOptions = {}): Promise<NodeProc> {
  // a free port may be taken between the check and the bind (another process drew it too):
  // ports chosen here are chosen again, a few times
  for (let attempt = 1; ; attempt++) {
    try {
      const port = opts.port ?? (await freePort());
      // two draws give the same port now and then (1 in ~23,000), which the node refuses as a configuration error
      let adminPort = opts.adminPort ?? (await freePort());
      while (adminPort === port && opts.adminPort === undefined) adminPort = await freePort();
      return await startNodeOn(opts, port, adminPort);
    } catch (err) {
      const taken = err instanceof ExitedError ? PORT_IN_USE.exec(err.output) : null;
      const given = [opts.port, opts.adminPort];
      if (attempt >= 3 || taken === null || given.includes(Number(taken[1]))) throw err;
    }
  }
}

/** HUBTIER_NODE_ENTRY, a compiled entry point every node started without `entry` runs (the test suites set it); unset or empty, src/main.ts through tsx. */
export function defaultEntry(): string | undefined {
  return process.env.HUBTIER_NODE_ENTRY || undefined;
}

/** What the node prints when it cannot bind its port or admin port (src/compose/server.ts). */
const PORT_IN_USE = /cannot listen on [^\s]*:(\d+): the port is in use/;

async function startNodeOn(opts: NodeOptions, port: number, adminPort: number): Promise<NodeProc> {
  const adminToken = opts.adminToken ?? `admin-${randomBytes(12).toString('hex')}`;
  // nodes of one cluster must share it (a node with another one is refused at start): derived from
  // the admin token they share, unless given
  const jwtSecret = opts.jwtSecret ?? opts.env?.JWT_SECRET ?? (opts.env?.NATS_URL ? `jwt-${createHash('sha256').update(`hubtier-harness-jwt:${adminToken}`).digest('hex')}` : `jwt-${randomBytes(16).toString('hex')}`);
  const measured = opts.measured ?? true;
  const dataDir = opts.dataDir ?? freshDataDir();
  const entry = opts.entry ?? (opts.source ? undefined : defaultEntry());
  const loader = entry !== undefined ? (measured ? MEASURED_COMPILED_FLAGS : []) : measured ? MEASURED_NODE_FLAGS : ['--import', 'tsx'];
  const proc = start(process.execPath, [...(opts.nodeFlags ?? []), ...loader, entry ?? 'src/main.ts'], {
    env: {
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      ...(measured ? { UWS_REQUIRE_NATIVE: '1' } : {}),
      DATA_DIR: dataDir,
      // its own: started in the repository, it took the quick start's generated admin token out of
      // ./.hubtier-secrets.env (it was given one), and the demo's user tokens were refused (review "sre")
      SECRETS_FILE: join(tempDir('hubtier-secrets-'), 'secrets.env'),
      // a standalone node unless told otherwise: the shell's cluster settings (README's three-node
      // block exports them) made test and bench nodes join the user's cluster
      NATS_URL: undefined,
      REDIS_URL: undefined,
      CONFIG_FILE: undefined,
      // cluster nodes must share a key that seals hub secrets: nodes of one cluster share the admin token
      ...(opts.env?.NATS_URL ? { TIER_SECRET_KEY: createHash('sha256').update(`hubtier-harness-secret-key:${adminToken}`).digest('hex') } : {}),
      ...opts.env,
      PORT: String(port),
      ADMIN_PORT: String(adminPort),
      ADMIN_TOKEN: adminToken,
      JWT_SECRET: jwtSecret,
    },
    onLine: opts.onLine,
    spawnWith: opts.spawnWith,
  });
  try {
    await proc.waitLine((l) => l.includes('"node ready"'), opts.readyMs ?? 60_000);
  } catch (err) {
    await proc.kill();
    throw err;
  }
  return {
    ...proc,
    port,
    adminPort,
    wsUrl: `ws://127.0.0.1:${port}`,
    httpUrl: `http://127.0.0.1:${port}`,
    adminUrl: `http://127.0.0.1:${adminPort}`,
    adminToken,
    jwtSecret,
    dataDir,
  };
}

/** A temporary DATA_DIR, removed when this process ends. */
export function freshDataDir(): string {
  return tempDir('hubtier-data-');
}
