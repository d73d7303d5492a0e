import { createServer, type Server } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TimerWheel } from '../../src/index.js';
import { createLogger } from '../../src/log/logger.js';
import { startServer, type RunningServer } from '../../src/compose/server.js';
import { memoryPorts } from '../../src/compose/memory-ports.js';
import { CloseCode } from '../../proto/errors.js';
import { HubClientError } from '../../load/wire/handshake.js';
import { AdminClient, NoAnswerError, type BatchOutcome } from '../../load/wire/admin.js';
import { LeanHubs, type LeanHubEvents, type LeanTarget } from '../../load/loadgen/lean-hub.js';
import { HubPool } from '../../load/loadgen/hub-pool.js';
import { WorkerMetrics } from '../../load/loadgen/metrics.js';
import { SourcePorts } from '../../load/loadgen/sources.js';
import type { HubSpec, WorkerConfig } from '../../load/loadgen/ipc.js';
import { inProcessConfig } from '../helpers/in-process-config.js';

/**
 * The load tool's lean hubs (raw sockets, typed arrays) against a real node: the signed upgrade,
 * hello → welcome, reports and acks with their timing, commands answered, refusals with the
 * server's codes, closes by either side, timeouts, and the worker's reconnect after a drop.
 */

const ADMIN = 'lean-hubs-admin-token-0123456789';
let server: RunningServer;
let http: string;
let wsUrl: string;
let counter = 0;
const wheel = new TimerWheel();
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  const config = inProcessConfig(ADMIN, 'lean-hubs-jwt-secret-0123456789abcdef');
  const log = createLogger('silent');
  server = await startServer(config, log, async (timers) => memoryPorts(config, timers, log));
  http = `http://127.0.0.1:${server.port}`;
  wsUrl = `ws://127.0.0.1:${server.port}/hub/v1`;
});

