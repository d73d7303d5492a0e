/**
 * Nodes of one cluster (in-process nodes on one nats-server and redis-server, and one node process)
 * must share JWT_SECRET, ADMIN_TOKEN and TIER_SECRET_KEY: a node given another one refuses to start
 * naming it (it used to start ready and refuse the other nodes' tokens and hubs); the same secrets,
 * a documented key rotation, a token rotation in two rolls (JWT_SECRETS_ACCEPTED, ADMIN_TOKENS_ACCEPTED)
 * in which every node takes every other's tokens, and one declared with TIER_SECRETS_CHANGED start, and
 * `/debug/diagnose` of a running node tells when another node's start changed the record; `fleet reseal --redis`
 * refuses a key the nodes do not seal with.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ExitedError, startNats, startNode, startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import type { CheckResult, DiagnoseReport } from '../../src/admin/diagnose.js';
import { startServer, type RunningServer } from '../../src/compose/server.js';
import { ConfigError } from '../../src/config/config.js';
import { createLogger } from '../../src/log/logger.js';
import { inProcessConfig } from '../helpers/in-process-config.js';
import { api, scriptArgs } from '../helpers/server-process.js';
import { keyId } from '../../src/auth/secret-box.js';

const ADMIN = 'cluster-admin-token-0123456789abcdef';
const JWT = 'cluster-jwt-secret-0123456789abcdef0123';
const key = (name: string) => createHash('sha256').update(`cluster-secrets-test:${name}`).digest('hex');
const K1 = key('one');
const K2 = key('two');
const keyOf = (hex: string) => keyId(Buffer.from(hex, 'hex'));
/** One field of a hash in the test's Redis, on a connection of its own. */
const redisHget = async (url: string, hash: string, field: string): Promise<string | null> => {
  const client = new Redis(url);
  try {
    return await client.hget(hash, field);
  } finally {
    client.disconnect();
  }
};

