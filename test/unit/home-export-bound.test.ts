/**
 * `GET /v1/homes/{homeId}/export` on a real uWS app in this process: a node builds at most
 * `maxExports` exports at once (each is held whole in memory) and answers the others `503 busy`
 * at once, without reading anything; a slot is given back when an export ends, failed or not.
 */
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Authenticator } from '../../src/auth/authenticator.js';
import { ExportPace } from '../../src/api/export-pace.js';
import { mountHomeApi } from '../../src/api/home-routes.js';
import type { HomeDataDeps } from '../../src/api/home-data.js';
import { loadUws, type us_listen_socket } from '../../src/transport/uws.js';
import { eventually } from '../helpers/eventually.js';
import { api } from '../helpers/server-process.js';
import { silentLog } from './rules-fixtures.js';

const ADMIN = 'export-bound-admin-token-0123456789';
const auth = new Authenticator(ADMIN, 'export-bound-jwt-secret-0123456789ab');
const binding = loadUws({ requireNative: false });

/** Each export waits for its home's hub list until the test lets it go (or fails it). */
const waiting: Array<{ homeId: string; go(): void; fail(): void }> = [];
const data: HomeDataDeps = {
  fleet: {
    homeHubs: (homeId: string) =>
      homeId.startsWith('big-') ? Promise.resolve([]) : new Promise((resolve, reject) => waiting.push({ homeId, go: () => resolve([]), fail: () => reject(new Error('store away')) })),
  } as never,
  // a home of 'big-' has a 16 MB scene: more than the loopback's socket buffers take from a client that does not read, and
  // three fit under the node's 64 MiB of answers waiting for readers (so the third is refused by the export slots)
  rules: { listRules: async () => [], listScenes: async (homeId: string) => (homeId.startsWith('big-') ? [{ id: 's1', name: 'x'.repeat(16_000_000) }] : []), getSettings: async () => ({ timeZone: 'UTC' }) } as never,
  shadows: {} as never,
  history: undefined,
  eventsSettled: async () => {},
  push: { removeHome: async () => 0 },
  revokeHome: async () => 0,
};

let base: string;
let socket: us_listen_socket;
/** the pace's clock (ms): still unless a test moves it */
let clock = 0;
/** loop time added to each export's own (ms): an export of 'home-p' as long as a large home's */
class SlowHomes extends ExportPace {
  override built(homeId: string, ms: number): void {
    super.built(homeId, homeId === 'home-p' ? ms + 200 : ms);
  }
}

beforeAll(async () => {
  const app = binding.uws.App();
  mountHomeApi(app, { auth, data, log: silentLog, maxBodyBytes: 65_536, maxExports: 2, exportPace: new SlowHomes(0.1, 50, () => clock) });
  socket = await new Promise<us_listen_socket>((resolve, reject) => app.listen('127.0.0.1', 0, (s) => (s ? resolve(s) : reject(new Error('listen failed')))));
  base = `http://127.0.0.1:${binding.uws.us_socket_local_port(socket as never)}`;
});
afterAll(() => binding.uws.us_listen_socket_close(socket));

const exportOf = (homeId: string, token = ADMIN) => api(base, 'GET', `/v1/homes/${homeId}/export`, token);
const until = async (n: number) => {
  while (waiting.length < n) await new Promise((r) => setTimeout(r, 5));
};

