import { connect, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadUws, type us_listen_socket, type WebSocket } from '../../src/transport/uws.js';
import { CloseCode, FrameReader, Opcode, clientFrame, closeFrame, type FrameSink } from '../../load/wire/ws-framing.js';
import { readUpgrade, upgradeKey, upgradeRequest } from '../../load/wire/ws-upgrade.js';

/**
 * The load tool's client WebSocket framing (load/wire/ws-framing.ts) against a real uWS server:
 * masking (uWS refuses unmasked client frames), every payload length form, fragments, frames cut by
 * reads, pings, close codes both ways, oversized frames; and protocol errors from bytes built here.
 */

const { uws } = loadUws({ requireNative: false });

type Seen = { kind: 'message'; data: Buffer; binary: boolean } | { kind: 'ping' | 'pong'; data: Buffer } | { kind: 'close' | 'fail'; code: number; reason: string };

/** A sink recording what the reader found, copying payloads (they may point into a read buffer). */
function recorder(): FrameSink & { seen: Seen[]; next(): Promise<Seen> } {
  const seen: Seen[] = [];
  let wake: (() => void) | null = null;
  const push = (s: Seen) => {
    seen.push(s);
    wake?.();
  };
  let read = 0;
  return {
    seen,
    message: (_c, data, binary) => push({ kind: 'message', data: Buffer.from(data), binary }),
    ping: (_c, data) => push({ kind: 'ping', data: Buffer.from(data) }),
    pong: (_c, data) => push({ kind: 'pong', data: Buffer.from(data) }),
    close: (_c, code, reason) => push({ kind: 'close', code, reason }),
    fail: (_c, code, reason) => push({ kind: 'fail', code, reason }),
    async next() {
      while (read >= seen.length) await new Promise<void>((r) => (wake = r));
      return seen[read++]!;
    },
  };
}

/** What the server side saw, and its sockets, so a test can make the server send. */
const server = {
  messages: [] as Buffer[],
  pongs: [] as Buffer[],
  /** close code and reason by socket id */
  closes: new Map<string, { code: number; reason: string }>(),
  /** open server sockets by the id the client sent in `x-test` */
  sockets: new Map<string, WebSocket<{ id: string }>>(),
  waiters: [] as Array<() => void>,
};
const changed = () => server.waiters.splice(0).forEach((w) => w());
async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise<void>((r) => server.waiters.push(r));
}

let listen: us_listen_socket;
let port = 0;
const clients: Socket[] = [];
let opened = 0;

beforeAll(async () => {
  const app = uws.App().ws<{ id: string }>('/t', {
    maxPayloadLength: 4 * 1024 * 1024,
    idleTimeout: 0,
    upgrade: (res, req, context) => {
      res.upgrade({ id: req.getHeader('x-test') }, req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'), context);
    },
    open: (ws) => {
      server.sockets.set(ws.getUserData().id, ws);
      changed();
    },
    message: (_ws, message) => {
      server.messages.push(Buffer.from(new Uint8Array(message)));
      changed();
    },
    pong: (_ws, message) => {
      server.pongs.push(Buffer.from(new Uint8Array(message)));
      changed();
    },
    close: (ws, code, message) => {
      server.sockets.delete(ws.getUserData().id);
      server.closes.set(ws.getUserData().id, { code, reason: Buffer.from(new Uint8Array(message)).toString() });
      changed();
    },
  });
  listen = await new Promise<us_listen_socket>((resolve, reject) => app.listen('127.0.0.1', 0, (s) => (s ? resolve(s) : reject(new Error('no listen')))));
  port = uws.us_socket_local_port(listen as never);
});

afterAll(() => {
  if (listen) uws.us_listen_socket_close(listen);
});

afterEach(() => {
  for (const c of clients.splice(0)) c.destroy();
  server.messages.length = 0;
  server.pongs.length = 0;
  server.closes.clear();
});

/** A raw socket upgraded on /t, its reader fed by what arrives (`chunks` keeps the raw reads), and the server's end of it. */
async function open(maxMessage = 1024 * 1024) {
  const sink = recorder();
  const reader = new FrameReader(sink, maxMessage);
  const chunks: Buffer[] = [];
  const id = String(++opened);
  const socket = connect({ host: '127.0.0.1', port });
  clients.push(socket);
  const key = upgradeKey();
  socket.write(upgradeRequest(`127.0.0.1:${port}`, '/t', key, { 'x-test': id }));
  let head: Buffer | null = Buffer.alloc(0);
  await new Promise<void>((resolve, reject) => {
    socket.on('error', reject);
    socket.on('data', (b: Buffer) => {
      if (head === null) {
        chunks.push(Buffer.from(b));
        return reader.feed(7, b);
      }
      head = Buffer.concat([head, b]);
      const answer = readUpgrade(head, key);
      if (answer.kind === 'partial') return;
      head = null;
      if (answer.kind !== 'open') return reject(new Error(`upgrade: ${JSON.stringify(answer)}`));
      if (answer.rest.length > 0) reader.feed(7, answer.rest);
      resolve();
    });
  });
  await until(() => server.sockets.has(id));
  return { id, socket, sink, reader, chunks, ws: server.sockets.get(id)! };
}

const bytes = (n: number, seed = 1) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff));

