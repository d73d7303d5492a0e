/**
 * A cluster node started before its backends (a Kubernetes cold start) waits for them instead of
 * exiting: its admin port answers `/healthz` 200, `/readyz` 503 naming the backend it waits for and
 * `/metrics` with `tier_backend_up` 0 for it (HubtierBackendDown), its main port stays closed, and
 * once NATS and Redis start on the ports it was given it becomes ready and takes a hub. Past TIER_BACKEND_START_WAIT_MS it exits 1 with one fatal line; SIGTERM
 * while waiting exits 0. A drain while Redis is down ends within the grace with JSON lines only.
 */
import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort, startNats, startNode, startRedis, uniquePrefix, ExitedError, type Backend, type NodeProc } from '../../load/harness/index.js';
import { HubClient } from '../../load/wire/hub-client.js';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { api, scriptArgs, startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { eventually } from '../helpers/eventually.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const run = promisify(execFile);
const started: Array<Backend | NodeProc | ServerProcess> = [];
afterEach(async () => {
  await Promise.allSettled(started.splice(0).map((p) => ('kind' in p ? p.stop() : p.kill())));
});

/** Lines that are not one JSON object each: stdout and stderr must hold none. */
const notJson = (lines: string[]) =>
  lines.filter((l) => {
    try {
      return typeof JSON.parse(l) !== 'object';
    } catch {
      return true;
    }
  });

describe('cluster node started before its backends', { timeout: 90_000 }, () => {
  it('serves /healthz, answers /readyz 503 naming the backend, /metrics with it down, then starts once NATS and Redis are up and takes a hub', async ({ signal }) => {
    const [natsPort, redisPort, port, adminPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    const lines: string[] = [];
    const starting = startNode({
      env: { NATS_URL: `nats://127.0.0.1:${natsPort}`, REDIS_URL: `redis://127.0.0.1:${redisPort}`, TIER_REDIS_PREFIX: uniquePrefix(), NODE_ID: 'node-late', LOG_LEVEL: 'info' },
      port,
      adminPort,
      measured: false,
      onLine: (line) => lines.push(line),
    });
    starting.catch(() => undefined);
    const admin = `http://127.0.0.1:${adminPort}`;

    const waitingFor = (backend: string) =>
      eventually(signal, `/readyz naming ${backend}`, async () => {
        const r = await api(admin, 'GET', '/readyz', undefined);
        return r.status === 503 && r.body.waitingFor === backend ? r : undefined;
      });
    /** the waiting node's Prometheus text: HubtierBackendDown reads tier_backend_up from it */
    const metrics = async () => {
      const r = await fetch(`${admin}/metrics`);
      expect(r.status).toBe(200);
      expect(r.headers.get('content-type')).toMatch(/^text\/plain/);
      return r.text();
    };
    const nats = await waitingFor('nats');
    expect(nats.body).toMatchObject({ ready: false, reasons: ['starting', 'waiting_for_nats'], mode: 'cluster', node: 'node-late' });
    // a HEAD of a non-empty answer: this uWS build aborted the process on endWithoutBody(length, true) (until 2026-12-06)
    const head = await fetch(`${admin}/healthz`, { method: 'HEAD' });
    expect([head.status, await head.text()]).toEqual([200, '']);
    expect((await waitingFor('nats')).status).toBe(503);
    const natsDown = await metrics();
    expect(natsDown).toMatch(/^tier_backend_up\{backend="nats"\} 0$/m);
    expect(natsDown).not.toMatch(/^tier_backend_up\{backend="redis"\}/m);
    expect(natsDown).toMatch(/^tier_hub_sessions 0$/m);
    expect((await api(admin, 'GET', '/healthz', undefined)).status).toBe(200);
    // the waiting port answers only the names the admin port does (a rebound page reads nothing)
    expect(await new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: adminPort, path: '/readyz', headers: { host: 'rebound.example' }, agent: false }, (res) => (res.resume(), resolve(res.statusCode!)));
      req.on('error', reject);
      req.end();
    })).toBe(421);
    // no hub or app is taken meanwhile: the main port is not open
    await expect(fetch(`http://127.0.0.1:${port}/v1/health`)).rejects.toThrow();
    const waiting = await eventually(signal, 'the waiting line', async () => lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'waiting for backends'));
    expect(waiting).toMatchObject({ level: 40, backend: 'nats', err: expect.stringMatching(/nats at .* is unreachable/), maxWaitMs: 120_000 });

    // npm run doctor says the node is starting and what it waits for (it asked "is this the admin port?")
    const doctor = await run(process.execPath, [...scriptArgs('src/doctor-cli.ts'), '--url', admin, '--token', 'any-token-of-24-characters'], { cwd: ROOT }).then(() => null, (e: { code: number; stderr: string }) => e);
    expect(doctor).toMatchObject({ code: 1, stderr: expect.stringMatching(/^✗ node-late is starting, waiting for nats for \d+ s: nats at .* is unreachable.*\n {4}→ check NATS_URL and that nats runs/) });

    started.push(await startNats({ port: natsPort }));
    expect((await waitingFor('redis')).body.reasons).toEqual(['starting', 'waiting_for_redis']);
    const redisDown = await metrics();
    expect(redisDown).toMatch(/^tier_backend_up\{backend="nats"\} 1$/m);
    expect(redisDown).toMatch(/^tier_backend_up\{backend="redis"\} 0$/m);
    started.push(await startRedis({ port: redisPort }));

    const node = await starting;
    started.push(node);
    await eventually(signal, 'the node ready', async () => ((await api(admin, 'GET', '/readyz', undefined)).status === 200 ? true : undefined));
    // the running node's reading replaces the wait's
    expect(await metrics()).toMatch(/^tier_backend_up\{backend="redis"\} 1$/m);
    const created = await api(node.httpUrl, 'POST', '/v1/admin/hubs', node.adminToken, { hubId: 'late-hub', homeId: 'home-late' });
    expect(created.status).toBe(201);
    const hub = new HubClient({ url: node.wsUrl, hubId: 'late-hub', secret: created.body.secret, heartbeat: false });
    await hub.connect();
    expect(await hub.report({ lamp: { on: true } })).toBeGreaterThan(0);
    await hub.terminate();
    expect(notJson(lines)).toEqual([]);
  });

  it('exits 1 with one fatal line once TIER_BACKEND_START_WAIT_MS has passed', async () => {
    const [natsPort, redisPort] = await Promise.all([freePort(), freePort()]);
    const err = await startNode({
      env: { NATS_URL: `nats://127.0.0.1:${natsPort}`, REDIS_URL: `redis://127.0.0.1:${redisPort}`, TIER_BACKEND_START_WAIT_MS: '1500', LOG_LEVEL: 'info' },
      measured: false,
    }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ExitedError);
    const exited = err as ExitedError;
    expect(exited.exitCode).toBe(1);
    const lines = exited.output.split('\n').filter((l) => l.length > 0);
    expect(notJson(lines)).toEqual([]);
    const fatal = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.level === 60);
    expect(fatal).toEqual([expect.objectContaining({ msg: 'backends unreachable at start', backend: 'nats', err: expect.stringMatching(/TIER_BACKEND_START_WAIT_MS/) })]);
    expect(fatal[0]!.waitedMs).toBeGreaterThanOrEqual(1500);
  });

  it('exits 0 at once on SIGTERM while it waits', async ({ signal }) => {
    const [natsPort, redisPort, adminPort] = await Promise.all([freePort(), freePort(), freePort()]);
    const lines: string[] = [];
    const starting = startNode({
      env: { NATS_URL: `nats://127.0.0.1:${natsPort}`, REDIS_URL: `redis://127.0.0.1:${redisPort}`, LOG_LEVEL: 'info' },
      adminPort,
      measured: false,
      onLine: (line) => lines.push(line),
    });
    const outcome = starting.then(
      () => null,
      (e: unknown) => e,
    );
    await eventually(signal, 'the waiting admin port', async () => ((await api(`http://127.0.0.1:${adminPort}`, 'GET', '/readyz', undefined)).status === 503 ? true : undefined));
    const pid = lines.map((l) => JSON.parse(l) as { pid?: number }).find((l) => l.pid)?.pid;
    expect(pid).toBeGreaterThan(0);
    process.kill(pid!, 'SIGTERM');
    const err = (await outcome) as ExitedError;
    expect(err).toBeInstanceOf(ExitedError);
    expect(err.exitCode).toBe(0);
    expect(notJson(lines)).toEqual([]);
  });
});

