/**
 * Readiness and self-diagnosis of a cluster node (a real process, its own nats-server and
 * redis-server): diagnose judges the Redis it is given (an evicting policy warns, no persistence
 * fails, so `npm run doctor` exits 1); with Redis stopped the node stays ready, reports Redis down
 * in the readiness body, in `tier_backend_up` and in diagnose (failed, not hung), and a command
 * through it still reaches its hub; once Redis is back, it is reported up.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNats, startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import { HubClient } from '../../load/wire/hub-client.js';
import type { CheckResult, DiagnoseReport } from '../../src/admin/diagnose.js';
import { RedisNodeReleases } from '../../src/ports/directory/node-releases-redis.js';
import { RedisKeys } from '../../src/ports/redis.js';
import { api, scriptArgs, type ServerProcess, startServerProcess } from '../helpers/server-process.js';
import { eventually } from '../helpers/eventually.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const run = promisify(execFile);

describe('cluster node: readiness and diagnose with its own NATS and Redis', { timeout: 60_000 }, () => {
  let nats: Backend;
  let redis: Backend;
  let node: ServerProcess;
  let hub: HubClient | undefined;
  const prefix = uniquePrefix();

  const diagnose = async (): Promise<Map<string, CheckResult>> => {
    const r = await api(node.adminUrl, 'GET', '/debug/diagnose', node.adminToken);
    expect(r.status).toBe(200);
    const report = r.body as DiagnoseReport;
    expect(report.mode).toBe('cluster');
    return new Map(report.checks.map((c) => [c.name, c]));
  };

  beforeAll(async () => {
    // the harness's Redis keeps nothing on disk (appendonly no, no snapshots): diagnose must fail it
    [nats, redis] = await Promise.all([startNats(), startRedis()]);
    const setup = new Redis(redis.url);
    await setup.config('SET', 'maxmemory-policy', 'allkeys-lru');
    await setup.quit();
    node = await startServerProcess({ NATS_URL: nats.url, REDIS_URL: redis.url, TIER_REDIS_PREFIX: prefix, NODE_ID: 'node-diag', TIER_RELEASE: 'hubtier:new' });
  }, 60_000);

  afterAll(async () => {
    await hub?.terminate();
    await node?.stop();
    await Promise.allSettled([nats?.stop(), redis?.stop()]);
  });

  it('judges the backends: reachable with latency, eviction policy, persistence, clock, stream', async () => {
    const checks = await diagnose();
    expect(checks.get('nats')).toMatchObject({ verdict: 'ok', detail: expect.stringMatching(/round trip/) });
    expect(checks.get('redis')).toMatchObject({ verdict: 'ok', detail: expect.stringMatching(/round trip/) });
    expect(checks.get('redis-eviction')).toMatchObject({ verdict: 'warn', detail: expect.stringMatching(/allkeys-lru/), hint: expect.stringMatching(/noeviction/) });
    expect(checks.get('redis-persistence')).toMatchObject({ verdict: 'fail', hint: expect.stringMatching(/appendonly yes/) });
    expect(checks.get('redis-writes')).toMatchObject({ verdict: 'ok', detail: 'takes writes (no maxmemory)' });
    expect(checks.get('clock-skew')?.verdict).toBe('ok');
    expect(checks.get('event-stream')).toMatchObject({ verdict: 'ok', detail: expect.stringMatching(/of 100000 entries/) });
    expect(checks.has('data-dir')).toBe(false);
    expect(checks.get('releases')).toEqual({ name: 'releases', verdict: 'ok', detail: 'the one live node runs hubtier:new', hint: '' });
  });

  it('says its release in /metrics and diagnose, and warns while another node runs an older one', async () => {
    const metrics = await fetch(`${node.adminUrl}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/^tier_build_info\{release="hubtier:new"\} 1$/m);
    // a node of an older release, as Redis sees it: its liveness in the directory and its own entry
    const client = new Redis(redis.url);
    await new RedisNodeReleases(client, { keys: new RedisKeys(prefix), nodeId: 'node-old', release: 'hubtier:old', ttlMs: 15_000 }).advertise();
    client.disconnect();
    const checks = await diagnose();
    expect(checks.get('releases')).toMatchObject({ verdict: 'warn', detail: '2 releases on 2 live nodes (this one hubtier:new): hubtier:new on node-diag; hubtier:old on node-old' });
    const report = (await api(node.adminUrl, 'GET', '/debug/diagnose', node.adminToken)).body as DiagnoseReport;
    expect(report.release).toBe('hubtier:new');
  });

  it('npm run doctor prints the failing check with its hint and exits 1', async () => {
    const err = await run(process.execPath, [...scriptArgs('src/doctor-cli.ts'), '--url', node.adminUrl, '--token', node.adminToken], { cwd: ROOT }).then(
      () => null,
      (e: { code: number; stdout: string }) => e,
    );
    expect(err?.code).toBe(1);
    expect(err?.stdout).toMatch(/^node-diag \(cluster, hubtier:new\)$/m);
    expect(err?.stdout).toMatch(/^✓ nats: reachable/m);
    expect(err?.stdout).toMatch(/^! redis-eviction: maxmemory-policy allkeys-lru.*\n {4}→ CONFIG SET maxmemory-policy noeviction/m);
    expect(err?.stdout).toMatch(/^✗ redis-persistence: no persistence/m);
  });

  it('fails a Redis that is reachable but full: it refuses every write (review "diskfull": it read as healthy)', async () => {
    const admin = new Redis(redis.url);
    try {
      await admin.config('SET', 'maxmemory-policy', 'noeviction');
      await admin.config('SET', 'maxmemory', '1');
      const checks = await diagnose();
      expect(checks.get('redis')?.verdict).toBe('ok');
      expect(checks.get('redis-writes')).toMatchObject({ verdict: 'fail', detail: expect.stringMatching(/^refuses writes: OOM command not allowed/), hint: expect.stringMatching(/raise maxmemory/) });
    } finally {
      await admin.config('SET', 'maxmemory', '0');
      await admin.quit();
    }
    expect((await diagnose()).get('redis-writes')?.verdict).toBe('ok');
  });

  it('stays ready while Redis is down, reports it, and still passes a command to its hub', async ({ signal }) => {
    const created = await api(node.httpUrl, 'POST', '/v1/admin/hubs', node.adminToken, { hubId: 'diag-hub', homeId: 'home-diag' });
    expect(created.status).toBe(201);
    hub = new HubClient({ url: node.wsUrl, hubId: 'diag-hub', secret: created.body.secret });
    await hub.connect();
    const command = () => api(node.httpUrl, 'POST', '/v1/hubs/diag-hub/devices/t1/commands', node.adminToken, { set: { on: true } });
    expect((await command()).status).toBe(200);
    expect(await api(node.adminUrl, 'GET', '/readyz', undefined)).toMatchObject({ status: 200, body: { backendsUp: { nats: true, redis: true }, degraded: [] } });

    await redis.stop();
    const down = await eventually(signal, 'readiness to report Redis down', async () => {
      const r = await api(node.adminUrl, 'GET', '/readyz', undefined);
      return r.body.degraded?.includes('redis') ? r : undefined;
    });
    expect(down).toMatchObject({ status: 200, body: { ready: true, reasons: [], backendsUp: { nats: true, redis: false }, degraded: ['redis'] } });

    const metrics = await fetch(`${node.adminUrl}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/^tier_backend_up\{backend="redis"\} 0$/m);
    expect(metrics).toMatch(/^tier_backend_up\{backend="nats"\} 1$/m);

    // the hub's record is cached on the node that admitted it: a command needs NATS only
    expect(await command()).toMatchObject({ status: 200, body: { ok: true, result: { on: true } } });
    expect(hub.connected).toBe(true);

    const checks = await diagnose();
    expect(checks.get('redis')).toMatchObject({ verdict: 'fail', hint: expect.stringMatching(/REDIS_URL/) });
    expect(checks.get('nats')?.verdict).toBe('ok');

    // back: reported up again (and the node can drain at the end: BullMQ waits for its Redis)
    await redis.restart();
    await eventually(signal, 'readiness to report Redis back', async () => ((await api(node.adminUrl, 'GET', '/readyz', undefined)).body.backendsUp?.redis === true ? true : undefined));
  });
});
