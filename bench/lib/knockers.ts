import { connect, type Socket } from 'node:net';
import { readUpgrade } from '../../load/wire/ws-upgrade.js';

/**
 * Keep-alive connections that send the same upgrade request again as soon as the last one is
 * answered with a refusal, each from its own loopback source address (127.0.0.2, .3, …): a node
 * that keys anything by the hub's address (its refusal log) sees as many sources as a fleet behind
 * home routers, which one client address would hide. Answers are read as the load tool reads
 * them (`readUpgrade`); an upgrade that succeeds, or an answer that is not HTTP, ends its connection.
 */
export interface KnockResult {
  /** answers with `status` */
  answered: number;
  /** answers with another status */
  other: number;
  /** connections that closed or failed before the run ended */
  dropped: number;
}

/** `request` is an upgrade sent with `key` (one request in flight a connection: an answer ends the bytes read). */
export async function knock(o: { port: number; request: Buffer; key: string; connections: number; durationMs: number; status: number }): Promise<KnockResult> {
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
      const answer = readUpgrade(buf, o.key);
      if (answer.kind === 'partial') return;
      buf = Buffer.alloc(0);
      if (answer.kind === 'refused' && answer.status === o.status) result.answered++;
      else result.other++;
      if (answer.kind !== 'refused') socket.destroy();
      else if (running) socket.write(request);
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