afterAll(async () => {
  wheel.close();
  await server?.close();
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function api(method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(http + path, { method, headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function provisioned(): Promise<HubSpec> {
  const spec = { id: `lean-${++counter}`, home: 'lean-home', target: 0 };
  const res = await api('POST', '/v1/admin/hubs', { hubId: spec.id, homeId: spec.home });
  expect(res.status).toBe(201);
  return { ...spec, secret: res.body.secret as string };
}

type Heard = { type: 'close'; hub: number; code: number } | { type: 'error'; hub: number; code: string } | { type: 'command' | 'ack' | 'reportAck'; hub: number; n: number };

/** Events as a queue the test awaits in order of arrival. */
function heard(): LeanHubEvents & { next(type: Heard['type']): Promise<Heard> } {
  const all: Heard[] = [];
  let wake: (() => void) | null = null;
  const push = (h: Heard) => {
    all.push(h);
    wake?.();
  };
  return {
    onClose: (hub, code) => push({ type: 'close', hub, code }),
    onErrorFrame: (hub, code) => push({ type: 'error', hub, code }),
    onCommand: (hub) => push({ type: 'command', hub, n: 0 }),
    onAck: (hub, s) => push({ type: 'ack', hub, n: s }),
    onReportAck: (hub, ms) => push({ type: 'reportAck', hub, n: ms }),
    async next(type) {
      for (;;) {
        const i = all.findIndex((h) => h.type === type);
        if (i >= 0) return all.splice(i, 1)[0]!;
        await new Promise<void>((r) => (wake = r));
      }
    },
  };
}

function hubs(specs: HubSpec[], target: Partial<LeanTarget> = {}) {
  const events = heard();
  const h = new LeanHubs([{ endpoint: wsUrl, signed: true, hello: true, connectTimeoutMs: 10_000, source: () => undefined, ...target }], specs, events, wheel);
  cleanups.push(() => Promise.all(specs.map((_, i) => h.terminate(i))).then(() => undefined));
  return { h, events };
}

async function refusal(p: Promise<number>): Promise<HubClientError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HubClientError);
  return err as HubClientError;
}

describe('lean hubs against a node', () => {
  it('connects with a signed upgrade, reports and hears the ack covering the report', async () => {
    const { h, events } = hubs([await provisioned(), await provisioned()]);
    const [a, b] = await Promise.all([h.connect(0), h.connect(1)]);
    expect(a).toBeGreaterThan(0);
    expect(b).toBeGreaterThan(0);
    expect(h.connected(0) && h.connected(1)).toBe(true);
    expect(h.devices(1, [{ d: 'dev-0', k: 'sensor.temperature' }])).toBe(true);
    expect(h.report(1, { 'dev-0': { temperature: 21.5 } })).toBe(true);
    expect(await events.next('ack')).toEqual({ type: 'ack', hub: 1, n: 1 });
    expect(await events.next('ack')).toEqual({ type: 'ack', hub: 1, n: 2 });
    expect(await events.next('reportAck')).toMatchObject({ hub: 1 });
    const shadow = await api('GET', `/v1/hubs/${h.ids[1]}/shadow`);
    expect(JSON.stringify(shadow.body)).toContain('21.5');
  });

  it('answers a command with its parameters', async () => {
    const { h, events } = hubs([await provisioned()]);
    await h.connect(0);
    const res = await api('POST', `/v1/hubs/${h.ids[0]}/devices/dev-1/commands`, { set: { on: true } });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ ok: true, result: { on: true } });
    expect(await events.next('command')).toMatchObject({ hub: 0 });
  });

  it('fails a connect with the refusal code of the upgrade', async () => {
    const spec = await provisioned();
    const { h } = hubs([{ ...spec, secret: 'not-the-secret' }, { id: 'lean-never-provisioned', home: 'x', target: 0, secret: 'whatever' }]);
    const bad = await refusal(h.connect(0));
    expect(bad).toMatchObject({ code: 'bad_signature', status: 401 });
    // an id not provisioned is told a bad signature too: ids cannot be probed
    expect(await refusal(h.connect(1))).toMatchObject({ code: 'bad_signature', status: 401 });
    expect(h.connected(0) || h.connected(1)).toBe(false);
  });

  it('hears the server close a session it superseded, with its code', async () => {
    const spec = await provisioned();
    const first = hubs([spec]);
    const second = hubs([spec]);
    await first.h.connect(0);
    await second.h.connect(0);
    expect(await first.events.next('close')).toEqual({ type: 'close', hub: 0, code: CloseCode.takeover });
    expect(first.h.connected(0)).toBe(false);
    expect(second.h.connected(0)).toBe(true);
  });

  it('says bye and closes cleanly; a terminated session reports 1006', async () => {
    const { h, events } = hubs([await provisioned(), await provisioned()]);
    await Promise.all([h.connect(0), h.connect(1)]);
    h.bye(0);
    expect(h.connected(0)).toBe(false);
    expect(await events.next('close')).toEqual({ type: 'close', hub: 0, code: CloseCode.normal });
    await h.terminate(1);
    expect(await events.next('close')).toEqual({ type: 'close', hub: 1, code: 1006 });
    // and connects again after both
    await Promise.all([h.connect(0), h.connect(1)]);
    expect(h.connected(0) && h.connected(1)).toBe(true);
  });

  it('times out on a server that never answers, and names a refused connection by its errno', async () => {
    // reads and never answers (reading, it sees the client go)
    const silent: Server = createServer((s) => s.resume());
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as { port: number }).port;
    const { h } = hubs([await provisioned()], { endpoint: `ws://127.0.0.1:${port}/hub/v1`, connectTimeoutMs: 300 });
    expect(await refusal(h.connect(0))).toMatchObject({ code: 'timeout' });
    await new Promise<void>((r) => silent.close(() => r()));
    expect(await refusal(h.connect(0))).toMatchObject({ code: 'ECONNREFUSED' });
  });
});

describe('lean hubs against a server that closes before answering', () => {
  it('names a connection closed with no answer to its upgrade apart from a session closed after its 101', async () => {
    // reads the upgrade request and closes, as uWS does with a request it has not answered in 10 s
    const closer: Server = createServer((s) => s.once('data', () => s.end()));
    await new Promise<void>((r) => closer.listen(0, '127.0.0.1', r));
    const port = (closer.address() as { port: number }).port;
    const { h } = hubs([await provisioned()], { endpoint: `ws://127.0.0.1:${port}/hub/v1`, connectTimeoutMs: 5_000 });
    const err = await refusal(h.connect(0));
    await new Promise<void>((r) => closer.close(() => r()));
    expect(err).toMatchObject({ code: 'closed_before_upgrade' });
    expect(err.closeCode).toBeUndefined();
  });
});

