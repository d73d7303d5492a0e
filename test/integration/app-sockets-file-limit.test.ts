/**
 * A node whose open-file limit is nearly used up by app sockets (one user token opened 20,050 and the
 * node died on EMFILE from its resident-size timer, every hub dropped). A real node process with a
 * low limit (prlimit on the child right after its spawn), so a few hundred sockets reach it:
 * - by default the node's app socket bound leaves room for the hubs and its own files, so the flood
 *   is refused `busy` long before the limit;
 * - set above what the files allow, accept() hits EMFILE: the node lives on, its hubs and app
 *   sockets are served, /metrics answers on a connection it already had, the failed resident-size
 *   reads are counted; the public port stops listening (the waiting connections are reset) and
 *   listens again once files are free.
 */
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { HubClient } from '../../load/wire/hub-client.js';
import { api, fds, fileLimit, logLine, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

/** A raw app upgrade: the status line's code once answered (the socket is kept open on 101). */
function upgrade(port: number, token: string, held: Socket[]): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    held.push(s);
    let buf = '';
    s.on('connect', () => s.write(`GET /app/v1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Protocol: bearer.${token}\r\n\r\n`));
    s.on('data', (d) => {
      buf += d.toString('latin1');
      if (buf.includes('\r\n\r\n')) resolve(buf.slice(9, 12));
    });
    s.on('error', (e) => resolve((e as NodeJS.ErrnoException).code ?? 'error'));
    s.on('close', () => resolve('closed'));
  });
}

/** An HTTP/1.1 keep-alive connection: each `get` is answered on the same socket (no new file needed). */
async function keptConnection(port: number): Promise<{ get: (path: string) => Promise<string>; close: () => void }> {
  const s = connect(port, '127.0.0.1');
  await new Promise((r) => s.once('connect', r));
  return {
    get: (path) =>
      new Promise((resolve) => {
        let buf = '';
        const onData = (d: Buffer) => {
          buf += d.toString('latin1');
          const head = buf.indexOf('\r\n\r\n');
          const length = Number(/content-length: (\d+)/i.exec(buf)?.[1] ?? NaN);
          if (head >= 0 && buf.length - head - 4 >= length) {
            s.off('data', onData);
            resolve(buf);
          }
        };
        s.on('data', onData);
        s.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
      }),
    close: () => s.destroy(),
  };
}

/** The start's warning when the open-file limit is below the session limits. */
const FILES_SHORT = 'open-file limit below the session limits: the node runs out of files before it is full';