describe('client frames against uWS', () => {
  it('masks every payload length form so that uWS reads back the bytes sent', async () => {
    const { socket } = await open();
    const sizes = [0, 1, 125, 126, 65_535, 65_536, 300_000];
    for (const n of sizes) socket.write(clientFrame(Opcode.binary, bytes(n, n)));
    await until(() => server.messages.length === sizes.length);
    expect(server.messages.map((m) => m.length)).toEqual(sizes);
    sizes.forEach((n, i) => expect(server.messages[i]!.equals(bytes(n, n))).toBe(true));
  });

  it('sends a message in fragments', async () => {
    const { socket } = await open();
    socket.write(clientFrame(Opcode.binary, bytes(10, 1), false));
    socket.write(clientFrame(Opcode.continuation, bytes(5, 2), false));
    socket.write(clientFrame(Opcode.continuation, bytes(3, 3), true));
    await until(() => server.messages.length === 1);
    expect(server.messages[0]!.equals(Buffer.concat([bytes(10, 1), bytes(5, 2), bytes(3, 3)]))).toBe(true);
  });

  it('closes with a code and reason that uWS reports', async () => {
    const { id, socket, sink } = await open();
    socket.write(closeFrame(CloseCode.normal, 'bye'));
    await until(() => server.closes.has(id));
    expect(server.closes.get(id)).toEqual({ code: 1000, reason: 'bye' });
    // uWS answers with its close frame
    expect(await sink.next()).toEqual({ kind: 'close', code: 1000, reason: 'bye' });
  });
});

