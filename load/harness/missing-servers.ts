import { execFileSync } from 'node:child_process';
import { delimiter } from 'node:path';
import { findOnPath, findServer, SBIN_DIRS, SERVERS, type Lookup, type ServerName } from './binaries.js';

/**
 * What happens when nats-server or redis-server is not there: every start of one throws
 * `MissingServerError` at once (never a timeout later); the test suite's global setup installs
 * them first when it can (root with apt-get), as `.ci/run` does.
 */

type Missing = Extract<Lookup, { path: null }>;

/** One or more servers are missing; the message names each one and the exact command that fixes it. */
export class MissingServerError extends Error {
  override name = 'MissingServerError';
  readonly code = 'HARNESS_SERVER_MISSING';
  constructor(
    readonly missing: readonly Missing[],
    /** what was tried already (an install), said before the fix */
    tried?: string,
    options?: { cause?: unknown },
  ) {
    super(missingMessage(missing, tried), options);
  }
}

/** The path of `name`, or MissingServerError. */
export function requireServer(name: ServerName, env: NodeJS.ProcessEnv = process.env): string {
  const found = findServer(name, env);
  if (found.path === null) throw new MissingServerError([found]);
  return found.path;
}

/** The apt-get command that installs `names`, with sudo unless this process is root. */
export function installCommand(names: readonly ServerName[], root = isRoot()): string {
  const sudo = root ? '' : 'sudo ';
  return `${sudo}apt-get update -qq && ${sudo}env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${names.join(' ')}`;
}

export interface EnsureOptions {
  env?: NodeJS.ProcessEnv;
  /** where to search after PATH @default SBIN_DIRS */
  extraDirs?: readonly string[];
  /** may run apt-get (root only) @default unless HUBTIER_NO_INSTALL=1 */
  install?: boolean;
  /** progress lines @default stderr */
  say?: (line: string) => void;
}

/**
 * Both servers' paths. A server missing from PATH (no variable set) is installed with apt-get when
 * this process is root and may install; otherwise, or when a variable names a missing file,
 * MissingServerError.
 */
export function ensureServers(opts: EnsureOptions = {}): Record<ServerName, string> {
  const env = opts.env ?? process.env;
  const extraDirs = opts.extraDirs ?? SBIN_DIRS;
  const say = opts.say ?? ((line: string) => process.stderr.write(`${line}\n`));
  const lookAll = (): Lookup[] => (Object.keys(SERVERS) as ServerName[]).map((name) => findServer(name, env, extraDirs));
  let found = lookAll();
  const installable = found.filter((f): f is Missing => f.path === null && !env[SERVERS[f.name]]).map((f) => f.name);
  const mayInstall = opts.install ?? env.HUBTIER_NO_INSTALL !== '1';
  let tried: string | undefined;
  // apt-get and what it runs (dpkg, sh) live in the system dirs, whatever PATH the tests were given
  const systemPath = [env.PATH ?? '', ...extraDirs, '/usr/bin', '/bin'].filter((d) => d !== '').join(delimiter);
  if (installable.length > 0 && mayInstall && isRoot() && findOnPath('apt-get', systemPath, []) !== null) {
    const command = installCommand(installable, true);
    say(`hubtier: ${installable.join(' and ')} missing; installing: ${command}`);
    try {
      execFileSync('/bin/sh', ['-c', command], { stdio: ['ignore', 'inherit', 'inherit'], env: { ...env, PATH: systemPath } });
    } catch (err) {
      throw new MissingServerError(found.filter((f): f is Missing => f.path === null), `installing failed: ${(err as Error).message}`, { cause: err });
    }
    found = lookAll();
    tried = `installed with apt-get, yet still not found`;
  }
  const missing = found.filter((f): f is Missing => f.path === null);
  if (missing.length > 0) throw new MissingServerError(missing, tried);
  return Object.fromEntries(found.map((f) => [f.name, f.path])) as Record<ServerName, string>;
}

function missingMessage(missing: readonly Missing[], tried: string | undefined): string {
  const lines = missing.map((m) => `  ${m.name}: ${m.reason}`);
  const overridden = missing.filter((m) => m.reason.startsWith(SERVERS[m.name]));
  const searched = missing.filter((m) => !overridden.includes(m)).map((m) => m.name);
  const fix: string[] = [];
  for (const m of overridden) fix.push(`  unset ${SERVERS[m.name]}, or point it at a ${m.name} executable`);
  if (searched.length > 0) {
    fix.push(
      `  ${installCommand(searched)}`,
      `  (without apt-get: brew install ${searched.map((n) => (n === 'redis-server' ? 'redis' : n)).join(' ')}, or your package manager)`,
      `  or set ${searched.map((n) => `${SERVERS[n]}=/path/to/${n}`).join(' ')}`,
    );
  }
  const head = 'nats-server and redis-server are needed to run hubtier tests, benchmarks and load runs:';
  return [head, ...lines, ...(tried ? [`  (${tried})`] : []), 'Fix with:', ...fix].join('\n');
}

function isRoot(): boolean {
  return process.getuid?.() === 0;
}
