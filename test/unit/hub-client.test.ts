import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { CommandFrame, ErrorFrame, ServerToHubFrame } from '../../proto/frames.js';
import { HubClient, HubClientError } from '../../load/wire/hub-client.js';
import { runSimulator, type Simulator } from '../../load/sim/simulator.js';
import { createLogger } from '../../src/log/logger.js';
import { inProcessConfig } from '../helpers/in-process-config.js';
import { startServer, type RunningServer } from '../../src/compose/server.js';
import { memoryPorts } from '../../src/compose/memory-ports.js';
import type { Ports } from '../../src/ports/ports.js';
import { rulesWarmedUp } from '../helpers/server-process.js';

const ADMIN = 'test-admin-token-0123456789';

let server: RunningServer;
/** a second node sharing the first one's hub registry (and nonces): one cluster's registry */
let sibling: RunningServer;
let siblingUrl: string;
let http: string;
let wsUrl: string;
let dir: string;
const clients: HubClient[] = [];
let hubCounter = 0;

beforeAll(async () => {
  const config = inProcessConfig(ADMIN, 'test-jwt-secret-0123456789abcdef');
  const log = createLogger('silent');
  let first: Ports | null = null;
  server = await startServer(config, log, async (timers) => (first = memoryPorts(config, timers, log)));
  sibling = await startServer(config, log, async (timers) => ({ ...memoryPorts(config, timers, log), registry: first!.registry, nonces: first!.nonces }));
  siblingUrl = `ws://127.0.0.1:${sibling.port}`;
  http = `http://127.0.0.1:${server.port}`;
  wsUrl = `ws://127.0.0.1:${server.port}`;
  dir = mkdtempSync(join(tmpdir(), 'hub-client-test-'));
  await rulesWarmedUp(`http://127.0.0.1:${server.adminPort}`);
});

afterAll(async () => {
  await sibling?.close();
  await server?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.terminate()));
});

