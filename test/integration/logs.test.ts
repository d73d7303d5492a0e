import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { HubClient } from '../../load/wire/hub-client.js';
import { startNats, startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import { AppSocket } from '../helpers/app-socket.js';
import { api, logLine, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

async function setLevel(node: ServerProcess, level: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${node.adminUrl}/debug/log-level`, { method: 'PUT', headers: { authorization: `Bearer ${node.adminToken}` }, body: JSON.stringify({ level }) });
  return { status: res.status, body: await res.json() };
}

async function command(node: ServerProcess, hubId: string, body: unknown, requestId?: string): Promise<{ status: number; requestId: string | null; body: any }> {
  const headers: Record<string, string> = { authorization: `Bearer ${node.adminToken}`, 'content-type': 'application/json' };
  if (requestId !== undefined) headers['x-request-id'] = requestId;
  const res = await fetch(`${node.httpUrl}/v1/hubs/${hubId}/devices/t1/commands`, { method: 'POST', headers, body: JSON.stringify(body) });
  return { status: res.status, requestId: res.headers.get('x-request-id'), body: await res.json() };
}

async function provision(node: ServerProcess, hubId: string, homeId: string): Promise<string> {
  const res = await api(node.httpUrl, 'POST', '/v1/admin/hubs', node.adminToken, { hubId, homeId });
  expect(res.status).toBe(201);
  return res.body.secret as string;
}

describe('logs of one node: JSON lines with stable messages, request ids, runtime level (real process)', () => {
  let server: ServerProcess;
  const clients: HubClient[] = [];

  beforeAll(async () => {
    server = await startServerProcess();
  });

  afterAll(async () => {
    await Promise.allSettled(clients.map((c) => c.terminate()));
    if (server.child.exitCode === null) await server.stop();
  });

  it('changes the level through the admin port (token required)', async ({ signal }) => {
    const denied = await fetch(`${server.adminUrl}/debug/log-level`);
    expect(denied.status).toBe(401);
    expect(await setLevel(server, 'debug')).toEqual({ status: 200, body: { old: 'info', level: 'debug' } });
    const res = await fetch(`${server.adminUrl}/debug/log-level`, { headers: { authorization: `Bearer ${server.adminToken}` } });
    expect(await res.json()).toEqual({ level: 'debug' });
    // the line comes through the node's stdout, which may arrive after the HTTP answer
    expect(await logLine(server, signal, (l) => l.msg === 'log level changed')).toMatchObject({ from: 'info', to: 'debug', level: 30 });
  });

  it('echoes x-request-id, logs it on the access line and on the command outcome, and logs the session', async ({ signal }) => {
    const secret = await provision(server, 'lg-cmd-1', 'home-logs');
    const hub = new HubClient({ url: server.wsUrl, hubId: 'lg-cmd-1', secret });
    clients.push(hub);
    await hub.connect();
    expect(await logLine(server, signal, (l) => l.msg === 'hub session opened' && l.hubId === 'lg-cmd-1')).toMatchObject({ homeId: 'home-logs', node: expect.any(String), remote: expect.any(String), level: 30 });

    const ok = await command(server, 'lg-cmd-1', { set: { on: true } }, 'abc-123');
    expect(ok).toMatchObject({ status: 200, requestId: 'abc-123' });
    const access = await logLine(server, signal, (l) => l.msg === 'http request' && l.requestId === 'abc-123');
    expect(access).toMatchObject({ method: 'POST', route: '/v1/hubs/:hubId/devices/:deviceId/commands', status: 200, us: expect.any(Number), level: 30 });
    // debug (the level set above): the outcome of a command that succeeded
    const outcome = await logLine(server, signal, (l) => l.msg === 'command outcome' && l.requestId === 'abc-123');
    expect(outcome).toMatchObject({ hubId: 'lg-cmd-1', deviceId: 't1', method: 'set', us: expect.any(Number), level: 20 });

    // the client's default handler knows only `set`: the hub answers a failure, logged at info with its code
    const failed = await command(server, 'lg-cmd-1', { method: 'identify', params: {} });
    expect(failed.status).toBe(502);
    expect(failed.requestId).toMatch(/^[A-Za-z0-9._:-]{1,128}$/);
    expect(await logLine(server, signal, (l) => l.msg === 'command outcome' && l.requestId === failed.requestId)).toMatchObject({ code: 'command_failed', hubId: 'lg-cmd-1', level: 30 });

    await hub.bye();
    expect(await logLine(server, signal, (l) => l.msg === 'hub session closed' && l.hubId === 'lg-cmd-1')).toMatchObject({ code: 1000, reason: 'bye', durationMs: expect.any(Number), online: true, level: 30 });
  });

  it('logs a refused handshake and a refused app socket with their codes, and 401s on the access line', async ({ signal }) => {
    const impostor = new HubClient({ url: server.wsUrl, hubId: 'lg-cmd-1', secret: 'not-the-secret-of-this-hub-000000' });
    await expect(impostor.connect()).rejects.toMatchObject({ status: 401 });
    expect(await logLine(server, signal, (l) => l.msg === 'hub handshake refused' && l.hubId === 'lg-cmd-1')).toMatchObject({ code: 'bad_signature', remote: expect.any(String) });

    const ws = new WebSocket(`${server.wsUrl}/app/v1?token=not-a-token`);
    await new Promise((resolve) => ws.once('error', resolve));
    expect(await logLine(server, signal, (l) => l.msg === 'app auth failed')).toMatchObject({ code: 'unauthorized', remote: expect.any(String) });

    const res = await fetch(`${server.httpUrl}/v1/hubs/lg-cmd-1`, { headers: { 'x-request-id': 'no-token-1' } });
    expect(res.status).toBe(401);
    expect(res.headers.get('x-request-id')).toBe('no-token-1');
    expect(await logLine(server, signal, (l) => l.msg === 'http request' && l.requestId === 'no-token-1')).toMatchObject({ status: 401, code: 'unauthorized', route: '/v1/hubs/:hubId' });
  });

  it("carries an app socket command's connection and request id to the outcome line", async ({ signal }) => {
    const secret = await provision(server, 'lg-app-1', 'home-logs');
    const hub = new HubClient({ url: server.wsUrl, hubId: 'lg-app-1', secret });
    clients.push(hub);
    await hub.connect();
    const app = new AppSocket(`${server.wsUrl}/app/v1?token=${server.adminToken}`);
    await app.opened();
    const reply = await app.request({ op: 'cmd', hub: 'lg-app-1', device: 't1', method: 'identify', params: {} });
    expect(reply).toMatchObject({ op: 'err', code: 'command_failed' });
    const appLine = await logLine(server, signal, (l) => l.msg === 'app command failed' && l.hubId === 'lg-app-1');
    expect(appLine).toMatchObject({ id: reply.id, code: 'command_failed', conn: expect.any(String) });
    expect(appLine.requestId).toBe(`${appLine.conn as string}.${reply.id as number}`);
    expect(await logLine(server, signal, (l) => l.msg === 'command outcome' && l.requestId === appLine.requestId)).toMatchObject({ hubId: 'lg-app-1', code: 'command_failed' });
    app.close();
  });

  it('logs each drain step with counts, closes app sockets with 4005 draining, and stdout holds JSON lines only', async () => {
    expect(await setLevel(server, 'info')).toMatchObject({ status: 200, body: { old: 'debug', level: 'info' } });
    const user = (await api(server.httpUrl, 'POST', '/v1/admin/tokens', server.adminToken, { sub: 'drain-user', homes: ['lg-home'] })).body.token as string;
    const apps = [new AppSocket(`${server.wsUrl}/app/v1?token=${server.adminToken}`), new AppSocket(`${server.wsUrl}/app/v1?token=${user}`)];
    await Promise.all(apps.map((a) => a.opened()));
    expect(await server.stop()).toBe(0);
    expect(await Promise.all(apps.map((a) => a.closed))).toEqual([
      { code: 4005, reason: 'draining' },
      { code: 4005, reason: 'draining' },
    ]);
    const steps = server.logs.filter((l) => l.msg === 'drain step');
    expect(steps.map((l) => l.step)).toEqual(['stopped_accepting', 'hubs_told_to_reconnect', 'hub_sessions_closed', 'apps_told_to_reconnect', 'rules_stopped', 'state_flushed', 'ports_closed']);
    expect(steps[3]).toMatchObject({ apps: 2 });
    expect(steps[1]).toMatchObject({ hubs: 1 });
    expect(steps[2]).toMatchObject({ hubs: 1, remaining: 0 });
    expect(server.logs.find((l) => l.msg === 'hub session closed' && l.hubId === 'lg-app-1')).toMatchObject({ reason: 'draining' });
    // every stdout line parsed as JSON with a level and a message (stderr lines are kept apart as { stderr })
    const stdout = server.logs.filter((l) => l.stderr === undefined);
    expect(stdout.filter((l) => l.text !== undefined)).toEqual([]);
    for (const l of stdout) expect(l).toMatchObject({ level: expect.any(Number), msg: expect.any(String), node: expect.any(String) });
  });
});

describe('a command across nodes: the holding node logs the request id (two nodes, own NATS and Redis)', { timeout: 60_000 }, () => {
  let nats: Backend;
  let redis: Backend;
  let a: ServerProcess;
  let b: ServerProcess;
  let hub: HubClient | undefined;
  const shared = { ADMIN_TOKEN: 'logs-cluster-admin-token-0123456789', JWT_SECRET: 'logs-cluster-jwt-secret-0123456789abcdef' };

  beforeAll(async () => {
    [nats, redis] = await Promise.all([startNats(), startRedis()]);
    const env = { ...shared, NATS_URL: nats.url, REDIS_URL: redis.url, TIER_REDIS_PREFIX: uniquePrefix() };
    [a, b] = await Promise.all([startServerProcess({ ...env, NODE_ID: 'logs-a' }), startServerProcess({ ...env, NODE_ID: 'logs-b' })]);
  }, 60_000);

  afterAll(async () => {
    await hub?.terminate();
    await Promise.allSettled([a?.stop(), b?.stop()]);
    await Promise.allSettled([nats?.stop(), redis?.stop()]);
  });

  it('sent to node A for a hub on node B: B writes the outcome with the same request id', async ({ signal }) => {
    const secret = await provision(a, 'lg-x-1', 'home-x');
    hub = new HubClient({ url: b.wsUrl, hubId: 'lg-x-1', secret });
    await hub.connect();
    expect(await setLevel(b, 'debug')).toMatchObject({ status: 200 });
    const res = await command(a, 'lg-x-1', { set: { on: true } }, 'cross-node-7');
    expect(res).toMatchObject({ status: 200, requestId: 'cross-node-7' });
    expect(await logLine(b, signal, (l) => l.msg === 'command outcome' && l.requestId === 'cross-node-7')).toMatchObject({ node: 'logs-b', hubId: 'lg-x-1', level: 20 });
    expect(await logLine(a, signal, (l) => l.msg === 'http request' && l.requestId === 'cross-node-7')).toMatchObject({ node: 'logs-a', status: 200 });
  });
});
