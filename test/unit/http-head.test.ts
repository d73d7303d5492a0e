/**
 * HEAD on the public port: a GET route answers it with GET's status, headers and length and no
 * body, and so does the catch-all 404. Read on a raw socket: a body sent after a HEAD answer is
 * invisible to fetch, and corrupts the next answer on a kept-alive connection.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mountApi } from '../../src/api/routes.js';
import { loadUws, type us_listen_socket } from '../../src/transport/uws.js';
import { parseHeadAnswer, rawHead } from '../../load/fuzz/raw-head.js';

const binding = loadUws({ requireNative: false });
let socket: us_listen_socket;
let port = 0;

beforeAll(async () => {
  const app = binding.uws.App();
  const log = { error() {}, warn() {}, info() {}, debug() {}, child: () => log } as never;
  mountApi(app, { auth: {} as never, bus: {} as never, registry: {} as never, directory: {} as never, shadows: {} as never, log, maxBodyBytes: 65_536, commandTimeoutMs: 10_000, commandTimeoutMaxMs: 60_000, table: [] });
  socket = await new Promise<us_listen_socket>((resolve, reject) => app.listen('127.0.0.1', 0, (s) => (s ? resolve(s) : reject(new Error('listen failed')))));
  port = binding.uws.us_socket_local_port(socket as never);
});

afterAll(() => {
  if (socket) binding.uws.us_listen_socket_close(socket);
});

describe('HEAD', () => {
  it("answers a GET route with GET's status and length, and no body", async () => {
    const full = await fetch(`http://127.0.0.1:${port}/v1/openapi.json`);
    const length = Buffer.byteLength(await full.text());
    expect(full.status).toBe(200);
    expect(await rawHead('127.0.0.1', port, '/v1/openapi.json', {}, 5_000)).toEqual({ status: 200, text: '', headBody: false });
    const head = await fetch(`http://127.0.0.1:${port}/v1/openapi.json`, { method: 'HEAD' });
    expect(head.headers.get('content-type')).toBe(full.headers.get('content-type'));
    expect(Number(head.headers.get('content-length'))).toBe(length);
  });

  it('answers an unknown path 404 with no body', async () => {
    expect(await rawHead('127.0.0.1', port, '/v1/nothing-here', {}, 5_000)).toEqual({ status: 404, text: '', headBody: false });
  });

  it('answers a route whose handler fails with its error status and no body', async () => {
    // the stub authenticator has no methods: the handler throws, the wrapper answers 500
    expect(await rawHead('127.0.0.1', port, '/v1/hubs/h1', { authorization: 'Bearer x' }, 5_000)).toMatchObject({ status: 500, headBody: false });
  });
});

describe("the fuzzer's HEAD oracle", () => {
  const raw = (text: string) => Buffer.from(text, 'latin1');

  it('reads the final answer after interim 1xx ones, and tells a body that follows it', () => {
    expect(parseHeadAnswer(raw('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\ncontent-length: 8\r\n\r\n'))).toEqual({ status: 404, text: '', headBody: false });
    expect(parseHeadAnswer(raw('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}'))).toEqual({ status: 200, text: '', headBody: true });
  });

  it('calls an interim answer alone, a cut header block or nothing "no answer"', () => {
    for (const text of ['', 'HTTP/1.1 100 Continue\r\n\r\n', 'HTTP/1.1 200 OK\r\ncontent-len']) expect(parseHeadAnswer(raw(text))).toHaveProperty('error');
  });
});