describe('cluster node drained while Redis is down', { timeout: 90_000 }, () => {
  it('exits through every bounded drain step with nothing but JSON lines, the unflushed writes logged', async ({ signal }) => {
    const [nats, redis] = await Promise.all([startNats(), startRedis()]);
    started.push(nats, redis);
    const node = await startServerProcess({ NATS_URL: nats.url, REDIS_URL: redis.url, TIER_REDIS_PREFIX: uniquePrefix(), NODE_ID: 'node-outage' });
    started.push(node);
    const created = await api(node.httpUrl, 'POST', '/v1/admin/hubs', node.adminToken, { hubId: 'outage-hub', homeId: 'home-outage' });
    const hub = new HubClient({ url: node.wsUrl, hubId: 'outage-hub', secret: created.body.secret, heartbeat: false });
    await hub.connect();
    await hub.report({ lamp: { on: true } });

    await redis.kill();
    // a report the node cannot make durable: the drain's flush gives up on it
    hub.report({ lamp: { on: false } }).catch(() => undefined);
    await eventually(signal, 'a shadow write pending', async () => ((await api(node.adminUrl, 'GET', '/readyz', undefined)).body.backends?.shadows?.pendingWrites > 0 ? true : undefined));

    const code = await node.stop();
    expect(code).toBe(1);
    // the exit is awaited, not timed: Kubernetes' 30 s grace is kept by the drain's own bounded
    // steps (sessions 5 s, events 2 s, the flush 10 s, the queue's close 2 s), each of which ran
    const steps = node.logs.filter((l) => l.msg === 'drain step').map((l) => l.step);
    expect(steps).toEqual(['stopped_accepting', 'hubs_told_to_reconnect', 'hub_sessions_closed', 'apps_told_to_reconnect', 'rules_stopped', 'state_flushed', 'ports_closed']);
    const stray = node.logs.filter((l) => 'stderr' in l || 'text' in l);
    expect(stray).toEqual([]);
    expect(node.logs).toContainEqual(expect.objectContaining({ msg: 'shutdown failed' }));
    expect(node.logs).toContainEqual(expect.objectContaining({ msg: 'drain step', step: 'ports_closed' }));
    await hub.terminate();
  });
});
