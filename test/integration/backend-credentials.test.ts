/**
 * Backends that require credentials: a nats-server with `--user/--pass` and a redis-server with
 * `--requirepass`. Credentials in NATS_URL log the node in (the NATS client ignores them in a server
 * URL; the node passes them as options). A wrong password is named as such (Authorization
 * Violation, WRONGPASS, NOAUTH) in the `waiting for backends` line, the fatal line and `/readyz`'s
 * `lastError`, none of which carries the password. While it waits for Redis the node keeps its one
 * NATS connection instead of reconnecting NATS at every Redis attempt.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, requireServer, start, startNats, startNode, startRedis, uniquePrefix, ExitedError, type Backend, type NodeProc } from '../../load/harness/index.js';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { api, scriptArgs } from '../helpers/server-process.js';
import { makeNatsOperator, makeTestPki } from '../helpers/test-pki.js';
import { eventually } from '../helpers/eventually.js';

const NATS_USER = 'hubtier';
const NATS_PASS = 'N4tsRightPw-credentials-test';
const REDIS_PASS = 'R3disRightPw-credentials-test';
const WRONG = 'WrongPw-credentials-test';

let nats: Backend;
let redis: Backend;
const started: Array<Backend | NodeProc> = [];
beforeAll(async () => {
  [nats, redis] = await Promise.all([startNats({ auth: { user: NATS_USER, pass: NATS_PASS } }), startRedis({ requirePass: REDIS_PASS })]);
  started.push(nats, redis);
});
afterAll(async () => {
  await Promise.allSettled(started.splice(0).map((p) => ('kind' in p ? p.stop() : p.kill())));
});

const natsUrl = (pass: string) => `nats://${NATS_USER}:${pass}@127.0.0.1:${nats.port}`;
const redisUrl = (pass: string | null) => (pass === null ? `redis://127.0.0.1:${redis.port}` : `redis://:${pass}@127.0.0.1:${redis.port}`);
const parse = (lines: string[]) => lines.map((l) => JSON.parse(l) as Record<string, unknown>);

/**
 * A node that cannot log in to one backend, waiting for it: what `/readyz` says once it names
 * `backend`, with the node's lines so far. The node is stopped afterwards.
 */
async function waitingNode(env: Record<string, string>, backend: 'nats' | 'redis', signal: AbortSignal, until: (body: Record<string, unknown>) => boolean = () => true) {
  const adminPort = await freePort();
  const lines: string[] = [];
  const starting = startNode({ env: { TIER_REDIS_PREFIX: uniquePrefix(), LOG_LEVEL: 'info', ...env }, adminPort, measured: false, onLine: (l) => lines.push(l) });
  const outcome = starting.then(
    (node) => node.kill(),
    (e: unknown) => e,
  );
  const readyz = await eventually(signal, `/readyz waiting for ${backend}`, async () => {
    const r = await api(`http://127.0.0.1:${adminPort}`, 'GET', '/readyz', undefined).catch(() => null);
    return r?.status === 503 && r.body.waitingFor === backend && until(r.body as Record<string, unknown>) ? (r.body as Record<string, unknown>) : undefined;
  });
  // the line is written just after /readyz learns of the attempt
  await eventually(signal, 'the waiting line', async () => parse(lines).find((l) => l.msg === 'waiting for backends' && l.backend === backend));
  const raw = JSON.stringify(readyz);
  // the lines of the wait itself (the stop adds its own)
  const waiting = parse(lines);
  const pid = parse(lines).find((l) => l.pid)?.pid as number;
  process.kill(pid, 'SIGTERM');
  await outcome;
  return { readyz, raw, lines: waiting, text: lines.join('\n') };
}

