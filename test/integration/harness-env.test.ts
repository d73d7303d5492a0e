/**
 * Nodes the test, bench and chaos tools start keep to themselves: their own SECRETS_FILE (started
 * in the repository with the default, each took the quick start's generated admin token out of
 * ./.hubtier-secrets.env, and the demo's user tokens were refused after `npm test`), and no cluster
 * settings from the shell that runs them (README's three-node block exports NATS_URL and REDIS_URL:
 * a bench's standalone node tried to join that cluster). Review "sre".
 */
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { ROOT } from '../../load/harness/index.js';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.js';

let node: ServerProcess | undefined;
const saved = { NATS_URL: process.env.NATS_URL, REDIS_URL: process.env.REDIS_URL };
afterAll(async () => {
  for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k];
  else process.env[k] = v;
  await node?.stop();
});

it('a node started with cluster settings in the shell runs standalone, its secrets file its own', async () => {
  // nothing listens there: a node that took them would wait for them and exit
  process.env.NATS_URL = 'nats://127.0.0.1:9';
  process.env.REDIS_URL = 'redis://127.0.0.1:9';
  node = await startServerProcess();
  const env = Object.fromEntries(
    readFileSync(`/proc/${node.pid}/environ`, 'utf8')
      .split('\0')
      .filter(Boolean)
      .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
  );
  expect(env.NATS_URL).toBeUndefined();
  expect(env.REDIS_URL).toBeUndefined();
  expect(env.SECRETS_FILE!.startsWith(tmpdir())).toBe(true);
  expect(env.SECRETS_FILE).not.toBe(join(ROOT, '.hubtier-secrets.env'));
  const ready = (await (await fetch(`${node.adminUrl}/readyz`)).json()) as { mode: string };
  expect(ready.mode).toBe('embedded');
});
