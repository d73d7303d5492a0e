/**
 * The embedded default's generated secrets kept in SECRETS_FILE (src/config/saved-secrets.ts): read
 * back only from this user's own 0600 regular file, never written through a file the read refused
 * (a symlink, another user's or a world-readable file: a review found the node wrote its secrets
 * into a file it had refused), and not read in cluster mode nor for a value CONFIG_FILE sets.
 */
import { chmodSync, lstatSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { adoptSavedSecrets, forgetSuperseded, saveSecrets } from '../../src/config/saved-secrets.js';

const ADMIN = 'a'.repeat(10) + 'b'.repeat(20);
const JWT = 'c'.repeat(20) + 'd'.repeat(20);
const dir = () => mkdtempSync(join(tmpdir(), 'saved-secrets-'));
const own = (path: string, text: string) => {
  writeFileSync(path, text, { mode: 0o600 });
  chmodSync(path, 0o600);
};

describe('saved secrets', () => {
  it('reads back the missing ones from its own 0600 file (CRLF and other lines tolerated); a value too short is passed over', () => {
    const path = join(dir(), 's.env');
    own(path, `# kept\r\nADMIN_TOKEN=${ADMIN}\r\nJWT_SECRET=short\r\n`);
    const env: NodeJS.ProcessEnv = {};
    expect(adoptSavedSecrets(env, path)).toEqual({ path, adopted: ['ADMIN_TOKEN'], refused: null, superseded: [] });
    expect(env).toEqual({ ADMIN_TOKEN: ADMIN });
  });

  it('takes out of the file a value the environment now sets otherwise, so a rotated-out secret never comes back (review "rotation")', () => {
    const path = join(dir(), 's.env');
    own(path, `ADMIN_TOKEN=${ADMIN}\nJWT_SECRET=${JWT}\n`);
    const ROTATED = 'r'.repeat(40);
    const env: NodeJS.ProcessEnv = { JWT_SECRET: ROTATED };
    const saved = adoptSavedSecrets(env, path);
    expect(saved).toEqual({ path, adopted: ['ADMIN_TOKEN'], refused: null, superseded: ['JWT_SECRET'] });
    expect(env).toEqual({ ADMIN_TOKEN: ADMIN, JWT_SECRET: ROTATED });
    // nothing written before the configuration is taken: a start refused for a bad value lost the saved secret (review "diff14")
    expect(readFileSync(path, 'utf8')).toContain(JWT);
    expect(forgetSuperseded(saved, env)).toBeUndefined();
    expect(readFileSync(path, 'utf8')).toBe(`ADMIN_TOKEN=${ADMIN}\n`);
    expect(lstatSync(path).mode & 0o777).toBe(0o600);
    // the variable gone again: no old value to take back (the start generates a new one)
    const later: NodeJS.ProcessEnv = {};
    expect(adoptSavedSecrets(later, path).adopted).toEqual(['ADMIN_TOKEN']);
    expect(later.JWT_SECRET).toBeUndefined();
    // the same value set as kept: the file stays as it is
    own(path, `ADMIN_TOKEN=${ADMIN}\nJWT_SECRET=${JWT}\n`);
    const same = adoptSavedSecrets({ JWT_SECRET: JWT }, path);
    expect(same.superseded).toEqual([]);
    expect(forgetSuperseded(same, {})).toBeUndefined();
    expect(readFileSync(path, 'utf8')).toContain(JWT);
  });

  it('reads nothing in cluster mode (by the environment or CONFIG_FILE), for what CONFIG_FILE sets, or when both are set', () => {
    const d = dir();
    const path = join(d, 's.env');
    own(path, `ADMIN_TOKEN=${ADMIN}\nJWT_SECRET=${JWT}\n`);
    const clusterFile = join(d, 'cluster.json');
    writeFileSync(clusterFile, JSON.stringify({ natsUrl: 'nats://x:4222', redisUrl: 'redis://x:6379' }));
    const setsBoth = join(d, 'both.json');
    writeFileSync(setsBoth, JSON.stringify({ adminToken: 'f'.repeat(30) + 'g', jwtSecret: 'h'.repeat(40) + 'i' }));
    for (const env of [{ NATS_URL: 'nats://x' }, { CONFIG_FILE: clusterFile }, { CONFIG_FILE: setsBoth }, { CONFIG_FILE: join(d, 'missing.json') }, { ADMIN_TOKEN: 'x'.repeat(30) + 'y', JWT_SECRET: 'z'.repeat(40) + 'w' }]) {
      const copy: NodeJS.ProcessEnv = { ...env };
      expect(adoptSavedSecrets(copy, path).adopted).toEqual([]);
      expect(copy).toEqual(env);
    }
  });

  it('reads back what a CONFIG_FILE leaves unset: generated at each start and never read, every token broke at a restart (review config)', () => {
    const d = dir();
    const path = join(d, 's.env');
    own(path, `ADMIN_TOKEN=${ADMIN}\nJWT_SECRET=${JWT}\n`);
    const portOnly = join(d, 'port.json');
    writeFileSync(portOnly, JSON.stringify({ port: 8081 }));
    const env: NodeJS.ProcessEnv = { CONFIG_FILE: portOnly };
    expect(adoptSavedSecrets(env, path).adopted).toEqual(['ADMIN_TOKEN', 'JWT_SECRET']);
    expect(env).toMatchObject({ ADMIN_TOKEN: ADMIN, JWT_SECRET: JWT });
    const adminOnly = join(d, 'admin.json');
    writeFileSync(adminOnly, JSON.stringify({ adminToken: 'f'.repeat(30) + 'g' }));
    const env2: NodeJS.ProcessEnv = { CONFIG_FILE: adminOnly };
    expect(adoptSavedSecrets(env2, path).adopted).toEqual(['JWT_SECRET']);
    expect(env2.ADMIN_TOKEN).toBeUndefined();
  });

  it('a symlink, or a file others may read, is neither read nor written through', () => {
    const d = dir();
    const target = join(d, 'victim');
    own(target, 'precious\n');
    const link = join(d, 'link.env');
    symlinkSync(target, link);
    const viaLink = adoptSavedSecrets({}, link);
    expect(viaLink.refused).toMatch(/not a regular file/);
    expect(() => saveSecrets(viaLink, { JWT_SECRET: JWT })).toThrow(/not read/);
    expect(readFileSync(target, 'utf8')).toBe('precious\n');
    expect(lstatSync(link).isSymbolicLink()).toBe(true);

    const open = join(d, 'open.env');
    writeFileSync(open, `ADMIN_TOKEN=${ADMIN}\n`);
    chmodSync(open, 0o666);
    const shared = adoptSavedSecrets({}, open);
    expect(shared.refused).toMatch(/readable or writable by others/);
    expect(() => saveSecrets(shared, { JWT_SECRET: JWT })).toThrow();
    expect(readFileSync(open, 'utf8')).toBe(`ADMIN_TOKEN=${ADMIN}\n`);
  });

  it('writes the values given, to a new 0600 file renamed over the path', () => {
    const path = join(dir(), 's.env');
    saveSecrets(adoptSavedSecrets({}, path), { JWT_SECRET: JWT });
    expect(readFileSync(path, 'utf8')).toBe(`JWT_SECRET=${JWT}\n`);
    expect(lstatSync(path).mode & 0o777).toBe(0o600);
  });
});
