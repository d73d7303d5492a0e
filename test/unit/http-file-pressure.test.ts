/**
 * Short of open files (ListenPause sets `filePressure.closing`), every answer of the public port
 * closes its connection and large ones are refused, so clients that go on asking on kept-alive
 * connections cannot hold their files (a hostile review, 2026-12-06: 21,000 such kept a node's port
 * closed; only idle connections time out). Otherwise a connection is kept for the next request.
 * An in-process node, raw sockets.
 */
import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { filePressure } from '../../src/transport/http.js';
import { startInProcessNode, type InProcessNode } from '../helpers/in-process-node.js';

let node: InProcessNode;
beforeAll(async () => {
  node = await startInProcessNode('file-pressure-admin-token-0123456789', 'file-pressure-jwt-secret-0123456789');
});
afterAll(async () => {
  await node?.server.close();
});
afterEach(() => {
  filePressure.closing = false;
});

/** One request on a fresh kept-alive connection: the answer's head, and whether the node closed the connection after it. */
async function ask(request: string): Promise<{ head: string; closed: boolean }> {
  const socket = net.connect({ host: '127.0.0.1', port: node.server.port });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  socket.on('error', () => {});
  socket.setEncoding('latin1');
  let text = '';
  const closed = new Promise<boolean>((resolve) => socket.once('close', () => resolve(true)));
  socket.on('data', (chunk: string) => (text += chunk));
  socket.write(request);
  // a second request on the same connection after the first answer: answered when the connection was kept
  const second = new Promise<boolean>((resolve) => {
    const check = () => {
      if (text.split('HTTP/1.1 ').length - 1 >= 2) resolve(false);
      else if (text.includes('\r\n\r\n')) socket.write(request);
    };
    socket.once('data', check);
    socket.on('data', () => text.split('HTTP/1.1 ').length - 1 >= 2 && resolve(false));
  });
  const result = await Promise.race([closed, second]);
  socket.destroy();
  return { head: text.slice(0, text.indexOf('\r\n')), closed: result };
}

const get = (path: string, extra = '') => `GET ${path} HTTP/1.1\r\nHost: x\r\n${extra}\r\n`;

describe('answers while short of open files', () => {
  it('a kept-alive connection serves a second request normally', async () => {
    expect(await ask(get('/v1/hubs/none', 'Authorization: Bearer nope\r\n'))).toEqual({ head: 'HTTP/1.1 401 Unauthorized', closed: false });
    expect(await ask(get('/x'))).toEqual({ head: 'HTTP/1.1 404 Not Found', closed: false });
  });

  it.each([
    ['an API answer', get('/v1/hubs/none', 'Authorization: Bearer nope\r\n'), 'HTTP/1.1 401 Unauthorized'],
    ['a 404', get('/x'), 'HTTP/1.1 404 Not Found'],
    ['a HEAD', 'HEAD /x HTTP/1.1\r\nHost: x\r\n\r\n', 'HTTP/1.1 404 Not Found'],
    ['a docs 304', get('/docs', 'If-None-Match: *\r\n'), 'HTTP/1.1 304 Not Modified'],
    ['a docs file (refused: no body streamed)', get('/docs'), 'HTTP/1.1 503 Service Unavailable'],
    ['a hub upgrade refused', get('/hub/v1', 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'), 'HTTP/1.1 401 Unauthorized'],
  ])('%s closes its connection', async (_name, request, head) => {
    filePressure.closing = true;
    expect(await ask(request)).toEqual({ head, closed: true });
  });

  it('a large answer is refused 503 busy, its connection closed', async () => {
    filePressure.closing = true;
    // the OpenAPI document is over the 64 KiB a large answer starts at
    const { head, closed } = await ask(get('/v1/openapi.json'));
    expect({ head, closed }).toEqual({ head: 'HTTP/1.1 503 Service Unavailable', closed: true });
  });
});
