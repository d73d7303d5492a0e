import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { scriptArgs } from '../helpers/server-process.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const run = (script: string, args: string[], env: Record<string, string>) =>
  promisify(execFile)(process.execPath, [...scriptArgs(script), ...args], { cwd: root, env: { ...process.env, ...env } }).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => e,
  );

describe('the command-line tools and their settings', () => {
  it('a flag wins: settings it gives are not read, so a bad value in the environment or CONFIG_FILE stops nothing', async () => {
    // a port nothing listens on: the doctor gets as far as asking it
    const flags = ['--url', 'http://127.0.0.1:9', '--token', 'cli-settings-admin-token-0123456789'];
    const bad: Array<Record<string, string>> = [{ ADMIN_TOKEN: 'short' }, { ADMIN_PORT: 'abc' }, { CONFIG_FILE: '/nonexistent/hubtier.json' }];
    for (const env of bad) {
      const r = await run('src/doctor-cli.ts', flags, env);
      expect(r.code, JSON.stringify(env)).toBe(1);
      expect(r.stderr, JSON.stringify(env)).toMatch(/cannot reach http:\/\/127\.0\.0\.1:9/);
    }
    // without the flag, the bad setting is the answer
    const r = await run('src/doctor-cli.ts', ['--url', 'http://127.0.0.1:9'], { ADMIN_TOKEN: 'short' });
    expect(r).toMatchObject({ code: 1, stderr: expect.stringMatching(/ADMIN_TOKEN: must be at least 24 characters/) });
  });
});
