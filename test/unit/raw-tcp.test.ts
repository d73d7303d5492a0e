import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { RawTcp, type RawConn } from '../../load/wire/raw-tcp.js';

type Heard = { kind: 'data'; tag: number; bytes: number[] } | { kind: 'error'; tag: number; code: string } | { kind: 'closed'; tag: number };

/** A RawTcp whose events are recorded in order; `until` waits for one. */
function recorder() {
  const heard: Heard[] = [];
  let wake: (() => void) | null = null;
  const push = (h: Heard) => {
    heard.push(h);
    wake?.();
  };
  const tcp = new RawTcp(Buffer.alloc(16), {
    data: (tag, bytes) => push({ kind: 'data', tag, bytes: [...bytes] }),
    error: (tag, err) => push({ kind: 'error', tag, code: err.code ?? '' }),
    closed: (tag) => push({ kind: 'closed', tag }),
  });
  const until = async (ok: (h: Heard[]) => boolean) => {
    while (!ok(heard)) await new Promise<void>((r) => (wake = r));
  };
  const received = (tag: number) => heard.flatMap((h) => (h.kind === 'data' && h.tag === tag ? h.bytes : []));
  return { tcp, heard, until, received };
}

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

/** A server handing each accepted socket to `onSocket`; resolves with its port. */
async function serve(onSocket: (s: Socket) => void): Promise<number> {
  const server = createServer((s) => {
    s.on('error', () => undefined);
    onSocket(s);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

describe('RawTcp', () => {
  it('sends what was written while connecting, in order, reads what comes back through the shared buffer, and closes when the peer does', async () => {
    const got: Buffer[] = [];
    const port = await serve((s) => {
      s.on('data', (d) => {
        got.push(d);
        // more than the 16-byte shared buffer: read in several turns
        if (Buffer.concat(got).length === 6) s.end(Buffer.from(Array.from({ length: 40 }, (_, i) => i)));
      });
    });
    const { tcp, heard, until, received } = recorder();
    const conn = tcp.connect({ host: '127.0.0.1', port }, 7);
    tcp.write(conn, Uint8Array.from([1, 2, 3]));
    tcp.write(conn, Uint8Array.from([4, 5, 6]));
    await until((h) => h.some((e) => e.kind === 'closed'));
    expect([...Buffer.concat(got)]).toEqual([1, 2, 3, 4, 5, 6]);
    expect(received(7)).toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(heard.filter((e) => e.kind !== 'data')).toEqual([{ kind: 'closed', tag: 7 }]);
  });

  it('end after the writes: the peer reads them all, then its end', async () => {
    let onEnd: (bytes: number[]) => void = () => undefined;
    const ended = new Promise<number[]>((r) => (onEnd = r));
    const port = await serve((s) => {
      const got: number[] = [];
      s.on('data', (d) => got.push(...d));
      s.on('end', () => {
        onEnd(got);
        s.end();
      });
    });
    const { tcp, until, heard } = recorder();
    const conn = tcp.connect({ host: '127.0.0.1', port }, 1);
    tcp.write(conn, Uint8Array.from([9]));
    // called while still connecting: it waits for the connection and the write
    tcp.end(conn);
    expect(await ended).toEqual([9]);
    await until((h) => h.some((e) => e.kind === 'closed'));
    expect(heard).toEqual([{ kind: 'closed', tag: 1 }]);
  });

  it('delivers a write the kernel cannot take at once whole, once the peer reads', async () => {
    let peer: Socket | null = null;
    let total = 0;
    let onAll: () => void = () => undefined;
    const all = new Promise<void>((r) => (onAll = r));
    const big = Buffer.alloc(8 * 1024 * 1024, 0xab);
    const port = await serve((s) => {
      peer = s;
      // not read until the write is under way: the rest waits in libuv with its buffer
      s.pause();
      s.on('data', (d) => {
        total += d.length;
        if (d.some((b) => b !== 0xab)) throw new Error('bytes changed');
        if (total === big.length) onAll();
      });
    });
    const { tcp, until } = recorder();
    const conn = tcp.connect({ host: '127.0.0.1', port }, 2);
    tcp.write(conn, big);
    await new Promise((r) => setTimeout(r, 50));
    (peer as Socket | null)?.resume();
    await all;
    tcp.destroy(conn);
    await until((h) => h.some((e) => e.kind === 'closed'));
  });

  it('names a refused connection by its errno, then closes it; destroy closes once', async () => {
    const port = await serve(() => undefined);
    await new Promise((r) => servers.pop()!.close(r));
    const { tcp, heard, until } = recorder();
    tcp.connect({ host: '127.0.0.1', port }, 3);
    await until((h) => h.some((e) => e.kind === 'closed'));
    expect(heard).toEqual([
      { kind: 'error', tag: 3, code: 'ECONNREFUSED' },
      { kind: 'closed', tag: 3 },
    ]);
    const open = await serve(() => undefined);
    const conn: RawConn = tcp.connect({ host: '127.0.0.1', port: open }, 4);
    tcp.destroy(conn);
    tcp.destroy(conn);
    tcp.write(conn, Uint8Array.from([1]));
    await until((h) => h.some((e) => e.kind === 'closed' && e.tag === 4));
    await new Promise((r) => setTimeout(r, 20));
    expect(heard.filter((e) => e.tag === 4)).toEqual([{ kind: 'closed', tag: 4 }]);
  });

  it('connects from the source address and port asked for; the same source again to the same server is refused by the kernel', async () => {
    let remote: { address?: string; port?: number } = {};
    const port = await serve((s) => (remote = { address: s.remoteAddress!, port: s.remotePort! }));
    const { tcp, heard, until } = recorder();
    const local = 40_000 + Math.floor(Math.random() * 20_000);
    const conn = tcp.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2', localPort: local }, 5);
    await expect.poll(() => remote.port).toBe(local);
    expect(remote.address).toBe('127.0.0.2');
    tcp.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2', localPort: local }, 6);
    await until((h) => h.some((e) => e.kind === 'closed' && e.tag === 6));
    expect(heard.filter((e) => e.tag === 6)).toEqual([
      // libuv binds with SO_REUSEADDR: the taken address shows at connect
      { kind: 'error', tag: 6, code: 'EADDRNOTAVAIL' },
      { kind: 'closed', tag: 6 },
    ]);
    tcp.destroy(conn);
  });
});