describe('app sockets against the open-file limit (real server process)', () => {
  let server: ServerProcess | undefined;
  const held: Socket[] = [];
  const hubs: HubClient[] = [];

  afterEach(async () => {
    for (const s of held.splice(0)) s.destroy();
    await Promise.all(hubs.splice(0).map((h) => h.terminate()));
    if (server) expect(await server.stop()).toBe(0);
    server = undefined;
  });

  async function hubOnline(s: ServerProcess, hubId: string): Promise<HubClient> {
    const res = await api(s.httpUrl, 'POST', '/v1/admin/hubs', s.adminToken, { hubId, homeId: 'fd-home' });
    expect(res.status).toBe(201);
    const hub = new HubClient({ url: s.wsUrl, hubId, secret: res.body.secret });
    hubs.push(hub);
    await hub.connect();
    return hub;
  }
  const userToken = async (s: ServerProcess) => (await api(s.httpUrl, 'POST', '/v1/admin/tokens', s.adminToken, { sub: 'fd-flooder', homes: ['fd-home'] })).body.token as string;

  it('by default refuses a flood of one token busy, with files to spare: hubs, the API and /metrics go on', async () => {
    // 700 files, 20 hubs: 700 - 20 - 500 = 180 app sockets
    server = await startServerProcess({ TIER_MAX_HUB_SESSIONS: '20', TIER_MAX_APP_SOCKETS_PER_USER: '100000' }, fileLimit(700));
    const hub = await hubOnline(server, 'fd-hub-1');
    const token = await userToken(server);
    const outcome: Record<string, number> = {};
    // one at a time until the first refusal, then a few more: all refused alike
    let refused = 0;
    while (refused < 10) {
      const status = await upgrade(server.port, token, held);
      outcome[status] = (outcome[status] ?? 0) + 1;
      if (status !== '101') refused++;
    }
    expect(outcome).toEqual({ '101': 180, '503': 10 });
    // the files left are the node's margin: far from the limit
    expect(fds(server.pid)).toBeLessThan(700 - 100);
    expect(await hub.report({ d0: { on: true } })).toBeGreaterThan(0);
    expect((await api(server.httpUrl, 'GET', '/v1/hubs/fd-hub-1', server.adminToken)).status).toBe(200);
    const metrics = await (await fetch(`${server.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(/tier_app_upgrades_refused_total\{code="busy"\} 10/);
    // the limits fit the files: no warning at start
    expect(server.logs.filter((l) => l.msg === FILES_SHORT)).toEqual([]);
  });

  it('past the files it has, accept() fails EMFILE: the node lives, serves what it holds, pauses its port and listens again once files are free', async ({ signal }) => {
    const FILES = 400;
    // the bound set above what the files allow; the resident size read every 100 ms
    server = await startServerProcess({ TIER_MAX_APP_SOCKETS: '100000', TIER_MAX_APP_SOCKETS_PER_USER: '100000', TIER_MAX_HUB_SESSIONS: '20', TIER_MALLOC_TRIM_MS: '100' }, fileLimit(FILES));
    const node = server;
    // said at start, since 2026-12-05 (before, only /debug/diagnose warned)
    expect(node.logs.find((l) => l.msg === FILES_SHORT)).toMatchObject({ level: 40, openFileLimit: FILES, maxAppSockets: 100_000, maxHubSessions: 20 });
    const hub = await hubOnline(node, 'fd-hub-2');
    const token = await userToken(node);
    const admin = await keptConnection(node.adminPort);
    let opened = 0;
    while (fds(node.pid) < FILES - 3) {
      expect(await upgrade(node.port, token, held)).toBe('101');
      opened++;
    }
    // the first few take the last files; the rest wait in the listen backlog until the port closes
    const waiting = Array.from({ length: 8 }, () => upgrade(node.port, token, held));
    // connections to the admin port wait for a file too: the file the pause gives back (its listen
    // socket) goes to one of them, so the node stays out of files whichever of the probe and the
    // resident-size read comes first (without them the read could find that file and never fail)
    for (let i = 0; i < 4; i++) held.push(connect(node.adminPort, '127.0.0.1').on('error', () => {}));
    // the resident-size read fails EMFILE on the trimmer's timer: counted and logged, not thrown
    const died = node.exited.then((code) => new Error(`the node died (exit ${code}): ${JSON.stringify(node.logs.slice(-3))}`));
    const first = await Promise.race([died, logLine(node, signal, (l) => l.msg === 'periodic read failed (the node goes on without it)' && l.kind === 'rss')]);
    if (first instanceof Error) throw first;
    // out of files, the public port stops listening (src/compose/listen-pause.ts): its backlog is reset
    await logLine(node, signal, (l) => l.msg === 'out of open files: the public port stops listening until files are free');
    const outcomes = await Promise.all(waiting);
    expect(outcomes.filter((o) => o !== '101').length).toBeGreaterThan(0);
    expect(outcomes.every((o) => ['101', 'closed', 'ECONNRESET'].includes(o))).toBe(true);

    // what it holds is served: the hub's report is acknowledged, /metrics answers on its connection
    expect(await hub.report({ d0: { on: true } })).toBeGreaterThan(0);
    const scraped = await admin.get('/metrics');
    expect(scraped).toMatch(/^HTTP\/1\.1 200/);
    expect(Number(/tier_periodic_read_failures_total\{kind="rss"\} (\d+)/.exec(scraped)?.[1])).toBeGreaterThan(0);
    expect(scraped).toMatch(/^tier_listen_paused 1$/m);

    // files freed (more than the headroom it waits for): the port listens again, upgrades are taken
    for (const s of held.slice(0, 60)) s.destroy();
    await logLine(node, signal, (l) => l.msg === 'open files free again: the public port listens again');
    expect(await upgrade(node.port, token, held)).toBe('101');
    expect(opened).toBeGreaterThan(100);
    admin.close();
  });
});