describe('backends that require credentials', { timeout: 90_000 }, () => {
  it('a node logs in with the credentials of NATS_URL and REDIS_URL, and prints neither password', async () => {
    const lines: string[] = [];
    const node = await startNode({ env: { NATS_URL: natsUrl(NATS_PASS), REDIS_URL: redisUrl(REDIS_PASS), TIER_REDIS_PREFIX: uniquePrefix(), LOG_LEVEL: 'info' }, measured: false, onLine: (l) => lines.push(l) });
    started.push(node);
    expect((await api(node.adminUrl, 'GET', '/readyz', undefined)).status).toBe(200);
    const created = await api(node.httpUrl, 'POST', '/v1/admin/hubs', node.adminToken, { hubId: 'cred-hub', homeId: 'home-cred' });
    expect(created.status).toBe(201);
    const text = lines.join('\n');
    expect(text).not.toContain(NATS_PASS);
    expect(text).not.toContain(REDIS_PASS);
  });

  it('a node logs in to an operator-mode NATS with NATS_CREDS_FILE and to a mTLS one with the NATS_TLS_* files', async () => {
    const pki = makeTestPki();
    const operator = makeNatsOperator(pki.dir);
    const mtlsConf = join(pki.dir, 'nats-mtls.conf');
    writeFileSync(mtlsConf, `tls { cert_file: "${pki.serverCert}", key_file: "${pki.serverKey}", ca_file: "${pki.ca}", verify: true }\n`);
    const [withCreds, withTls] = await Promise.all([startNats({ config: operator.config }), startNats({ config: mtlsConf })]);
    started.push(withCreds, withTls);
    const tlsFiles = { NATS_TLS_CA_FILE: pki.ca, NATS_TLS_CERT_FILE: pki.clientCert, NATS_TLS_KEY_FILE: pki.clientKey };
    const nodes: Array<Record<string, string>> = [{ NATS_URL: withCreds.url, NATS_CREDS_FILE: operator.creds }, { NATS_URL: withTls.url.replace('nats://', 'tls://'), ...tlsFiles }];
    for (const more of nodes) {
      // a cluster of its own each (its own secrets)
      const node = await startNode({ env: { REDIS_URL: redisUrl(REDIS_PASS), TIER_REDIS_PREFIX: uniquePrefix(), LOG_LEVEL: 'info', ...more }, measured: false });
      started.push(node);
      expect((await api(node.adminUrl, 'GET', '/readyz', undefined)).body).toMatchObject({ backendsUp: { nats: true, redis: true } });
    }
  });

  it('a node and the push worker log in to a mTLS Redis with the REDIS_TLS_* files', async () => {
    const pki = makeTestPki();
    const port = await freePort();
    const mtls = start(requireServer('redis-server'), [
      '--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1', '--tls-cert-file', pki.serverCert, '--tls-key-file', pki.serverKey,
      '--tls-ca-cert-file', pki.ca, '--tls-auth-clients', 'yes', '--save', '', '--appendonly', 'no',
    ]);
    try {
      await mtls.waitLine((l) => /Ready to accept connections/.test(l));
      const env = { NATS_URL: natsUrl(NATS_PASS), REDIS_URL: `rediss://127.0.0.1:${port}`, REDIS_TLS_CA_FILE: pki.ca, REDIS_TLS_CERT_FILE: pki.clientCert, REDIS_TLS_KEY_FILE: pki.clientKey, TIER_REDIS_PREFIX: uniquePrefix(), LOG_LEVEL: 'info' };
      const node = await startNode({ env, measured: false });
      started.push(node);
      // every connection role (control, shadows, push queue and worker, delays, history) opened before ready
      expect((await api(node.adminUrl, 'GET', '/readyz', undefined)).body).toMatchObject({ ready: true, backendsUp: { nats: true, redis: true } });
      expect((await api(node.httpUrl, 'POST', '/v1/admin/hubs', node.adminToken, { hubId: 'mtls-hub', homeId: 'home-mtls' })).status).toBe(201);
      const worker = start(process.execPath, scriptArgs('src/push-worker.ts'), { env: { ...env, ADMIN_TOKEN: node.adminToken, JWT_SECRET: node.jwtSecret, TIER_SECRET_KEY: '0123456789abcdef'.repeat(4) } });
      try {
        await worker.waitLine((l) => /push worker ready/.test(l));
      } finally {
        await worker.stop();
      }
    } finally {
      await mtls.stop();
      rmSync(pki.dir, { recursive: true, force: true });
    }
  });

  it('rotated REDIS_TLS_* files (a new CA, client certificate and key) are used at the next reconnect, without a restart', async ({ signal }) => {
    const [before, after] = [makeTestPki(), makeTestPki()];
    const mounted = mkdtempSync(join(tmpdir(), 'hubtier-redis-tls-'));
    const files = { ca: join(mounted, 'ca.crt'), cert: join(mounted, 'tls.crt'), key: join(mounted, 'tls.key') };
    // as a Secret's volume does: every file replaced with the next one's
    const mount = (pki: typeof before) => {
      for (const [to, from] of [[files.ca, pki.ca], [files.cert, pki.clientCert], [files.key, pki.clientKey]] as const) copyFileSync(from, to);
    };
    const port = await freePort();
    // each PKI's server trusts only its own CA: the node gets back only with the new files
    const serve = async (pki: typeof before) => {
      const server = start(requireServer('redis-server'), [
        '--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1', '--tls-cert-file', pki.serverCert, '--tls-key-file', pki.serverKey,
        '--tls-ca-cert-file', pki.ca, '--tls-auth-clients', 'yes', '--save', '', '--appendonly', 'no',
      ]);
      await server.waitLine((l) => /Ready to accept connections/.test(l));
      return server;
    };
    mount(before);
    let server = await serve(before);
    try {
      const env = { NATS_URL: natsUrl(NATS_PASS), REDIS_URL: `rediss://127.0.0.1:${port}`, REDIS_TLS_CA_FILE: files.ca, REDIS_TLS_CERT_FILE: files.cert, REDIS_TLS_KEY_FILE: files.key, TIER_REDIS_PREFIX: uniquePrefix(), LOG_LEVEL: 'info' };
      const lines: string[] = [];
      const node = await startNode({ env, measured: false, onLine: (l) => lines.push(l) });
      started.push(node);
      await server.stop();
      // half-way through the rotation: the new key beside the old certificate, while the node
      // reconnects (at most 2 s apart); such a set used to end the Redis client for good
      copyFileSync(after.clientKey, files.key);
      await eventually(signal, 'the unusable set said', async () => (lines.some((l) => l.includes('redis TLS files unusable at reconnect')) ? true : undefined));
      mount(after);
      server = await serve(after);
      await eventually(signal, 'redis back with the rotated files', async () => {
        const r = await api(node.adminUrl, 'GET', '/readyz', undefined);
        return (r.body as { backendsUp?: { redis?: boolean } }).backendsUp?.redis === true ? true : undefined;
      });
      expect((await api(node.httpUrl, 'POST', '/v1/admin/hubs', node.adminToken, { hubId: 'rotated-tls-hub', homeId: 'home-rotated-tls' })).status).toBe(201);
    } finally {
      await server.stop();
      for (const dir of [before.dir, after.dir, mounted]) rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a wrong NATS password is named as a refused login, in the log line and /readyz, without the password', async ({ signal }) => {
    const { readyz, raw, lines, text } = await waitingNode({ NATS_URL: natsUrl(WRONG), REDIS_URL: redisUrl(REDIS_PASS) }, 'nats', signal);
    expect(readyz.lastError).toMatch(/nats at nats:\/\/127\.0\.0\.1:\d+ is unreachable: .*Authorization Violation.*check the credentials in NATS_URL, or NATS_CREDS_FILE/i);
    expect(lines.find((l) => l.msg === 'waiting for backends')).toMatchObject({ backend: 'nats', err: expect.stringMatching(/Authorization Violation/i) });
    expect(raw).not.toContain(WRONG);
    expect(text).not.toContain(WRONG);
  });

  it('a wrong NATS password: the fatal line at the end of the wait does not carry it', async () => {
    const err = (await startNode({ env: { NATS_URL: natsUrl(WRONG), REDIS_URL: redisUrl(REDIS_PASS), TIER_BACKEND_START_WAIT_MS: '1000', LOG_LEVEL: 'info' }, measured: false }).catch((e: unknown) => e)) as ExitedError;
    expect(err).toBeInstanceOf(ExitedError);
    expect(err.exitCode).toBe(1);
    const fatal = parse(err.output.split('\n').filter((l) => l.startsWith('{'))).find((l) => l.level === 60);
    expect(fatal).toMatchObject({ msg: 'backends unreachable at start', backend: 'nats', err: expect.stringMatching(/Authorization Violation/i) });
    expect(err.output).not.toContain(WRONG);
  });

  it('a wrong Redis password is named WRONGPASS, and NATS stays connected once while the node waits', async ({ signal }) => {
    // past 3.5 s of waiting the node has tried Redis at least five times (100 ms doubling)
    const { readyz, raw, lines, text } = await waitingNode({ NATS_URL: natsUrl(NATS_PASS), REDIS_URL: redisUrl(WRONG) }, 'redis', signal, (b) => (b.waitingMs as number) > 3_500);
    expect(readyz.lastError).toMatch(/redis at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+\/? is unreachable: WRONGPASS .*check the password in REDIS_URL/);
    expect(lines.find((l) => l.msg === 'waiting for backends')).toMatchObject({ backend: 'redis', err: expect.stringMatching(/WRONGPASS/) });
    expect(raw).not.toContain(WRONG);
    expect(text).not.toContain(WRONG);
    // one connection kept across the Redis attempts (it was one opened and closed per attempt)
    expect(lines.filter((l) => l.msg === 'nats connected')).toHaveLength(1);
    expect(lines.filter((l) => l.msg === 'nats connection closed')).toHaveLength(0);
  });

  it('a missing Redis password is named NOAUTH', async ({ signal }) => {
    const { readyz } = await waitingNode({ NATS_URL: natsUrl(NATS_PASS), REDIS_URL: redisUrl(null) }, 'redis', signal);
    expect(readyz.lastError).toMatch(/is unreachable: NOAUTH .*check the password in REDIS_URL/);
  });

  it('an unknown Redis host is named ENOTFOUND: the network, not the credentials', async ({ signal }) => {
    const { readyz } = await waitingNode({ NATS_URL: natsUrl(NATS_PASS), REDIS_URL: `redis://:${REDIS_PASS}@no-such-host.invalid:6379` }, 'redis', signal);
    expect(readyz.lastError).toMatch(/is unreachable: .*(ENOTFOUND|EAI_AGAIN) no-such-host\.invalid/);
    expect(JSON.stringify(readyz)).not.toContain(REDIS_PASS);
  });
});
