import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { request } from '../../load/wire/admin.js';

/**
 * The load tools' HTTP exchange over kept-alive connections: a connection the server reset just
 * as a request went out on it is retried once on a new connection; other failures are not.
 */

const servers: Server[] = [];
const open: Socket[] = [];
afterEach(async () => {
  // the client's pool keeps its last connection: closed here, not after its idle time
  for (const socket of open.splice(0)) socket.destroy();
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

/** A raw HTTP server answering `{"n":k}` to the first request of each connection and, per `later`, the next ones. */
async function server(later: 'reset' | 'answer'): Promise<{ base: string; connections: () => number; sockets: Socket[] }> {
  const sockets: Socket[] = [];
  const s = createServer((socket) => {
    sockets.push(socket);
    open.push(socket);
    let served = 0;
    socket.on('data', () => {
      if (served++ > 0 && later === 'reset') {
        socket.resetAndDestroy();
        return;
      }
      const body = JSON.stringify({ n: sockets.length });
      socket.write(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: keep-alive\r\n\r\n${body}`);
    });
    socket.on('error', () => {});
  });
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  return { base: `http://127.0.0.1:${port}`, connections: () => sockets.length, sockets };
}

describe('request over kept-alive connections', () => {
  it('sends a request again on a new connection when the reused one was reset', async () => {
    const srv = await server('reset');
    expect(await request(srv.base, 'GET', '/a', null, undefined, 5_000, true)).toMatchObject({ status: 200, body: { n: 1 } });
    // the second goes out on the kept connection, which the server resets: answered on a new one
    expect(await request(srv.base, 'GET', '/b', null, undefined, 5_000, true)).toMatchObject({ status: 200, body: { n: 2 } });
    expect(srv.connections()).toBe(2);
  });

  it('does not retry a reset of a fresh connection', async () => {
    const s = createServer((socket) => socket.on('data', () => socket.resetAndDestroy()));
    servers.push(s);
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    let connections = 0;
    s.on('connection', () => connections++);
    const base = `http://127.0.0.1:${(s.address() as { port: number }).port}`;
    await expect(request(base, 'GET', '/a', null, undefined, 5_000, false)).rejects.toMatchObject({ code: 'ECONNRESET' });
    expect(connections).toBe(1);
  });
});
