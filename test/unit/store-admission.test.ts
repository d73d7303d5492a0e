/**
 * API writes while the node's own store stalls: refused at once before the handler runs (nothing
 * done, `503 unavailable`, Retry-After), reads and commands let through; each waited without a
 * deadline before, its socket and body held for the whole stall.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mountApi } from '../../src/api/routes.js';
import { storeWriteAdmission } from '../../src/api/store-admission.js';
import { loadUws, type us_listen_socket } from '../../src/transport/uws.js';

const binding = loadUws({ requireNative: false });
let socket: us_listen_socket;
let port = 0;
let waitedMs = 0;
/** handlers run: the stub authenticator counts them, then fails them (500) */
let handled = 0;

beforeAll(async () => {
  const app = binding.uws.App();
  const log = { error() {}, warn() {}, info() {}, debug() {}, child: () => log } as never;
  const auth = {
    fromHeader() {
      handled++;
      throw new Error('the stub authenticator');
    },
  } as never;
  const admitWrite = storeWriteAdmission(() => waitedMs, 5_000);
  mountApi(app, { auth, bus: {} as never, registry: {} as never, directory: {} as never, shadows: {} as never, log, maxBodyBytes: 65_536, commandTimeoutMs: 10_000, commandTimeoutMaxMs: 60_000, table: [], admitWrite });
  socket = await new Promise<us_listen_socket>((resolve, reject) => app.listen('127.0.0.1', 0, (s) => (s ? resolve(s) : reject(new Error('listen failed')))));
  port = binding.uws.us_socket_local_port(socket as never);
});

afterAll(() => {
  if (socket) binding.uws.us_listen_socket_close(socket);
});

const call = (method: string, path: string, body?: unknown) =>
  fetch(`http://127.0.0.1:${port}${path}`, { method, headers: { authorization: 'Bearer x', 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
const desired = () => call('PUT', '/v1/hubs/h1/devices/lamp/desired', { desired: { on: true } });

describe('API writes while the store waits for its disk', () => {
  it('are tried while the oldest write has waited up to the bound', async () => {
    waitedMs = 5_000;
    handled = 0;
    expect((await desired()).status).toBe(500);
    expect(handled).toBe(1);
  });

  it('are refused past it before the handler runs: 503 unavailable, Retry-After, nothing changed', async () => {
    waitedMs = 12_400;
    handled = 0;
    const res = await desired();
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ ok: false, code: 'unavailable', temporary: true });
    expect(body.message).toMatch(/waited 12 s for its disk: .*nothing was changed/);
    expect(handled).toBe(0);
  });

  it('let reads and commands through while writes are refused', async () => {
    waitedMs = 60_000;
    handled = 0;
    expect((await call('GET', '/v1/hubs/h1/shadow')).status).toBe(500);
    expect((await call('POST', '/v1/hubs/h1/devices/lamp/commands', { action: 'toggle' })).status).toBe(500);
    expect(handled).toBe(2);
  });

  it('has no admission without a store of its own (cluster mode)', () => {
    expect(storeWriteAdmission(undefined, 5_000)).toBeUndefined();
  });
});
