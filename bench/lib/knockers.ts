import { connect, type Socket } from 'node:net';

/**
 * Keep-alive connections that send the same upgrade request again as soon as the last one is
 * answered with a refusal, each from its own loopback source address (127.0.0.2, .3, …): a node
 * that keys anything by the hub's address (its refusal log) sees as many sources as a fleet behind
 * home routers, which one client address would hide. An answer is counted once its head and
 * `content-length` body have arrived; an upgrade that succeeds is a failure of the run.
 */
export interface KnockResult {
  /** answers with `status` */
  answered: number;
  /** answers with another status */
  other: number;
  /** connections that closed or failed before the run ended */
  dropped: number;
}

export async function knock(o: { port: number; request: Buffer; connections: number; durationMs: number; status: number }): Promise<KnockResult> {
  const result: KnockResult = { answered: 0, other: 0, dropped: 0 };
  const request = o.request;
  let running = true;
  const sockets: Socket[] = [];
  const opened: Array<Promise<void>> = [];
  for (let i = 0; i < o.connections; i++) {
    const socket = connect({ host: '127.0.0.1', port: o.port, localAddress: `127.0.${Math.floor(i / 250)}.${2 + (i % 250)}` });
    socket.setNoDelay(true);
    sockets.push(socket);
    let buf: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.toString('latin1', 0, end);
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < end + 4 + length) return;
        if (head.startsWith(`HTTP/1.1 ${o.status}`)) result.answered++;
        else result.other++;
        if (head.startsWith('HTTP/1.1 101')) {
          socket.destroy();
          return;
        }
        buf = buf.subarray(end + 4 + length);
        if (running) socket.write(request);
      }
    });
    socket.on('close', () => {
      if (running) result.dropped++;
    });
    socket.on('error', () => {});
    // a connection that fails is counted as dropped (its close), not waited for
    opened.push(new Promise((resolve) => (socket.once('connect', resolve), socket.once('close', resolve))));
  }
  await Promise.all(opened);
  for (const s of sockets) s.write(request);
  await new Promise((r) => setTimeout(r, o.durationMs));
  running = false;
  for (const s of sockets) s.destroy();
  return result;
}
