/**
 * The embedded default's generated ADMIN_TOKEN and JWT_SECRET, kept across restarts in SECRETS_FILE.
 * Until 2026-12-06 each start generated new ones while DATA_DIR kept the hubs: the README's quick
 * start broke on its second run (the simulator's hubs skipped, user tokens refused: a newcomer's
 * walk through the README). A start without them reads the file an earlier start wrote, if it is
 * a regular file of this user that only this user can read; cluster mode never does (every node
 * needs the same values, set).
 */
import { lstatSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';

export const SECRET_NAMES = ['ADMIN_TOKEN', 'JWT_SECRET'] as const;
export type SecretName = (typeof SECRET_NAMES)[number];

/** Where generated secrets are written and read (SECRETS_FILE; empty is unset). */
export function secretsFilePath(env: NodeJS.ProcessEnv): string {
  return resolve(env.SECRETS_FILE || '.hubtier-secrets.env');
}

/**
 * Sets in `env` the secrets it lacks (unset or empty) from the file at `path`, in the embedded
 * default only; answers the names set, or why the file was passed over (null: no file, or none lacking).
 */
export function adoptSavedSecrets(env: NodeJS.ProcessEnv, path: string): { adopted: SecretName[] } | { refused: string } | null {
  if (env.NATS_URL || env.REDIS_URL) return null;
  const lacking = SECRET_NAMES.filter((name) => !env[name]);
  if (lacking.length === 0) return null;
  let text: string;
  try {
    const stat = lstatSync(path);
    if (!stat.isFile()) return { refused: 'not a regular file' };
    if (typeof process.getuid === 'function' && stat.uid !== process.getuid()) return { refused: 'owned by another user' };
    if ((stat.mode & 0o077) !== 0) return { refused: 'readable by others (its mode is not 0600)' };
    text = readFileSync(path, 'utf8');
  } catch {
    return null;
  }
  const adopted: SecretName[] = [];
  for (const name of lacking) {
    const value = new RegExp(`^${name}=(\\S+)$`, 'm').exec(text)?.[1];
    if (value === undefined) continue;
    env[name] = value;
    adopted.push(name);
  }
  return adopted.length > 0 ? { adopted } : null;
}