async function api(method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(http + path, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function provision(homeId = 'home-hc'): Promise<{ hubId: string; secret: string }> {
  const hubId = `hc-${++hubCounter}`;
  const res = await api('POST', '/v1/admin/hubs', { hubId, homeId });
  expect(res.status).toBe(201);
  return { hubId, secret: res.body.secret as string };
}

function client(hub: { hubId: string; secret: string }, extra: Partial<ConstructorParameters<typeof HubClient>[0]> = {}): HubClient {
  const c = new HubClient({ url: wsUrl, ...hub, ...extra });
  clients.push(c);
  return c;
}

async function shadowOf(hubId: string): Promise<Record<string, { reported: Record<string, unknown>; kind?: string }>> {
  const res = await api('GET', `/v1/hubs/${hubId}/shadow`);
  expect(res.status).toBe(200);
  return res.body.devices as Record<string, { reported: Record<string, unknown>; kind?: string }>;
}

const isError = (f: ServerToHubFrame): f is ErrorFrame => f.t === 10;
const isCommand = (f: ServerToHubFrame): f is CommandFrame => f.t === 7;

describe('HubClient against an in-process server', () => {
  it('connects with signed headers and resolves with the welcome of a fresh boot', async () => {
    const hub = await provision();
    const c = client(hub, { fw: '1.2.3' });
    const welcome = await c.connect();
    expect(welcome).toMatchObject({ t: 2, v: 1, s: 0, dl: {}, hb: 30_000 });
    expect(welcome.ep).toBeGreaterThan(0);
    expect(c.connected).toBe(true);
    expect((await api('GET', `/v1/hubs/${hub.hubId}`)).body).toMatchObject({ online: true, epoch: welcome.ep });
  });

  it('numbers devices, report and event frames from 1 and resolves each on its ack', async () => {
    const hub = await provision();
    const c = client(hub);
    await c.connect();
    await expect(c.devices({ f: true, j: [{ d: 'plug-1', k: 'plug' }, { d: 'temp-1', k: 'sensor.temperature' }] })).resolves.toBe(1);
    const [r, e] = [c.report({ 'temp-1': { temperature: 21.5 } }), c.event('plug-1', 'double_press')];
    await expect(r).resolves.toBe(2);
    await expect(e).resolves.toBe(3);
    expect(c.acked).toBe(3);
    expect(c.unackedCount).toBe(0);
    expect((await shadowOf(hub.hubId))['temp-1']).toMatchObject({ kind: 'sensor.temperature', reported: { temperature: 21.5 } });
  });

  it('answers an HTTP command with the default handler: set applies the params, other methods fail', async () => {
    const hub = await provision();
    const c = client(hub);
    await c.connect();
    await c.devices({ f: true, j: [{ d: 'plug-1', k: 'plug' }] });
    await c.report({ 'plug-1': { on: false, power: 0 } });

    const ok = await api('POST', `/v1/hubs/${hub.hubId}/devices/plug-1/commands`, { set: { on: true } });
    expect(ok.status).toBe(200);
    expect(ok.body).toEqual({ ok: true, result: { on: true, power: 0 } });
    expect(c.state.get('plug-1')).toEqual({ on: true, power: 0 });

    const failed = await api('POST', `/v1/hubs/${hub.hubId}/devices/plug-1/commands`, { method: 'dance' });
    expect(failed.status).toBe(502);
    expect(failed.body).toMatchObject({ ok: false, code: 'command_failed' });
  });

  it('answers with a custom handler, synchronous or async', async () => {
    const hub = await provision();
    const c = client(hub);
    await c.connect();
    c.onCommand(async (cmd) => (cmd.m === 'ping' ? { ok: true, r: { pong: cmd.d } } : { ok: false, e: 'unknown_device', msg: 'no' }));
    const pong = await api('POST', `/v1/hubs/${hub.hubId}/devices/x-1/commands`, { method: 'ping' });
    expect(pong.body).toEqual({ ok: true, result: { pong: 'x-1' } });
    const missing = await api('POST', `/v1/hubs/${hub.hubId}/devices/x-1/commands`, { method: 'other' });
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({ code: 'unknown_device' });
    c.onCommand(() => {
      throw new Error('motor jammed');
    });
    const thrown = await api('POST', `/v1/hubs/${hub.hubId}/devices/x-1/commands`, { method: 'open' });
    expect(thrown.body).toMatchObject({ code: 'command_failed', message: 'motor jammed' });
  });

  it('rejects a refused upgrade with the HTTP status and the error code of the body', async () => {
    const hub = await provision();
    const wrong = client({ hubId: hub.hubId, secret: 'not-the-secret' });
    const err = await wrong.connect().then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(HubClientError);
    expect(err).toMatchObject({ status: 401, code: 'bad_signature' });

    const unknown = client({ hubId: 'hc-never-provisioned', secret: 'whatever' });
    await expect(unknown.connect()).rejects.toMatchObject({ status: 401, code: 'bad_signature' });
    expect(unknown.connected).toBe(false);
  });

  it('rejects connect with the code of an error frame answering the hello', async () => {
    const hub = await provision();
    const c = client(hub, { boot: 'b'.repeat(65) }); // longer than a boot id may be
    await expect(c.connect()).rejects.toMatchObject({ code: 'invalid_field' });
    await c.closed;
    expect(c.connected).toBe(false);
  });

  it('rejects connect when nothing listens, with the socket error as the code', async () => {
    const c = client({ hubId: 'hc-x', secret: 's' }, { url: 'ws://127.0.0.1:1' });
    await expect(c.connect()).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('resumes the sequence of a boot on a new connection (the welcome says where)', async () => {
    const hub = await provision();
    const first = client(hub, { boot: 'boot-a' });
    await first.connect();
    await first.report({ d1: { v: 1 } });
    await first.report({ d1: { v: 2 } });
    await first.close();

    const again = client(hub, { boot: 'boot-a' });
    expect((await again.connect()).s).toBe(2);
    await expect(again.report({ d1: { v: 3 } })).resolves.toBe(3);

    const rebooted = client(hub, { boot: 'boot-b' });
    expect((await rebooted.connect()).s).toBe(0);
    await expect(rebooted.report({ d1: { v: 4 } })).resolves.toBe(1);
  });

  it('keeps frames unacknowledged at a drop and delivers them after the reconnect', async () => {
    const hub = await provision();
    const c = client(hub);
    await c.connect();
    await c.report({ d1: { n: 1 } });
    const lost = c.report({ d1: { n: 2 } });
    await c.terminate();
    await expect(lost).rejects.toMatchObject({ code: 'closed' });
    expect(c.unackedCount).toBe(1);

    await c.connect(); // resends seq 2 unless the server had it already (then the welcome acks it)
    await expect(c.report({ d2: { n: 3 } })).resolves.toBe(3);
    expect(c.unackedCount).toBe(0);
    expect(await shadowOf(hub.hubId)).toMatchObject({ d1: { reported: { n: 2 } }, d2: { reported: { n: 3 } } });
  });

  it('fails over to the URL given to connect(), keeping its boot and unacknowledged frames', async () => {
    const hub = await provision();
    const c = client(hub, { url: 'ws://127.0.0.1:1', boot: 'boot-f' });
    await expect(c.connect()).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    expect((await c.connect(wsUrl)).s).toBe(0);
    await c.report({ d1: { n: 1 } });
    const pending = c.report({ d1: { n: 2 } });
    await c.terminate();
    await expect(pending).rejects.toMatchObject({ code: 'closed' });
    await expect(c.connect('ws://127.0.0.1:1')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    // same boot: the welcome resumes the numbering; seq 2 is resent unless the server had it
    expect((await c.connect(`${wsUrl}/hub/v1`)).s).toBeGreaterThanOrEqual(1);
    await expect(c.report({ d1: { n: 3 } })).resolves.toBe(3);
    expect(c.unackedCount).toBe(0);
    expect(await shadowOf(hub.hubId)).toMatchObject({ d1: { reported: { n: 3 } } });
  });

  it('resends on demand when autoResend is off; the server re-acks duplicates', async () => {
    const hub = await provision();
    const c = client(hub, { autoResend: false });
    await c.connect();
    await c.report({ d1: { n: 1 } });
    c.sendFrame({ t: 4, s: 1, r: { d1: { n: 99 } } });
    const ack = await c.waitFor((f) => f.t === 6);
    expect(ack).toEqual({ t: 6, s: 1 });
    expect((await shadowOf(hub.hubId)).d1?.reported).toEqual({ n: 1 });
    expect(c.resendUnacked()).toBe(0);
  });

  it('recovers from a sequence gap: the server names the expected seq, numbering goes on from there', async () => {
    const hub = await provision();
    const c = client(hub);
    await c.connect();
    await c.report({ d1: { n: 1 } });
    const gapErrors: ErrorFrame[] = [];
    c.on('errorFrame', (f) => gapErrors.push(f));
    c.sendFrame({ t: 4, s: 7, r: { d1: { n: 7 } } });
    const err = await c.waitFor(isError);
    expect(err).toMatchObject({ e: 'sequence_gap', ref: 2, tmp: true });
    await expect(c.report({ d1: { n: 2 } })).resolves.toBe(2);
    expect(gapErrors).toHaveLength(1);
  });

  it('gets malformed_frame error frames for bad bytes and text frames', async () => {
    const hub = await provision();
    const c = client(hub);
    await c.connect();
    expect(c.sendRaw(new Uint8Array([0xc1]))).toBe(true);
    expect(await c.waitFor(isError)).toMatchObject({ e: 'malformed_frame', c: 100 });
    c.sendRaw('{"t":3}');
    expect(await c.waitFor(isError)).toMatchObject({ e: 'malformed_frame' });
    expect(c.connected).toBe(true);
  });

  it('gets a heartbeat with the server clock in answer to its own', async () => {
    const hub = await provision();
    const c = client(hub);
    await c.connect();
    const before = Date.now();
    c.heartbeat();
    const hb = await c.waitFor((f) => f.t === 3);
    expect(hb.t === 3 && (hb.ts ?? 0) >= before - 1000).toBe(true);
  });

  it('is closed with 4000 and bye session_taken_over when the hub connects again', async () => {
    const hub = await provision();
    const a = client(hub);
    await a.connect();
    const bye = once(a, 'bye');
    const b = client(hub);
    await b.connect();
    const closed = await a.closed;
    expect(closed.code).toBe(4000);
    expect((await bye)[0]).toMatchObject({ t: 12, e: 'session_taken_over' });
    expect(a.connected).toBe(false);
    expect(b.connected).toBe(true);
  });

  it('rejects waitFor when the socket closes first, and report when not connected', async () => {
    const hub = await provision();
    const c = client(hub);
    await c.connect();
    const never = c.waitFor(() => false, 10_000);
    await c.close();
    await expect(never).rejects.toMatchObject({ code: 'closed' });
    await expect(c.report({ d: { a: 1 } })).rejects.toMatchObject({ code: 'not_connected' });
    await expect(c.waitFor(() => true)).rejects.toMatchObject({ code: 'not_connected' });
  });

  it('leaves with bye: normal close, the server ends the session', async () => {
    const hub = await provision();
    const c = client(hub);
    await c.connect();
    expect((await c.bye()).code).toBe(1000);
    await vi.waitFor(async () => expect((await api('GET', `/v1/hubs/${hub.hubId}`)).body.online).toBe(false));
  });

  it('gets desired state as the welcome delta when offline and as a set command when online', async () => {
    const hub = await provision();
    const c = client(hub);
    await c.connect();
    await c.devices({ f: true, j: [{ d: 'plug-1', k: 'plug' }] });
    await c.report({ 'plug-1': { on: false } });
    await c.close();

    expect((await api('PUT', `/v1/hubs/${hub.hubId}/devices/plug-1/desired`, { desired: { on: true } })).status).toBe(200);
    const welcome = await c.connect();
    expect(welcome.dl).toEqual({ 'plug-1': { on: true } });

    const cmd = c.waitFor(isCommand);
    await api('PUT', `/v1/hubs/${hub.hubId}/devices/plug-1/desired`, { desired: { level: 3 } });
    expect(await cmd).toMatchObject({ m: 'set', d: 'plug-1', p: { on: true, level: 3 } });
    expect(c.state.get('plug-1')).toEqual({ on: true, level: 3 });
  });
});

describe('simulator core in-process', () => {
  let sim: Simulator | null = null;
  let runs = 0;
  afterEach(async () => {
    await sim?.stop();
    sim = null;
  });

  /** Options of a simulator run; each test passes its own prefix (hub ids) and secrets file. */
  const options = (prefix: string, secretsFile: string, lines: string[]) => ({
    url: wsUrl,
    hubs: 2,
    devices: 8,
    adminToken: ADMIN,
    prefix,
    secretsFile,
    reportEverySec: 0.2,
    out: (line: string) => lines.push(line),
  });

  /** A prefix and a secrets file no other test uses. */
  const fresh = () => {
    const n = ++runs;
    return { prefix: `simt${n}`, secretsFile: join(dir, `secrets-${n}.json`) };
  };

  it('provisions hubs, connects them, answers commands and reports the change', async () => {
    const { prefix, secretsFile } = fresh();
    const lines: string[] = [];
    sim = await runSimulator(options(prefix, secretsFile, lines));
    expect(sim.stats()).toMatchObject({ total: 2, connected: 2, failed: 0 });
    expect(lines[0]).toContain('provisioned 2/2 hubs');
    const saved = JSON.parse(readFileSync(secretsFile, 'utf8')) as { registries: Record<string, Record<string, string>> };
    expect(Object.keys(saved.registries[sim.registry] ?? {}).sort()).toEqual([`${prefix}-0`, `${prefix}-1`]);
    expect((await api('GET', `/v1/hubs/${prefix}-1`)).body).toMatchObject({ homeId: 'home-0', online: true });

    const path = `/v1/hubs/${prefix}-1/devices/dev-4/commands`; // dev-4 is a plug
    const on = await api('POST', path, { set: { on: true } });
    expect(on.status).toBe(200);
    expect(on.body.result).toMatchObject({ on: true, power: expect.any(Number) });
    const off = await api('POST', path, { method: 'toggle' });
    expect(off.body).toEqual({ ok: true, result: { on: false, power: 0, energy: expect.any(Number) } });
    expect((await api('POST', path, { method: 'dance' })).body).toMatchObject({ code: 'command_failed' });
    expect((await api('POST', path, { set: { position: 5 } })).body).toMatchObject({ code: 'command_failed' });
    expect((await api('POST', `/v1/hubs/${prefix}-1/devices/dev-99/commands`, { set: { on: true } })).body).toMatchObject({ code: 'unknown_device' });
    expect(sim.stats().commands).toBeGreaterThanOrEqual(4);
    await vi.waitFor(async () => expect((await shadowOf(`${prefix}-1`))['dev-4']).toMatchObject({ kind: 'plug', reported: { on: false, power: 0 } }));

    // desired state while online arrives as a set command; the simulator applies and reports it
    await api('PUT', `/v1/hubs/${prefix}-0/devices/dev-5/desired`, { desired: { position: 40 } });
    await vi.waitFor(async () => expect((await shadowOf(`${prefix}-0`))['dev-5']?.reported).toEqual({ position: 40, moving: false }));

    // drifting sensors keep reporting
    const acked = sim.stats().reportsAcked;
    await vi.waitFor(() => expect(sim!.stats().reportsAcked).toBeGreaterThan(acked + 2));

    await sim.stop();
    expect(sim.stats().connected).toBe(0);
    await vi.waitFor(() => expect(server.sessions.has(`${prefix}-0`) || server.sessions.has(`${prefix}-1`)).toBe(false));
  });

  it('reuses saved secrets for hubs that exist, and skips hubs whose secret is unknown', async () => {
    const { prefix, secretsFile } = fresh();
    // a first run provisions the hubs and saves their secrets
    sim = await runSimulator(options(prefix, secretsFile, []));
    expect(sim.stats()).toMatchObject({ total: 2, connected: 2 });
    await sim.stop();

    const lines: string[] = [];
    sim = await runSimulator(options(prefix, secretsFile, lines));
    expect(lines[0]).toContain('(0 new, 2 with saved secrets, 0 skipped)');
    expect(sim.stats()).toMatchObject({ total: 2, connected: 2 });
    await sim.stop();

    const other: string[] = [];
    sim = await runSimulator(options(prefix, join(dir, `${prefix}-other.json`), other));
    expect(sim.stats().total).toBe(0);
    expect(other.filter((l) => l.includes('its secret is not in'))).toHaveLength(2);
  });

  it('finds the saved secrets when run against another node of the same registry', async () => {
    const { prefix, secretsFile } = fresh();
    sim = await runSimulator(options(prefix, secretsFile, []));
    expect(sim.stats()).toMatchObject({ total: 2, connected: 2 });
    await sim.stop();

    // another node, another URL: the registry (named from the shared admin token) is the same
    const lines: string[] = [];
    sim = await runSimulator({ ...options(prefix, secretsFile, lines), url: siblingUrl });
    expect(lines[0]).toContain('(0 new, 2 with saved secrets, 0 skipped)');
    expect(sim.stats()).toMatchObject({ total: 2, connected: 2 });
    await vi.waitFor(() => expect(sibling.sessions.has(`${prefix}-0`) && sibling.sessions.has(`${prefix}-1`)).toBe(true));
    await sim.stop();

    // a registry given by name is another registry: its secrets are not these
    const other: string[] = [];
    sim = await runSimulator({ ...options(prefix, secretsFile, other), url: siblingUrl, registry: 'elsewhere' });
    expect(sim.stats().total).toBe(0);
    expect(other.filter((l) => l.includes('already provisioned in registry elsewhere'))).toHaveLength(2);
  });

  it('reconnects with backoff after being taken over, keeping its boot', async () => {
    const { prefix, secretsFile } = fresh();
    sim = await runSimulator(options(prefix, secretsFile, []));
    const hubId = `${prefix}-0`;
    const simClient = sim.client(hubId)!;
    const ackedBefore = simClient.acked;
    const saved = JSON.parse(readFileSync(secretsFile, 'utf8')) as { registries: Record<string, Record<string, string>> };
    const intruder = client({ hubId, secret: saved.registries[sim.registry]![hubId]! });

    const offline = once(sim, 'offline');
    const online = once(sim, 'online');
    await intruder.connect();
    expect((await offline)[1]).toMatchObject({ code: 4000 });
    const [onlineHub, welcome] = await online;
    expect(onlineHub).toBe(hubId);
    expect(welcome.s).toBeGreaterThanOrEqual(ackedBefore);
    expect((await intruder.closed).code).toBe(4000);
    expect(sim.stats()).toMatchObject({ connected: 2, reconnects: 1 });
  });
});
