import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { HubClient } from '../../load/wire/hub-client.js';
import { api, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

/** A client's text frame: masked, as RFC 6455 requires of clients. */
function maskedText(text: string): Buffer {
  const payload = Buffer.from(text);
  if (payload.length >= 126) throw new RangeError('short frames only');
  const mask = randomBytes(4);
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, payload.map((b, i) => b ^ mask[i % 4]!)]);
}

/**
 * An app on a bare TCP socket: it upgrades, subscribes to a home, and then never reads again (a
 * phone on a dead network, a stuck client). `gone` is set once the server has closed the socket:
 * a write to a socket the server closed is answered with a reset.
 */
async function stuckApp(port: number, token: string, home: string): Promise<{ socket: Socket; gone: () => string | null; probe: () => void; pos: { epoch: string; offset: number } }> {
  const socket = connect(port, '127.0.0.1');
  let gone: string | null = null;
  socket.on('error', (err) => (gone ??= `error: ${err.message}`));
  socket.on('close', () => (gone ??= 'closed'));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  let seen = '';
  const read = (chunk: Buffer) => void (seen += chunk.toString('latin1'));
  socket.on('data', read);
  const until = async (what: string) => {
    while (!seen.includes(what)) {
      if (gone) throw new Error(`app socket ${gone} before ${what}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  socket.write(
    `GET /app/v1?token=${token} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  );
  await until(' 101 ');
  socket.write(maskedText(JSON.stringify({ op: 'sub', home, id: 1 })));
  await until('"op":"ok"');
  await until('}}}');
  socket.off('data', read);
  socket.pause(); // from here on nothing is read: the kernel buffers fill, then uWS's
  // where its events begin: what it would resume from
  const [, epoch, offset] = /"pos":\{"epoch":"([^"]+)","offset":(\d+)\}/.exec(seen)!;
  return { socket, gone: () => gone, probe: () => void socket.write(maskedText(JSON.stringify({ op: 'ping', id: 2 }))), pos: { epoch: epoch!, offset: Number(offset) } };
}

describe('an app socket that does not read (real server process)', () => {
  let server: ServerProcess;

  beforeAll(async () => {
    // the smallest backpressure allowed, no rate limit in the way of the flood, and a history that
    // holds all of it (the kernel's buffers take a few MB before the limit is reached)
    server = await startServerProcess({ TIER_APP_MAX_BACKPRESSURE: '1024', TIER_HUB_RATE_PER_SEC: '1000000', TIER_HUB_RATE_BURST: '1000000', TIER_HISTORY_SIZE: '100000' });
  });

  afterAll(async () => {
    expect(await server.stop()).toBe(0);
  });

  it('is closed by the server once its backpressure passes the limit; the hub and other apps go on; reconnecting, it recovers all it missed', async () => {
    const home = 'home-bp';
    const res = await api(server.httpUrl, 'POST', '/v1/admin/hubs', server.adminToken, { hubId: 'bp-1', homeId: home });
    expect(res.status).toBe(201);
    const hub = new HubClient({ url: server.wsUrl, hubId: 'bp-1', secret: res.body.secret });
    await hub.connect();
    const stuck = await stuckApp(server.port, server.adminToken, home);

    // the hub floods its home with ~11 KB of events per report until the server lets the stuck
    // app go (the kernel's socket buffers take a few MB first); the test's timeout is the ceiling
    const big = 'x'.repeat(1_000);
    let n = 0;
    while (stuck.gone() === null) {
      const batch: Array<Promise<number>> = [];
      for (let i = 0; i < 50; i++, n++) {
        const r: Record<string, Record<string, string | number>> = {};
        for (let d = 0; d < 10; d++) r[`d${d}`] = { n, s: big };
        batch.push(hub.report(r));
      }
      await Promise.all(batch);
      stuck.probe();
      await new Promise((r) => setImmediate(r));
    }
    expect(stuck.gone()).toMatch(/ECONNRESET|EPIPE|closed/);
    // counted as a backpressure close, the series an SRE watches for stuck clients
    await expect.poll(async () => /^tier_app_backpressure_closes_total 1$/m.test(await (await fetch(`${server.adminUrl}/metrics`)).text())).toBe(true);

    // the node is healthy, the hub still connected, and a reading app gets the home's events
    expect((await fetch(`${server.adminUrl}/healthz`)).status).toBe(200);
    expect(hub.connected).toBe(true);
    // the app comes back with where it stopped reading: everything it missed, paced so that the
    // 1 KiB limit that closed it does not close it again, then the live events
    const app = new WebSocket(`${server.wsUrl}/app/v1?token=${server.adminToken}`);
    const messages: Array<Record<string, any>> = [];
    app.on('message', (d: Buffer) => messages.push(JSON.parse(d.toString()) as Record<string, unknown>));
    await new Promise((resolve, reject) => (app.once('open', resolve), app.once('error', reject)));
    app.send(JSON.stringify({ op: 'sub', home, id: 1, since: stuck.pos }));
    await expect.poll(() => messages.find((m) => m.id === 1)).toMatchObject({ op: 'ok', result: { recovered: true, pos: stuck.pos } });
    await hub.report({ d0: { n: -1 } });
    await expect.poll(() => messages.some((m) => m.op === 'evt' && m.hub === 'bp-1' && (m.attrs as { n?: number }).n === -1), { timeout: 30_000 }).toBe(true);
    const offsets = messages.filter((m) => m.op === 'evt').map((m) => m.pos.offset as number);
    expect(offsets.length).toBeGreaterThan(1_000);
    expect(offsets).toEqual(Array.from({ length: offsets.length }, (_, i) => stuck.pos.offset + 1 + i));
    app.close();
    stuck.socket.destroy();
    await hub.close();
  });
});