describe('server frames read from uWS', () => {
  it('reads binary and text messages of every length form, whatever the reads cut', async () => {
    const { ws, sink, chunks } = await open();
    const sizes = [0, 3, 125, 126, 65_535, 65_536, 500_000];
    for (const n of sizes) ws.send(bytes(n, n), true);
    ws.send('text', false);
    for (const n of sizes) {
      const m = await sink.next();
      expect(m.kind === 'message' && m.binary && m.data.equals(bytes(n, n))).toBe(true);
    }
    expect(await sink.next()).toEqual({ kind: 'message', data: Buffer.from('text'), binary: false });
    // the large messages came in several reads
    expect(chunks.length).toBeGreaterThan(2);

    // the same bytes again, cut everywhere: one byte at a time, then in uneven pieces
    const all = Buffer.concat(chunks);
    for (const piece of [1, 7, 1000]) {
      const again = recorder();
      const reader = new FrameReader(again, 1024 * 1024);
      for (let off = 0; off < all.length; off += piece) reader.feed(1, all.subarray(off, off + piece));
      expect(again.seen.map((s) => (s.kind === 'message' ? s.data.length : -1))).toEqual([...sizes, 4]);
      expect(reader.holding).toBe(0);
    }
  });

  it('reassembles a fragmented message, with a ping between its fragments', async () => {
    const { ws, sink } = await open();
    ws.sendFirstFragment(bytes(100, 1), true);
    ws.ping('between');
    ws.sendFragment(bytes(70_000, 2));
    ws.sendLastFragment(bytes(1, 3));
    expect(await sink.next()).toEqual({ kind: 'ping', data: Buffer.from('between') });
    const m = await sink.next();
    expect(m.kind === 'message' && m.binary && m.data.equals(Buffer.concat([bytes(100, 1), bytes(70_000, 2), bytes(1, 3)]))).toBe(true);
  });

  it('hears a ping and answers it with a pong uWS receives', async () => {
    const { ws, sink, socket } = await open();
    ws.ping('are you there');
    const ping = await sink.next();
    expect(ping).toEqual({ kind: 'ping', data: Buffer.from('are you there') });
    socket.write(clientFrame(Opcode.pong, ping.kind === 'ping' ? ping.data : Buffer.alloc(0)));
    await until(() => server.pongs.length === 1);
    expect(server.pongs[0]!.toString()).toBe('are you there');
  });

  it('reads the close code and reason the server ends with', async () => {
    const { ws, sink } = await open();
    ws.end(4001, 'superseded');
    expect(await sink.next()).toEqual({ kind: 'close', code: 4001, reason: 'superseded' });
  });

  it('refuses a message over its limit from the frame header, before buffering it', async () => {
    const { ws, sink, reader } = await open(1024);
    ws.send(bytes(1024, 1), true);
    ws.send(bytes(200_000, 2), true);
    expect((await sink.next()).kind).toBe('message');
    expect(await sink.next()).toMatchObject({ kind: 'fail', code: CloseCode.tooLarge });
    expect(reader.holding).toBe(0);
  });

  it('refuses a fragmented message whose fragments add up past the limit', async () => {
    const { ws, sink } = await open(1024);
    ws.sendFirstFragment(bytes(600, 1), true);
    ws.sendLastFragment(bytes(600, 2));
    expect(await sink.next()).toMatchObject({ kind: 'fail', code: CloseCode.tooLarge });
  });
});

describe('protocol errors (bytes built here)', () => {
  const frame = (b0: number, payload: number[], masked = false) => Buffer.from([b0, (masked ? 0x80 : 0) | payload.length, ...(masked ? [0, 0, 0, 0] : []), ...payload]);
  const cases: Array<[string, Buffer, number]> = [
    ['a masked server frame', frame(0x82, [1, 2], true), CloseCode.protocol],
    ['reserved bits', frame(0xc2, [1]), CloseCode.protocol],
    ['an unknown opcode', frame(0x83, [1]), CloseCode.protocol],
    ['a continuation with no first fragment', frame(0x80, [1]), CloseCode.protocol],
    ['a fragmented ping', frame(0x09, [1]), CloseCode.protocol],
    ['a close frame of one byte', frame(0x88, [3]), CloseCode.protocol],
    ['a close code no peer may send (1005)', frame(0x88, [0x03, 0xed]), CloseCode.protocol],
    ['a new message inside a fragmented one', Buffer.concat([frame(0x02, [1]), frame(0x82, [2])]), CloseCode.protocol],
  ];
  it.each(cases)('fails on %s and forgets the connection', (_name, input, code) => {
    const sink = recorder();
    const reader = new FrameReader(sink, 1024);
    reader.feed(3, input);
    expect(sink.seen).toEqual([expect.objectContaining({ kind: 'fail', code })]);
    expect(reader.holding).toBe(0);
  });

  it('reads a close frame without a code as 1005, and nothing after it', () => {
    const sink = recorder();
    const reader = new FrameReader(sink, 1024);
    reader.feed(3, Buffer.concat([frame(0x88, []), frame(0x82, [1])]));
    expect(sink.seen).toEqual([{ kind: 'close', code: CloseCode.noStatus, reason: '' }]);
  });

  it('keeps connections apart: a frame cut on one does not mix with another', () => {
    const sink = recorder();
    const reader = new FrameReader(sink, 1024);
    const a = frame(0x82, [1, 2, 3]);
    const b = frame(0x82, [9]);
    reader.feed(1, a.subarray(0, 3));
    reader.feed(2, b);
    reader.feed(1, a.subarray(3));
    expect(sink.seen.map((s) => (s.kind === 'message' ? [...s.data] : s))).toEqual([[9], [1, 2, 3]]);
    expect(reader.holding).toBe(0);
  });
});
