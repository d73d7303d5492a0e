import { createHash } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';

/**
 * The simulator's hub secrets, kept across runs in a JSON file (mode 0600), per registry: the
 * server only tells a hub's secret when it provisions it, so a later run needs the file to
 * connect the same hubs. A registry is what holds the hubs: one embedded server, or the Redis
 * of a cluster, which every node shares; keyed so, a run against any node of the cluster finds
 * the secrets a run against another node saved.
 */

interface SecretsFile {
  /** per registry name, per hub id */
  registries: Record<string, Record<string, string>>;
  /** files of older simulators: per admin API origin (read, never written) */
  servers?: Record<string, Record<string, string>>;
}

/**
 * The registry name when the user gives none: derived from the admin token, which every node of
 * a cluster shares (and a server started without one generates afresh, with an empty registry).
 * A digest, so the file never holds the token.
 */
export function defaultRegistry(adminToken: string): string {
  return `admin-${createHash('sha256').update(adminToken).digest('hex').slice(0, 12)}`;
}

async function readSecrets(path: string): Promise<SecretsFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { registries: {} };
    throw err;
  }
  const isMap = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  const parsed: unknown = JSON.parse(text);
  if (!isMap(parsed) || !isMap(parsed.registries ?? {}) || !isMap(parsed.servers ?? {})) {
    throw new Error(`${path}: not a simulator secrets file ({"registries": {...}})`);
  }
  const file = parsed as Partial<SecretsFile>;
  return { registries: file.registries ?? {}, servers: file.servers };
}

/**
 * The saved secrets of `registry` by hub id (a null-prototype map: hub ids are data); `legacyOrigin`
 * also finds those an older simulator saved under the server's URL. Empty when `path` is null.
 */
export async function loadSecrets(path: string | null, registry: string, legacyOrigin: string): Promise<Record<string, string>> {
  const out = Object.create(null) as Record<string, string>;
  if (path === null) return out;
  const file = await readSecrets(path);
  const legacy = file.servers !== undefined && Object.hasOwn(file.servers, legacyOrigin) ? file.servers[legacyOrigin] : undefined;
  const mine = Object.hasOwn(file.registries, registry) ? file.registries[registry] : undefined;
  return Object.assign(out, legacy, mine);
}

/** Merges this run's secrets into the file as it is now (another run may have written it). */
export async function saveSecrets(path: string | null, registry: string, secrets: ReadonlyMap<string, string>): Promise<void> {
  if (path === null || secrets.size === 0) return;
  const file = await readSecrets(path);
  const mine = Object.hasOwn(file.registries, registry) ? file.registries[registry]! : (file.registries[registry] = {});
  for (const [hubId, secret] of secrets) mine[hubId] = secret;
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600 });
  await rename(tmp, path);
}