describe('home exports at once on a node', () => {
  it('builds two, answers a third 503 busy, and takes one again once a slot is free, failed or not', async () => {
    const first = exportOf('home-a');
    const second = exportOf('home-b');
    await until(2);
    const third = await fetch(`${base}/v1/homes/home-c/export`, { headers: { authorization: `Bearer ${ADMIN}` } });
    expect(third.status).toBe(503);
    expect(third.headers.get('retry-after')).toBe('1');
    expect(await third.json()).toMatchObject({ code: 'busy', temporary: true });
    expect(waiting.map((w) => w.homeId)).toEqual(['home-a', 'home-b']);

    // one fails: its slot is free again
    waiting[0]!.fail();
    expect((await first).status).toBe(500);
    const fourth = exportOf('home-d');
    await until(3);
    expect(waiting[2]!.homeId).toBe('home-d');
    waiting[1]!.go();
    waiting[2]!.go();
    expect((await second).body).toMatchObject({ homeId: 'home-b', hubs: [] });
    expect((await fourth).body).toMatchObject({ homeId: 'home-d', hubs: [] });
  });

  it('refuses a user of another home before counting it', async () => {
    const token = await auth.issue('mallory', ['home-x'], 600);
    const held = [exportOf('home-e'), exportOf('home-f')];
    await until(5);
    expect((await exportOf('home-a', token)).status).toBe(403);
    for (const w of waiting.slice(3)) w.go();
    for (const r of await Promise.all(held)) expect(r.status).toBe(200);
  });

  it('holds a slot until the client has taken the export: two that are not read make a third busy, until their clients leave', async () => {
    /** asks for an export and reads its first bytes (the status), then nothing more */
    const unread = (homeId: string) =>
      new Promise<{ socket: Socket; status: string }>((resolve, reject) => {
        const socket = connect(Number(new URL(base).port), '127.0.0.1');
        socket.once('error', reject);
        socket.once('data', (d: Buffer) => {
          socket.pause();
          resolve({ socket, status: d.toString('latin1').split('\r\n')[0]! });
        });
        socket.write(`GET /v1/homes/${homeId}/export HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN}\r\n\r\n`);
      });
    const readers = [await unread('big-1'), await unread('big-2')];
    expect(readers.map((r) => r.status)).toEqual(['HTTP/1.1 200 OK', 'HTTP/1.1 200 OK']);
    const third = await exportOf('big-3');
    expect(third.status).toBe(503);
    expect(third.body).toMatchObject({ code: 'busy', message: '2 home exports are being built on this node: try again shortly' });
    for (const r of readers) r.socket.destroy();
    // the node hears of the clients gone (onAborted), and the slots are free again
    const again = await eventually(AbortSignal.timeout(20_000), 'a slot free again', async () => {
      const r = await exportOf('big-4');
      return r.status === 200 ? r : undefined;
    });
    expect((again.body as { scenes: unknown[] }).scenes).toHaveLength(1);
  });
  it('builds one export of a home at a time: a second of the same home is busy while the first is built, the node\'s other slot left to other homes', async () => {
    const n = waiting.length;
    const first = exportOf('home-g');
    await until(n + 1);
    const again = await exportOf('home-g');
    expect(again.status).toBe(503);
    expect(again.body).toMatchObject({ code: 'busy', message: 'an export of home home-g is being built or read: try again once it is done' });
    const other = exportOf('home-h');
    await until(n + 2);
    waiting[n]!.go();
    waiting[n + 1]!.go();
    expect((await first).status).toBe(200);
    expect((await other).status).toBe(200);
    // done: the home may export again
    const next = exportOf('home-g');
    await until(n + 3);
    waiting[n + 2]!.go();
    expect((await next).status).toBe(200);
  });

  it('paces a home whose export took long: 429 with Retry-After until nine times its build has passed, other homes going on', async () => {
    const n = waiting.length;
    const first = exportOf('home-p');
    await until(n + 1);
    waiting[n]!.go();
    expect((await first).status).toBe(200);
    const paced = await fetch(`${base}/v1/homes/home-p/export`, { headers: { authorization: `Bearer ${ADMIN}` } });
    expect(paced.status).toBe(429);
    expect(paced.headers.get('retry-after')).toBe('2');
    expect(await paced.json()).toMatchObject({ code: 'rate_limited', temporary: true });
    const other = exportOf('home-q');
    await until(n + 2);
    waiting[n + 1]!.go();
    expect((await other).status).toBe(200);
    clock += 2_000; // past nine times the 200 ms (and the export's own fraction of a ms)
    const later = exportOf('home-p');
    await until(n + 3);
    waiting[n + 2]!.go();
    expect((await later).status).toBe(200);
  });

});
