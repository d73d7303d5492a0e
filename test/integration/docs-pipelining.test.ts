/**
 * The documentation page's large files against a client that pipelines requests and does not read
 * (the attacker red team, 2026-12-05): 600 pipelined GETs of the 1.7 MB Swagger bundle on one
 * connection made the node buffer every answer (a gigabyte) and stall. Each body is now handed to
 * uWS as the socket drains: a connection gets the answers its socket took, not one per request.
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
  await new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return { responses, peakRss, baseRss };
}

describe('large static files and pipelined requests', () => {
  it('a connection pipelining 200 GETs of the bundle gets the answers its socket took, then is closed; the node holds no copy per request', async () => {
    const { responses, peakRss, baseRss } = await pipelineUnread(bundlePath, PIPELINED);
    // the old code answered all 200 (340 MB buffered by uWS for this one connection)
    expect(responses).toBeGreaterThanOrEqual(1);
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
