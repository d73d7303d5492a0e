/**
 * An app that sends requests and does not read their answers: once the answers it has not read pass
 * TIER_APP_MAX_BACKPRESSURE, the first answer uWS drops closes the socket at once. The app sees every
 * answer up to the close and none after a gap: 150,000 pings unread once left ids 99,883 onward
 * unanswered while later answers still arrived, and only then was the socket closed.
 */
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.js';

/** A client's text frame: masked, as RFC 6455 requires of clients. */
function maskedText(text: string): Buffer {
  const payload = Buffer.from(text);
  if (payload.length >= 126) throw new RangeError('short frames only');
  const mask = randomBytes(4);
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, payload.map((b, i) => b ^ mask[i % 4]!)]);
}

/** The server's frames (unmasked) in `bytes`: text payloads, and whether a close frame came. */
function serverFrames(bytes: Buffer): { texts: string[]; close: boolean } {
  const texts: string[] = [];
  let close = false;
  for (let at = 0; at + 2 <= bytes.length; ) {
    const op = bytes[at]! & 0x0f;
    let len = bytes[at + 1]! & 0x7f;
    let head = 2;
    if (len === 126) [len, head] = [bytes.readUInt16BE(at + 2), 4];
    else if (len === 127) [len, head] = [Number(bytes.readBigUInt64BE(at + 2)), 10];
    if (at + head + len > bytes.length) break;
    if (op === 1) texts.push(bytes.subarray(at + head, at + head + len).toString());
    if (op === 8) close = true;
    at += head + len;
  }
  return { texts, close };
}

/** A series' value in a /metrics text (0 when absent). */
const series = (text: string, name: string): number => Number(new RegExp(`^${name.replace(/[{}]/g, '\\$&')} (\\d+)`, 'm').exec(text)?.[1] ?? 0);

describe('answers an app does not read (real server process)', () => {
  let server: ServerProcess;

  beforeAll(async () => {
    // no request budget: the close tested is the backpressure's, not the rate limit's
    server = await startServerProcess({ TIER_APP_MAX_BACKPRESSURE: '1024', TIER_APP_REQUESTS_PER_SEC: '1000000', TIER_APP_REQUESTS_BURST: '1000000' });
  });

  afterAll(async () => {
    expect(await server.stop()).toBe(0);
  });

  it('closes the socket at the first answer dropped: the answers read are 0..k-1, none missing before a later one', async () => {
    const socket: Socket = connect(server.port, '127.0.0.1');
    await new Promise((r) => socket.once('connect', r));
    const chunks: Buffer[] = [];
    let upgraded = false;
    await new Promise<void>((resolve) => {
      socket.on('data', (d: Buffer) => {
        if (upgraded) return void chunks.push(d);
        const text = d.toString('latin1');
        const end = text.indexOf('\r\n\r\n');
        expect(text.slice(9, 12)).toBe('101');
        upgraded = true;
        if (end + 4 < d.length) chunks.push(d.subarray(end + 4));
        resolve();
      });
      socket.write(
        `GET /app/v1?token=${server.adminToken} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    // from here nothing is read until the node has closed the socket: kernel buffers fill, then uWS's
    socket.pause();
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.on('error', () => {});

    // 120,000 pings at once (their answers far past what the kernel's buffers and the 1 KiB limit
    // hold); once the node has closed the socket, or read them all, the app reads again and, if still
    // open, sends more: an answer dropped before must not be followed by a later one. The write is
    // small enough for the kernel to take at once: 400,000 pings left a write pending when the node
    // closed, and the client's failed write discarded the answers it held (none read, now and then).
    const metrics = async () => (await fetch(`${server.adminUrl}/metrics`)).text();
    const pings = (from: number, to: number) => {
      const frames: Buffer[] = [];
      for (let id = from; id < to; id++) frames.push(maskedText(`{"op":"ping","id":${id}}`));
      return Buffer.concat(frames);
    };
    const FIRST = 120_000;
    socket.write(pings(0, FIRST));
    let closedEarly = false;
    for (;;) {
      const m = await metrics();
      closedEarly = series(m, 'tier_sessions{kind="app"}') === 0;
      if (closedEarly || series(m, 'tier_app_frames_in_total{type="ping"}') >= FIRST) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    socket.resume();
    let sent = FIRST;
    if (!closedEarly) {
      socket.write(pings(FIRST, FIRST + 40_000));
      sent += 40_000;
    }
    socket.end();
    await closed;
    const { texts } = serverFrames(Buffer.concat(chunks));
    const ids = texts.map((t) => (JSON.parse(t) as { op: string; id: number }).id);
    expect(ids.length).toBeGreaterThan(0);
    expect(ids.length).toBeLessThan(sent);
    // every answer read is the next one: no id skipped before a later one arrived
    const skipped = ids.findIndex((id, i) => id !== i);
    expect({ skipped, at: skipped >= 0 ? ids.slice(skipped - 1, skipped + 2) : [] }).toEqual({ skipped: -1, at: [] });
    // the socket's place under the socket limits is given back by this close too
    const ready = (await (await fetch(`${server.adminUrl}/readyz`)).json()) as { appSockets: { sockets: number } };
    expect(ready.appSockets.sockets).toBe(0);
  });
});