describe('the worker pool of lean hubs', () => {
  it('reconnects a session that dropped, and counts what happened', async () => {
    const spec = await provisioned();
    const config: WorkerConfig = { targets: [`ws://127.0.0.1:${server.port}`], hubs: [spec], devices: 2, sourceAddresses: [], connectConcurrency: 4, connectTimeoutMs: 10_000, adminToken: ADMIN, signed: true, fill: true, reconnect: true, apps: [] };
    const metrics = new WorkerMetrics();
    const pool = new HubPool(config, metrics, new SourcePorts([]));
    cleanups.push(() => pool.stop(0));
    expect(await pool.connectAll(0)).toMatchObject({ ok: 1, failed: 0 });
    expect(metrics.counters.reportsSent).toBe(1);
    await pool.hubs.terminate(0);
    expect(metrics.counters.errors['close:1006']).toBe(1);
    // the reconnect comes from the pool's wheel within its backoff (at most 1 s for the first)
    while (metrics.counters.connects < 2) await new Promise((r) => setTimeout(r, 50));
    expect(pool.hubs.connected(0)).toBe(true);
    expect(metrics.counters.connected).toBe(1);
  });

  it('fills each hub with devices of ids of its own when asked (deviceIds per-hub), dev-0… otherwise', async () => {
    const specs = [await provisioned(), await provisioned()];
    const base = { targets: [`ws://127.0.0.1:${server.port}`], devices: 3, sourceAddresses: [], connectConcurrency: 4, connectTimeoutMs: 10_000, adminToken: ADMIN, signed: true, fill: true, reconnect: false, apps: [] };
    const metrics = new WorkerMetrics();
    const own = new HubPool({ ...base, hubs: [specs[0]!], deviceIds: 'per-hub' }, metrics, new SourcePorts([]));
    const shared = new HubPool({ ...base, hubs: [specs[1]!] }, metrics, new SourcePorts([]));
    cleanups.push(() => own.stop(0), () => shared.stop(0));
    expect(await own.connectAll(0)).toMatchObject({ ok: 1, failed: 0 });
    expect(await shared.connectAll(0)).toMatchObject({ ok: 1, failed: 0 });
    const devicesOf = async (hubId: string) => {
      for (;;) {
        const res = await api('GET', `/v1/hubs/${hubId}/shadow`);
        const ids = Object.keys(res.body.devices as object).sort();
        if (ids.length === 3) return ids;
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    expect(await devicesOf(specs[0]!.id)).toEqual([0, 1, 2].map((j) => `${specs[0]!.id}-${j}`));
    expect(await devicesOf(specs[1]!.id)).toEqual(['dev-0', 'dev-1', 'dev-2']);
    // each hub's fill counted once when the ack covering its report came (bench:memory waits on it)
    for (let i = 0; i < 1_000 && metrics.counters.reportAcks < 2; i++) await new Promise((r) => setTimeout(r, 20));
    expect(metrics.counters.reportAcks).toBe(2);
    expect(metrics.counters.acks).toBeGreaterThanOrEqual(2);
  });

  it('provisions its hubs in batches; a hub made by a batch whose answer was lost gets a new secret', async () => {
    const specs: HubSpec[] = [0, 1, 2].map((k) => ({ id: `lean-batch-${k}`, home: 'lean-home', target: 0, secret: '' }));
    const config: WorkerConfig = { targets: [`ws://127.0.0.1:${server.port}`], hubs: specs, devices: 2, sourceAddresses: [], connectConcurrency: 4, connectTimeoutMs: 10_000, adminToken: ADMIN, signed: true, fill: true, reconnect: false, apps: [] };
    const metrics = new WorkerMetrics();
    const pool = new HubPool(config, metrics, new SourcePorts([]));
    cleanups.push(() => pool.stop(0));
    // the first batch is made on the node, but its answer never reaches the worker
    class LosesFirstAnswer extends AdminClient {
      lost = 0;
      override async provisionBatch(hubs: ReadonlyArray<{ hubId: string; homeId: string; model?: string }>): Promise<BatchOutcome[]> {
        const outcomes = await super.provisionBatch(hubs);
        if (this.lost++ === 0) throw new NoAnswerError('timeout', 'answer lost');
        return outcomes;
      }
    }
    const admin = new LosesFirstAnswer(`ws://127.0.0.1:${server.port}`, ADMIN);
    expect(await pool.provision(() => admin)).toEqual({ ok: 3, failed: 0 });
    expect(admin.lost).toBe(2);
    expect(metrics.counters.errors).toEqual({ 'retry:provision:timeout': 1 });
    // the secrets rotated after the lost answer are the ones the node takes
    expect(await pool.connectAll(0)).toMatchObject({ ok: 3, failed: 0 });
  });

  it('tries a hub whose first connect failed again after its backoff, as a hub would', async () => {
    const spec = await provisioned();
    const config: WorkerConfig = { targets: [`ws://127.0.0.1:${server.port}`], hubs: [{ ...spec, secret: 'not-the-secret' }], devices: 2, sourceAddresses: [], connectConcurrency: 4, connectTimeoutMs: 10_000, adminToken: ADMIN, signed: true, fill: true, reconnect: true, apps: [] };
    const metrics = new WorkerMetrics();
    const pool = new HubPool(config, metrics, new SourcePorts([]));
    cleanups.push(() => pool.stop(0));
    expect(await pool.connectAll(0)).toMatchObject({ ok: 0, failed: 1 });
    // the secret is right by the time the retry comes (at most 1 s later)
    pool.hubs.secrets[0] = spec.secret!;
    while (metrics.counters.connects < 1) await new Promise((r) => setTimeout(r, 50));
    expect(pool.hubs.connected(0)).toBe(true);
  });
});
