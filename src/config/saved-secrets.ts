/**
 * The embedded default's generated ADMIN_TOKEN and JWT_SECRET, kept across restarts in SECRETS_FILE.
 * Until 2026-12-06 each start generated new ones while DATA_DIR kept the hubs: the README's quick
 * start broke on its second run (the simulator's hubs skipped, user tokens refused: a newcomer's
 * walk through the README). A start without them reads the file an earlier start wrote, if it is a
 * regular file of this user that only this user can read; never in cluster mode (every node needs
 * the same values, set) nor for a value CONFIG_FILE gives (the operator's). Only generated values
 * (and those read back) are written, to a new file renamed over the path, and never over a file the
 * read refused: a file or symlink planted by another user would otherwise receive them (a review).
 */
import { lstatSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { readConfigFile } from './config-file.js';

export const SECRET_NAMES = ['ADMIN_TOKEN', 'JWT_SECRET'] as const;
export type SecretName = (typeof SECRET_NAMES)[number];

/** the shortest value config.ts takes for each: a shorter one in the file is passed over, not refused at start */
const MIN_CHARS: Record<SecretName, number> = { ADMIN_TOKEN: 24, JWT_SECRET: 32 };

export interface SavedSecrets {
  readonly path: string;
  /** names whose value came from the file */
  readonly adopted: SecretName[];
  /** why the file was passed over, and so is not written either (null: read, or absent) */
  readonly refused: string | null;
  /** names the environment or CONFIG_FILE now gives another value of: forgetSuperseded takes them out of the file */
  readonly superseded: SecretName[];
}

/** Where generated secrets are written and read (SECRETS_FILE; empty is unset). */
export function secretsFilePath(env: NodeJS.ProcessEnv): string {
  return resolve(env.SECRETS_FILE || '.hubtier-secrets.env');
}

/** Why `path` is not this user's own 0600 regular file (null: it is, or it does not exist). */
function foreign(path: string): string | null {
  try {
    const stat = lstatSync(path);
    if (!stat.isFile()) return 'not a regular file (a symlink or a directory)';
    if (typeof process.getuid === 'function' && stat.uid !== process.getuid()) return 'owned by another user';
    if ((stat.mode & 0o077) !== 0) return 'readable or writable by others (its mode is not 0600)';
    return null;
  } catch {
    return null;
  }
}

/** The CONFIG_FILE key of each. */
const FILE_KEY: Record<SecretName, string> = { ADMIN_TOKEN: 'adminToken', JWT_SECRET: 'jwtSecret' };

/**
 * Sets in `env` the secrets it lacks (unset or empty) from the file, in the embedded default. A
 * secret CONFIG_FILE sets is the operator's and is not replaced; one it lacks is generated as
 * without it, so it is read back too (until 2026-12-06 a CONFIG_FILE left both generated anew at
 * every start, every user token refused after a restart, while the log said they were kept).
 */
export function adoptSavedSecrets(env: NodeJS.ProcessEnv, path: string): SavedSecrets {
  const none = { path, adopted: [], refused: null, superseded: [] };
  if (env.NATS_URL || env.REDIS_URL) return none;
  let file: Record<string, unknown> = {};
  try {
    file = readConfigFile(env.CONFIG_FILE);
  } catch {
    return none; // the start refuses the file itself, naming it
  }
  if (file.natsUrl !== undefined || file.redisUrl !== undefined) return none;
  const given = (name: SecretName): string | undefined => env[name] || (typeof file[FILE_KEY[name]] === 'string' && file[FILE_KEY[name]] !== '' ? (file[FILE_KEY[name]] as string) : undefined);
  const refused = foreign(path);
  if (refused !== null) return SECRET_NAMES.some((name) => given(name) === undefined) ? { ...none, refused } : none;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return none;
  }
  const saved = Object.fromEntries(SECRET_NAMES.map((name) => [name, new RegExp(`^${name}=(\\S+)\\s*$`, 'm').exec(text)?.[1]])) as Record<SecretName, string | undefined>;
  const adopted: SecretName[] = [];
  const superseded: SecretName[] = [];
  for (const name of SECRET_NAMES) {
    const value = saved[name];
    if (value === undefined) continue;
    const set = given(name);
    // a value set since (a rotation) takes the generated one's place for good: left in the file,
    // the rotated-out value came back at the first start without the variable (review "rotation");
    // taken out by forgetSuperseded once the configuration was taken
    if (set !== undefined) {
      if (set !== value) superseded.push(name);
      continue;
    }
    if (value.length < MIN_CHARS[name]) continue;
    env[name] = value;
    adopted.push(name);
  }
  return { path, adopted, refused: null, superseded };
}

/**
 * Takes the superseded values out of the file, keeping the ones read back; once the configuration
 * was taken: a start refused for a bad value had already lost the saved secret, every user token
 * refused at the next start (review "diff14"). Answers why it could not (undefined: done, or nothing to do).
 */
export function forgetSuperseded(saved: SavedSecrets, env: NodeJS.ProcessEnv): string | undefined {
  if (saved.superseded.length === 0) return undefined;
  try {
    saveSecrets(saved, Object.fromEntries(saved.adopted.map((name) => [name, env[name]])));
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Writes `values` (generated or read back: never one the environment gave) to a new 0600 file renamed over the path; throws on failure. */
export function saveSecrets(saved: SavedSecrets, values: Partial<Record<SecretName, string>>): void {
  if (saved.refused !== null) throw new Error(`${saved.path} was not read (${saved.refused}), so it is not written either`);
  const lines = SECRET_NAMES.flatMap((name) => (values[name] === undefined ? [] : [`${name}=${values[name]}\n`])).join('');
  const aside = `${saved.path}.${process.pid}.partial`;
  try {
    // a new file ('wx'): nothing at the path, symlink or not, is written through
    writeFileSync(aside, lines, { mode: 0o600, flag: 'wx' });
    renameSync(aside, saved.path);
  } catch (err) {
    rmSync(aside, { force: true });
    throw err;
  }
}
