/**
 * A frame the server refuses for now (rate_limited, twice) is sent again by the hub client, paced,
 * with or without autoResend (which is about the welcome): the chaos fleet runs its hubs with it off,
 * and a refused resend left such a hub at sequence_gap, never acked again (review "diff11"). A fake
 * server acks in order, answers sequence_gap past a hole and refuses frame 2 twice.
 */
import { WebSocketServer } from 'ws';
import { afterEach, expect, it } from 'vitest';
import { HubClient } from '../../load/wire/hub-client.js';
import { decodeValue, encode, encodeAck, errorFrameFor } from '../../src/protocol/codec.js';

let wss: WebSocketServer | undefined;
afterEach(() => wss?.close());

async function run(autoResend: boolean): Promise<{ acked: number; sent: number[] }> {
  wss = new WebSocketServer({ port: 0 });
  await new Promise((r) => wss!.once('listening', r));
  const port = (wss.address() as { port: number }).port;
  let expected = 1;
  let refusals = 0;
  const sent: number[] = [];
  wss.on('connection', (ws) => {
    ws.on('message', (data: Buffer) => {
      const f = decodeValue(data) as { t: number; s?: number };
      if (f.t === 1) {
        ws.send(encode({ t: 2, v: 1, ep: 1, hb: 0, idle: 600_000, max: 16_384, ts: Date.now(), s: 0, dl: {} } as never));
        return;
      }
      if (f.s === undefined) return;
      sent.push(f.s);
      if (f.s < expected) return ws.send(encodeAck(expected - 1));
      if (f.s > expected) return ws.send(encode(errorFrameFor('sequence_gap', `expected ${expected}`, expected)));
      if (f.s === 2 && refusals < 2) {
        refusals++;
        return ws.send(encode(errorFrameFor('rate_limited', 'slow down', 2)));
      }
      expected++;
      ws.send(encodeAck(f.s));
    });
  });
  const hub = new HubClient({ url: `ws://127.0.0.1:${port}`, hubId: 'h1', secret: 'x'.repeat(32), heartbeat: false, autoResend });
  await hub.connect();
  for (let i = 0; i < 10; i++) void hub.report({ lamp: { level: i } }).catch(() => {});
  // two paced steps of 500 ms at most; an ack that never comes ends at the test's timeout
  while (hub.acked < 10) await new Promise((r) => setTimeout(r, 50));
  const acked = hub.acked;
  await hub.terminate();
  return { acked, sent };
}

for (const autoResend of [true, false]) {
  it(`autoResend ${autoResend ? 'on' : 'off (the chaos fleet)'}: every frame acked after two refusals of frame 2, in order`, async () => {
    const r = await run(autoResend);
    expect(r.acked).toBe(10);
    // what the server took, in order: each number once after the one before it
    const taken = r.sent.filter((s, i) => r.sent.indexOf(s) === i);
    expect(taken).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  }, 10_000);
}
