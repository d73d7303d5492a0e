/**
 * The documentation page's large files against a client that pipelines requests and does not read
 * (the attacker red team, 2026-12-05): 600 pipelined GETs of the 1.7 MB Swagger bundle on one
 * connection made the node buffer every answer (a gigabyte) and stall. Each body is now handed to
 * uWS as the socket drains: a connection gets the answers its socket took, not one per request.
 * Small answers too (2026-12-06): pipelined 404s, 304s, HEADs or refused upgrades were answered
 * each read whole inside uWS's callback (two connections held the loop seconds and grew the node
 * 2.5 MB/s); answered at the end of the turn, the request pipelined behind one closes the connection.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.js';

const PIPELINED = 200;

let node: ServerProcess;
let bundlePath: string;

beforeAll(async () => {
  node = await startServerProcess();
  const page = await (await fetch(`${node.httpUrl}/docs`)).text();
  bundlePath = '/' + /src="(docs\/assets\/[^"]*swagger-ui-bundle\.js)"/.exec(page)![1];
}, 60_000);

afterAll(async () => {
  await node?.stop();
});

/** Resident memory of a process, in bytes. */
function rss(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) * 1024;
}

/**
 * Sends `count` pipelined GETs of `path` on one connection with a small receive buffer, waits until
 * the node answered all it will (it closes the connection, or its answers stop growing once read),
 * then reads everything: how many responses began, and the node's RSS seen while it held them.
 */
async function pipelineUnread(path: string, count: number): Promise<{ responses: number; peakRss: number; baseRss: number }> {
  const baseRss = rss(node.pid);
  let peakRss = baseRss;
  const socket = net.connect({ host: '127.0.0.1', port: node.port });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  // the node may close it at once (a reset: it left requests unread), before this reads anything
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.on('error', () => {});
  socket.pause();
  socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`.repeat(count));
  // the node answers what it will within its turn on the data: sample its RSS while the socket is unread
  for (let i = 0; i < 20; i++) {
    await new Promise((r) => setImmediate(r));
    await fetch(`${node.adminUrl}/healthz`);
    peakRss = Math.max(peakRss, rss(node.pid));
  }
  // count status lines as the bytes pass (the bodies are 1.7 MB each), a status line split between chunks included
  const STATUS = 'HTTP/1.1 200 OK';
  let responses = 0;
  let tail = '';
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => {
    const text = tail + chunk;
    for (let at = text.indexOf(STATUS); at >= 0; at = text.indexOf(STATUS, at + STATUS.length)) responses++;
    tail = text.slice(-(STATUS.length - 1));
  });
  socket.resume();
  await closed;
  return { responses, peakRss, baseRss };
}

describe('large static files and pipelined requests', () => {
  it('a connection pipelining 200 GETs of the bundle is closed, not answered each; the node holds no copy per request', async () => {
    const { responses, peakRss, baseRss } = await pipelineUnread(bundlePath, PIPELINED);
    // the old code answered all 200 (340 MB buffered by uWS for this one connection); since the
    // answers wait for the end of the turn, the second request closes the connection before any
    expect(responses).toBeLessThan(PIPELINED / 4);
    expect(peakRss - baseRss).toBeLessThan(100 * 1024 * 1024);
  });

  it('a client that reads slowly gets the whole file', async () => {
    const expected = (await (await fetch(`${node.httpUrl}${bundlePath}`)).arrayBuffer()).byteLength;
    expect(expected).toBeGreaterThan(1_000_000);
    const socket = net.connect({ host: '127.0.0.1', port: node.port });
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const chunks: Buffer[] = [];
    let waiting: (() => void) | null = null;
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      // read slowly: the node must wait for the socket to drain (onWritable), not buffer the rest
      socket.pause();
      setTimeout(() => socket.resume(), 1);
      waiting?.();
    });
    const bodyOf = async (): Promise<number> => {
      chunks.length = 0;
      socket.write(`GET ${bundlePath} HTTP/1.1\r\nHost: x\r\n\r\n`);
      while (true) {
        const all = Buffer.concat(chunks);
        const end = all.indexOf('\r\n\r\n');
        if (end >= 0) {
          const length = Number(/content-length: (\d+)/i.exec(all.subarray(0, end).toString('latin1'))![1]);
          if (all.length - end - 4 >= length) return length;
        }
        await new Promise<void>((resolve) => (waiting = resolve));
      }
    };
    expect(await bodyOf()).toBe(expected);
    socket.destroy();
  });
});

describe('small answers and pipelined requests', () => {
  /** Writes `count` copies of `request` at once, reads everything: how many answers began, whether the node closed the connection. */
  async function pipelined(request: string, count: number): Promise<{ answers: number; closed: boolean }> {
    const socket = net.connect({ host: '127.0.0.1', port: node.port });
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    let text = '';
    socket.setEncoding('latin1');
    socket.on('error', () => {}); // a reset: the node closed with requests unread
    const answers = () => text.split('HTTP/1.1 ').length - 1;
    // the old code answered every one and kept the connection open: done when all are answered
    const closed = await new Promise<boolean>((resolve) => {
      socket.on('data', (chunk: string) => {
        text += chunk;
        if (answers() >= count) resolve(false);
      });
      socket.once('close', () => resolve(true));
      socket.write(request.repeat(count));
    });
    socket.destroy();
    return { answers: answers(), closed };
  }

  const upgrade = (path: string) => `GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`;
  const cases: Array<[string, string]> = [
    ['404s of no route', 'GET /x HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['304s of a docs file', 'GET /docs HTTP/1.1\r\nHost: x\r\nIf-None-Match: *\r\n\r\n'],
    ['HEADs of a docs file', 'HEAD /docs HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['hub upgrades refused (no credentials)', upgrade('/hub/v1')],
    ['app upgrades refused (no token)', upgrade('/app/v1')],
  ];
  it.each(cases)('%s: the connection is closed after the first, not each answered', async (_name, request) => {
    const { answers, closed } = await pipelined(request, 500);
    expect(closed).toBe(true);
    expect(answers).toBeLessThanOrEqual(2);
  });

  it('one request at a time on a kept-alive connection is still answered each time', async () => {
    const socket = net.connect({ host: '127.0.0.1', port: node.port });
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    socket.setEncoding('latin1');
    for (let i = 0; i < 3; i++) {
      const answer = new Promise<string>((resolve) => socket.once('data', resolve));
      socket.write('GET /x HTTP/1.1\r\nHost: x\r\n\r\n');
      expect(await answer).toMatch(/^HTTP\/1\.1 404 /);
    }
    socket.destroy();
  });
});
