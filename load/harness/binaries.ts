import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** The servers the harness starts, and the variable that names each one's path instead of a search. */
export const SERVERS = {
  'nats-server': 'NATS_SERVER_BIN',
  'redis-server': 'REDIS_SERVER_BIN',
} as const;
export type ServerName = keyof typeof SERVERS;

/**
 * Searched after PATH: Debian installs nats-server in /usr/sbin, which a normal user's PATH
 * often lacks.
 */
export const SBIN_DIRS: readonly string[] = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

export type Lookup = { name: ServerName; path: string } | { name: ServerName; path: null; reason: string };

/** A regular file this process may execute. */
export function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** The first executable `name` in the dirs of `pathVar`, then in `extraDirs`; null when there is none. */
export function findOnPath(name: string, pathVar: string, extraDirs: readonly string[] = SBIN_DIRS): string | null {
  const dirs = [...pathVar.split(delimiter).filter((d) => d !== ''), ...extraDirs];
  for (const dir of dirs) {
    const candidate = join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return null;
}

/**
 * Where a server is: the path its variable names (when set, nothing else is tried, so a wrong
 * value is reported instead of silently replaced), else the PATH and sbin search.
 */
export function findServer(name: ServerName, env: NodeJS.ProcessEnv = process.env, extraDirs: readonly string[] = SBIN_DIRS): Lookup {
  const variable = SERVERS[name];
  const override = env[variable];
  if (override !== undefined && override !== '') {
    return isExecutable(override) ? { name, path: override } : { name, path: null, reason: `${variable}=${override} is not an executable file` };
  }
  const found = findOnPath(name, env.PATH ?? '', extraDirs);
  return found !== null ? { name, path: found } : { name, path: null, reason: `not on PATH nor in ${extraDirs.join(', ')}` };
}
