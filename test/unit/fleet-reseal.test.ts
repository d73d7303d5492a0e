/**
 * `npm run fleet -- reseal`: secrets sealed with an older key and secrets stored in clear are
 * sealed anew with the current key, the clear secrets unchanged; what cannot be opened is skipped
 * and named; the command line on an embedded store, and on one that is not the fleet's (a mistyped
 * --data-dir, an empty store), which it does not report as done.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { isSealed, keyId, SecretBox } from '../../src/auth/secret-box.js';
import { resealAll } from '../../src/fleet-reseal.js';
import { LmdbHubRegistry } from '../../src/ports/hub-registry/hub-registry-lmdb.js';
import { MemoryHubRegistry } from '../../src/ports/hub-registry/hub-registry-memory.js';
import { openDataStore } from '../../src/ports/lmdb.js';
import { scriptArgs } from '../helpers/server-process.js';

const keyA = Buffer.alloc(32, 7);
const keyB = Buffer.alloc(32, 8);
const keyC = Buffer.alloc(32, 9);
const hub = (hubId: string, secret: string) => ({ hubId, homeId: 'h', model: undefined, secret, enabled: true, createdAt: 1 });

describe('resealAll', () => {
  it('seals old-key and clear secrets with the current key, keeps what they open to, skips what it cannot open', async () => {
    const old = new SecretBox(keyA);
    const registry = new MemoryHubRegistry();
    await registry.create(hub('r-old', old.seal('r-old', 'secret-old')));
    await registry.create(hub('r-clear', 'secret-clear'));
    await registry.create(hub('r-rot', old.seal('r-rot', 'secret-1')));
    await registry.rotateSecret('r-rot', old.seal('r-rot', 'secret-2'), 99);
    await registry.create(hub('r-lost', new SecretBox(keyC).seal('r-lost', 'secret-lost')));
    const box = new SecretBox(keyB, [keyA]);
    await registry.create(hub('r-new', box.seal('r-new', 'secret-new')));
    const report = await resealAll(registry, box, 2);
    expect(report).toMatchObject({ examined: 5, resealed: 3 });
    expect(report.skipped).toEqual([expect.stringMatching(/^r-lost: .*key/)]);
    for (const [id, clear] of [['r-old', 'secret-old'], ['r-clear', 'secret-clear'], ['r-rot', 'secret-2'], ['r-new', 'secret-new']] as const) {
      const r = (await registry.get(id))!;
      expect(r.secret.split('.')[1], id).toBe(keyId(keyB));
      expect(new SecretBox(keyB).open(id, r.secret), id).toBe(clear);
    }
    const rot = (await registry.get('r-rot'))!;
    expect(rot.secretVersion).toBe(2);
    expect(rot.previousSecret?.until).toBe(99);
    expect(new SecretBox(keyB).open('r-rot', rot.previousSecret!.secret)).toBe('secret-1');
  });

  it('a rotation landing between the page read and the write is kept: the hub is skipped, named, resealed by the next run', async () => {
    const old = new SecretBox(keyA);
    const box = new SecretBox(keyB, [keyA]);
    const registry = new MemoryHubRegistry();
    await registry.create(hub('r-race', old.seal('r-race', 'secret-1')));
    // another node's rotation lands the moment the reseal writes (after its read of the page)
    const update = registry.update.bind(registry);
    registry.update = async (...args) => {
      registry.update = update;
      await registry.rotateSecret('r-race', box.seal('r-race', 'secret-2'), 99);
      return update(...args);
    };
    const report = await resealAll(registry, box);
    expect(report).toMatchObject({ examined: 1, resealed: 0, skipped: [expect.stringMatching(/^r-race: changed while resealing/)] });
    const r = (await registry.get('r-race'))!;
    expect(box.open('r-race', r.secret)).toBe('secret-2');
    expect(r.secretVersion).toBe(2);
    expect(box.open('r-race', r.previousSecret!.secret)).toBe('secret-1');
    expect(await resealAll(registry, box)).toMatchObject({ resealed: 1, skipped: [] });
    expect(box.open('r-race', (await registry.get('r-race'))!.secret)).toBe('secret-2');
  });

  it('the command line reseals an embedded store, where a secret was kept in clear, with the key and DATA_DIR from the node\'s CONFIG_FILE', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hubtier-reseal-'));
    const store = openDataStore(dir);
    await new LmdbHubRegistry(store).create(hub('cli-1', 'clear-secret-of-cli-1'));
    await store.close();
    const root = fileURLToPath(new URL('../..', import.meta.url));
    const configFile = join(dir, '..', `${basename(dir)}.json`);
    writeFileSync(configFile, JSON.stringify({ dataDir: dir, secretKey: keyB.toString('hex') }));
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TIER_SECRET_KEY') && k !== 'DATA_DIR'));
    const { stdout } = await promisify(execFile)(process.execPath, [...scriptArgs('src/fleet-cli.ts'), 'reseal'], { cwd: root, env: { ...env, CONFIG_FILE: configFile } });
    expect(stdout).toContain('examined 1 hubs, resealed 1, skipped 0');
    const after = openDataStore(dir);
    try {
      const r = (await new LmdbHubRegistry(after).get('cli-1'))!;
      expect(isSealed(r.secret)).toBe(true);
      expect(new SecretBox(keyB).open('cli-1', r.secret)).toBe('clear-secret-of-cli-1');
    } finally {
      await after.close();
    }
  });
  it('the command line refuses a DATA_DIR without a store, making nothing there, and exits 1 on a store without a hub: neither is reported as done', async () => {
    const root = fileURLToPath(new URL('../..', import.meta.url));
    // no TIER_SECRET_KEY: a key file would be made in DATA_DIR
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TIER_SECRET_KEY')));
    const cli = (dir: string) =>
      promisify(execFile)(process.execPath, [...scriptArgs('src/fleet-cli.ts'), 'reseal', '--data-dir', dir], { cwd: root, env }).then(
        (r) => ({ code: 0, ...r }),
        (e: { code: number; stdout: string; stderr: string }) => e,
      );
    const typo = join(mkdtempSync(join(tmpdir(), 'hubtier-reseal-')), 'typo');
    expect(await cli(typo)).toMatchObject({ code: 1, stdout: '', stderr: `fleet error: ${typo} holds no store (no hubtier.mdb): nothing resealed. Check DATA_DIR or --data-dir\n` });
    expect(existsSync(typo)).toBe(false);

    const empty = mkdtempSync(join(tmpdir(), 'hubtier-reseal-'));
    await openDataStore(empty).close();
    // a store whose node has its key elsewhere (CONFIG_FILE): no key file is made beside it
    expect(await cli(empty)).toMatchObject({ code: 1, stdout: '', stderr: expect.stringMatching(/^fleet error: no key: TIER_SECRET_KEY is unset \(in the environment and CONFIG_FILE\) and .* holds no secret\.key/) });
    expect(existsSync(join(empty, 'secret.key'))).toBe(false);
    writeFileSync(join(empty, 'secret.key'), `${keyA.toString('hex')}\n`, { mode: 0o600 });
    expect(await cli(empty)).toMatchObject({ code: 1, stdout: 'examined 0 hubs, resealed 0, skipped 0\n', stderr: expect.stringMatching(/^fleet error: no hub found: check --data-dir\. Keep the old key/) });
  });
});
