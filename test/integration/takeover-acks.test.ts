import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { FrameType } from '../../proto/frames.js';
import { decodeServer, encodeFrame, frames, peekServer } from '../../load/wire/frames.js';
import { hubEndpoint, signedHeaders } from '../../load/wire/handshake.js';
import { eventually } from '../helpers/eventually.js';
import { api, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

/**
 * A hub's new session opens while its old one still works through queued frames (device lists
 * that change the stored kinds make each frame wait for a write). Before the store's fence rose at
 * the open, the old session went on storing and acknowledging reports the new session's copy of
 * the shadow lacked, and the new session's next write of that device wiped them: an acknowledged
 * report lost, found by a red-team probe. Every acknowledgement the old session sends must be of a
 * frame the new session opened with (at most its welcome's `s`), and every report acknowledged
 * must be in the shadow.
 */

/** A hub on a plain `ws` socket: every frame sent as given, every server frame kept. */
class RawHub {
  readonly received: Array<ReturnType<typeof peekServer>> = [];
  closed = false;
  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => this.received.push(peekServer(data)));
    ws.on('close', () => (this.closed = true));
    ws.on('error', () => {});
  }

  static async open(url: string, hubId: string, secret: string, boot: string): Promise<{ hub: RawHub; welcomeSeq: number }> {
    const ws = new WebSocket(hubEndpoint(url), { headers: signedHeaders(hubId, secret) });
    const hub = new RawHub(ws);
    const welcome = new Promise<number>((resolve, reject) => {
      ws.once('message', (data: Buffer) => {
        const f = decodeServer(data);
        if (f.t === FrameType.welcome) resolve(f.s);
        else reject(new Error(`expected a welcome, got ${JSON.stringify(f)}`));
      });
      ws.once('error', reject);
    });
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    hub.send(frames.hello(boot));
    return { hub, welcomeSeq: await welcome };
  }

  send(frame: object): void {
    this.ws.send(encodeFrame(frame));
  }

  /** The largest sequence number acknowledged on this socket (-1: none). */
  get acked(): number {
    let most = -1;
    for (const f of this.received) if (f?.t === FrameType.ack && typeof f.s === 'number') most = Math.max(most, f.s);
    return most;
  }

  terminate(): void {
    this.ws.terminate();
  }
}

// the embedded default: its device-list writes wait for a commit, so frames queue behind them (the
// memory store writes at once; Redis is covered by the store's contract suite)
describe('a takeover while the old session still has frames queued (embedded default)', () => {
  let server: ServerProcess;
  const dataDir = mkdtempSync(join(tmpdir(), 'takeover-acks-'));
  const open: RawHub[] = [];

  beforeAll(async () => {
    server = await startServerProcess({ DATA_DIR: dataDir });
  });

  afterAll(async () => {
    for (const h of open) h.terminate();
    expect(await server.stop()).toBe(0);
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('the old session acknowledges nothing the new one opened without, and no acknowledged report is lost', async ({ signal }) => {
    const until = (what: string, done: () => boolean) => eventually(signal, what, async () => (done() ? true : undefined));
    // several rounds: the old code lost the report in most of them, not in every one
    for (let round = 0; round < 4; round++) {
      const hubId = `takeover-acks-${round}`;
      const created = await api(server.httpUrl, 'POST', '/v1/admin/hubs', server.adminToken, { hubId, homeId: 'home-t' });
      expect(created.status).toBe(201);
      const secret = created.body.secret as string;
      const { hub: old } = await RawHub.open(server.wsUrl, hubId, secret, 'boot-x');
      open.push(old);
      old.send(frames.devices(1, { f: true, j: [{ d: 'lamp', k: 'switch' }] }));
      old.send(frames.report(2, { lamp: { x: 1 } }));
      await until('the first report acknowledged', () => old.acked === 2);
      const sent: object[] = [];
      const send = (frame: { s: number }) => {
        sent[frame.s] = frame;
        old.send(frame);
      };
      let s = 2;
      // lists that change the stored kinds: each waits for its write, the frames behind it queue
      for (let i = 0; i < 5; i++) send(frames.devices(++s, { f: true, j: [{ d: 'lamp', k: i % 2 ? 'switch' : 'plug' }] }));
      send(frames.report(++s, { lamp: { foo: 1 } }));
      for (let i = 0; i < 10; i++) send(frames.devices(++s, { f: true, j: [{ d: 'lamp', k: i % 2 ? 'switch' : 'plug' }] }));

      // the same hub (same boot) reconnects while the old socket is still being read
      const { hub: renewed, welcomeSeq } = await RawHub.open(server.wsUrl, hubId, secret, 'boot-x');
      open.push(renewed);
      await until('the old socket closed', () => old.closed);
      expect(old.acked, `round ${round}: acknowledged by the old session beyond what the new one opened with`).toBeLessThanOrEqual(welcomeSeq);

      // as firmware does: what neither socket acknowledged is sent again, in order, then a new report
      for (let seq = Math.max(old.acked, welcomeSeq) + 1; seq <= s; seq++) renewed.send(sent[seq]!);
      renewed.send(frames.report(++s, { lamp: { bar: 1 } }));
      await until('the new report acknowledged', () => renewed.acked === s);
      const shadow = await api(server.httpUrl, 'GET', `/v1/hubs/${hubId}/shadow`, server.adminToken);
      expect(shadow.body.devices.lamp.reported, `round ${round}`).toEqual({ x: 1, foo: 1, bar: 1 });
    }
  });
});