describe('cluster nodes must share their secrets', { timeout: 60_000 }, () => {
  let nats: Backend;
  let redis: Backend;
  let prefix: string;
  const running: RunningServer[] = [];

  beforeAll(async () => {
    [nats, redis] = await Promise.all([startNats(), startRedis()]);
  }, 60_000);
  afterEach(async () => {
    await Promise.allSettled(running.splice(0).map((s) => s.close()));
  });
  afterAll(async () => {
    await Promise.allSettled([nats?.stop(), redis?.stop()]);
  });

  /** A node of the test's cluster: its own prefix's record, the cluster's secrets unless `env` says otherwise. */
  const node = async (env: Record<string, string> = {}, adminToken = ADMIN, jwtSecret = JWT): Promise<RunningServer> => {
    const config = inProcessConfig(adminToken, jwtSecret, { NATS_URL: nats.url, REDIS_URL: redis.url, TIER_REDIS_PREFIX: prefix, TIER_SECRET_KEY: K1, TIER_BACKEND_START_WAIT_MS: '0', ...env });
    const server = await startServer(config, createLogger('silent'));
    running.push(server);
    return server;
  };
  const refusal = async (start: Promise<unknown>): Promise<string> => {
    const err = await start.then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).message;
  };
  const secretsCheck = async (server: RunningServer, token = ADMIN): Promise<CheckResult | undefined> => {
    const r = await api(`http://127.0.0.1:${server.adminPort}`, 'GET', '/debug/diagnose', token);
    expect(r.status).toBe(200);
    return (r.body as DiagnoseReport).checks.find((c) => c.name === 'cluster-secrets');
  };

  it('starts a second node with the same secrets; diagnose says they agree', async () => {
    prefix = uniquePrefix();
    const a = await node();
    const b = await node();
    expect(await secretsCheck(a)).toMatchObject({ verdict: 'ok' });
    expect(await secretsCheck(b)).toMatchObject({ verdict: 'ok' });
  });

  it('refuses a node with another JWT_SECRET, naming it and not its value', async () => {
    prefix = uniquePrefix();
    await node();
    const message = await refusal(node({}, ADMIN, 'another-jwt-secret-0123456789abcdef0123'));
    expect(message).toMatch(/^JWT_SECRET: not the value the other nodes of this cluster were started with/);
    expect(message).toMatch(/TIER_SECRETS_CHANGED=JWT_SECRET/);
    expect(message).not.toMatch(/ADMIN_TOKEN|TIER_SECRET_KEY/);
    expect(message).not.toContain('another-jwt-secret');
  });

  it('refuses a node with another ADMIN_TOKEN, naming it', async () => {
    prefix = uniquePrefix();
    await node();
    const message = await refusal(node({}, 'another-admin-token-0123456789abcdef'));
    expect(message).toMatch(/^ADMIN_TOKEN: /);
    expect(message).not.toMatch(/JWT_SECRET|TIER_SECRET_KEY/);
    expect(message).not.toContain('another-admin-token');
  });

  it('refuses a node with another TIER_SECRET_KEY while the registry holds no hub yet', async () => {
    prefix = uniquePrefix();
    await node();
    const message = await refusal(node({ TIER_SECRET_KEY: K2 }));
    expect(message).toMatch(/^TIER_SECRET_KEY: /);
    expect(message).toMatch(/neither opens the other's/);
    expect(message).not.toContain(K2);
  });

  it('starts the nodes of a key rotation as documented (new key, the old one in TIER_SECRET_KEYS_OLD), then without the old key', async () => {
    prefix = uniquePrefix();
    const a = await node();
    const b = await node({ TIER_SECRET_KEY: K2, TIER_SECRET_KEYS_OLD: K1 });
    // a, not yet restarted, cannot open what b seals from now on: said, not failed
    expect(await secretsCheck(a)).toMatchObject({ verdict: 'warn', detail: expect.stringMatching(/key rotation is under way/) });
    expect(await secretsCheck(b)).toMatchObject({ verdict: 'ok' });
    await a.close();
    const a2 = await node({ TIER_SECRET_KEY: K2, TIER_SECRET_KEYS_OLD: K1 });
    expect(await secretsCheck(a2)).toMatchObject({ verdict: 'ok' });
    // the old key dropped once resealed
    await node({ TIER_SECRET_KEY: K2 });
    // a node still given the old key alone is refused now
    expect(await refusal(node({ TIER_SECRET_KEY: K1 }))).toMatch(/^TIER_SECRET_KEY: /);
  });

  it('starts a node bringing a new JWT_SECRET with TIER_SECRETS_CHANGED; the node left on the old one fails diagnose, and a new node on it is refused', async () => {
    prefix = uniquePrefix();
    const a = await node();
    const NEW = 'rotated-jwt-secret-0123456789abcdef0123';
    await node({ TIER_SECRETS_CHANGED: 'JWT_SECRET' }, ADMIN, NEW);
    expect(await secretsCheck(a)).toMatchObject({ verdict: 'fail', detail: expect.stringMatching(/JWT_SECRET is not the one/) });
    expect(await refusal(node())).toMatch(/^JWT_SECRET: /);
    await node({}, ADMIN, NEW);
  });

  it('rotates JWT_SECRET and ADMIN_TOKEN in two rolls with no node refusing another\'s tokens, and refuses a node that skips the first roll', async () => {
    prefix = uniquePrefix();
    const NEW = 'rotated-jwt-secret-0123456789abcdef0123';
    const NEW_ADMIN = 'rotated-admin-token-0123456789abcdef';
    const mint = async (s: RunningServer, admin: string) => (await api(`http://127.0.0.1:${s.port}`, 'POST', '/v1/admin/tokens', admin, { sub: 'rita', homes: ['h1'] })).body.token as string;
    const status = async (s: RunningServer, token: string) => (await api(`http://127.0.0.1:${s.port}`, 'GET', '/v1/homes/h1/rules', token)).status;
    const a = await node();
    const fromA = await mint(a, ADMIN);
    // roll one: every node accepts the new values beside the old, which still sign
    const b = await node({ JWT_SECRETS_ACCEPTED: NEW, ADMIN_TOKENS_ACCEPTED: NEW_ADMIN });
    expect(await secretsCheck(a)).toMatchObject({ verdict: 'ok' });
    // a node of the settings before the roll, started during it (a rollout undone, a pod recreated),
    // does not retire the new values: the roll's nodes go on starting and agreeing (review "diff14")
    const undone = await node();
    const again = await node({ JWT_SECRETS_ACCEPTED: NEW, ADMIN_TOKENS_ACCEPTED: NEW_ADMIN });
    expect(await secretsCheck(b)).toMatchObject({ verdict: 'ok' });
    await Promise.all([undone.close(), again.close()]);
    await a.close();
    // roll two: the new values sign, the old ones are accepted beside them
    const c = await node({ JWT_SECRETS_ACCEPTED: JWT, ADMIN_TOKENS_ACCEPTED: ADMIN }, NEW_ADMIN, NEW);
    const fromB = await mint(b, ADMIN);
    const fromC = await mint(c, NEW_ADMIN);
    for (const [server, token] of [[b, fromC], [c, fromB], [c, fromA], [b, fromA], [b, NEW_ADMIN], [c, ADMIN]] as const) expect(await status(server, token)).toBe(200);
    expect(await secretsCheck(b)).toMatchObject({ verdict: 'warn', detail: expect.stringMatching(/rotation is under way/), hint: expect.stringMatching(/finish the JWT_SECRET rotation/) });
    expect(await secretsCheck(c, NEW_ADMIN)).toMatchObject({ verdict: 'ok' });
    // what the old values still let in is counted, so an operator knows when they can go
    const metrics = await (await fetch(`http://127.0.0.1:${c.adminPort}/metrics`)).text();
    expect(metrics).toMatch(/^tier_auth_accepted_secret_total\{kind="jwt"\} 2$/m);
    expect(metrics).toMatch(/^tier_auth_accepted_secret_total\{kind="admin"\} 1$/m);
    // the admin port takes the same tokens as the API
    expect(await secretsCheck(c, ADMIN)).toMatchObject({ verdict: 'ok' });
    // the old values dropped: their tokens go, the new ones work everywhere
    await b.close();
    const d = await node({}, NEW_ADMIN, NEW);
    expect(await status(d, fromC)).toBe(200);
    expect(await status(d, fromB)).toBe(401);
    expect(await status(d, ADMIN)).toBe(401);
    // a node the last roll missed still lets the dropped values in, and says so (review "rotation")
    expect(await status(c, fromB)).toBe(200);
    expect(await secretsCheck(c, NEW_ADMIN)).toMatchObject({
      verdict: 'fail',
      detail: expect.stringMatching(/JWT_SECRETS_ACCEPTED holds a value the cluster dropped.*ADMIN_TOKENS_ACCEPTED holds a value the cluster dropped/),
      hint: expect.stringMatching(/restart it without it in JWT_SECRETS_ACCEPTED and ADMIN_TOKENS_ACCEPTED/),
    });
    expect(await secretsCheck(d, NEW_ADMIN)).toMatchObject({ verdict: 'ok' });
    // and a node started since with the middle roll's settings is refused, unless it takes them back on purpose
    const stale = await refusal(node({ JWT_SECRETS_ACCEPTED: JWT, ADMIN_TOKENS_ACCEPTED: ADMIN }, NEW_ADMIN, NEW));
    expect(stale).toMatch(/^JWT_SECRET, ADMIN_TOKEN: JWT_SECRETS_ACCEPTED holds a value the cluster dropped.*TIER_SECRETS_CHANGED=JWT_SECRET,ADMIN_TOKEN/);
    expect(stale).not.toContain(JWT);
    const back = await node({ JWT_SECRETS_ACCEPTED: JWT, TIER_SECRETS_CHANGED: 'JWT_SECRET' }, NEW_ADMIN, NEW);
    expect(await status(back, fromB)).toBe(200);
    expect(await secretsCheck(c, NEW_ADMIN)).toMatchObject({ verdict: 'fail', detail: expect.not.stringMatching(/JWT_SECRETS_ACCEPTED/) });
    // a node of roll two against a cluster that never had roll one: what it mints would be refused there
    prefix = uniquePrefix();
    await node();
    const message = await refusal(node({ JWT_SECRETS_ACCEPTED: JWT }, ADMIN, NEW));
    expect(message).toMatch(/^JWT_SECRET: .*roll it out there first/);
    expect(message).not.toContain(NEW);
  });

  it('fleet reseal --redis refuses a key the nodes do not seal with, leaving every hub as it was; --force and the documented order reseal', async () => {
    prefix = uniquePrefix();
    const a = await node();
    expect((await api(`http://127.0.0.1:${a.port}`, 'POST', '/v1/admin/hubs', ADMIN, { hubId: 'reseal-1', homeId: 'h1' })).status).toBe(201);
    const sealedWith = async () => (await redisHget(redis.url, `${prefix}{h:reseal-1}:hub`, 'secret'))?.split('.')[1];
    const root = fileURLToPath(new URL('../..', import.meta.url));
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TIER_SECRET_KEY')));
    const reseal = (key: string, old: string, ...flags: string[]) =>
      promisify(execFile)(process.execPath, [...scriptArgs('src/fleet-cli.ts'), 'reseal', '--redis', redis.url, '--prefix', prefix, ...flags], { cwd: root, env: { ...env, TIER_SECRET_KEY: key, TIER_SECRET_KEYS_OLD: old } }).then(
        (r) => ({ code: 0, ...r }),
        (e: { code: number; stdout: string; stderr: string }) => e,
      );
    // the new key before any node has it: refused, nothing written
    const refused = await reseal(K2, K1);
    expect(refused).toMatchObject({ code: 1, stdout: '' });
    expect(refused.stderr).toMatch(new RegExp(`^fleet error: TIER_SECRET_KEY \\(key ${keyOf(K2)}\\) is not the key this cluster's nodes seal with \\(${keyOf(K1)}, recorded by the last node started in Redis key ${prefix}cluster:secrets\\)`));
    expect(refused.stderr).not.toContain(K2);
    expect(await sealedWith()).toBe(keyOf(K1));
    // the documented order: a node given the new key (the old one beside it), then the reseal
    await node({ TIER_SECRET_KEY: K2, TIER_SECRET_KEYS_OLD: K1 });
    expect(await reseal(K2, K1)).toMatchObject({ code: 0, stdout: expect.stringContaining('examined 1 hubs, resealed 1, skipped 0') });
    expect(await sealedWith()).toBe(keyOf(K2));
    // --force: the operator's word that no node runs with the recorded key any more
    expect(await reseal(K1, K2)).toMatchObject({ code: 1 });
    expect(await reseal(K1, K2, '--force')).toMatchObject({ code: 0, stdout: expect.stringContaining('resealed 1, skipped 0') });
    expect(await sealedWith()).toBe(keyOf(K1));
  });

  it('a node process refused for its JWT_SECRET exits 2 with a configuration error on stderr', async () => {
    prefix = uniquePrefix();
    await node();
    const env = { NATS_URL: nats.url, REDIS_URL: redis.url, TIER_REDIS_PREFIX: prefix, TIER_SECRET_KEY: K1, TIER_BACKEND_START_WAIT_MS: '0' };
    const err = await startNode({ env, adminToken: ADMIN, jwtSecret: 'process-jwt-secret-0123456789abcdef0123', measured: false }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ExitedError);
    expect((err as ExitedError).exitCode).toBe(2);
    expect((err as ExitedError).output).toMatch(/configuration error: JWT_SECRET: not the value the other nodes of this cluster were started with/);
  });
});
