import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { FrameType, type ServerToHubFrame } from '../../proto/frames.js';
import { HubClient } from '../../load/wire/hub-client.js';
import { hubEndpoint, signedHeaders } from '../../load/wire/handshake.js';
import { decodeServerFrame, encodeValue } from '../../src/protocol/codec.js';
import { api, startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { withRaw } from '../helpers/msgpack-raw.js';

describe('hub frames that break a rule of PROTOCOL.md §1 (a real node, embedded default)', () => {
  let server: ServerProcess;
  const clients: HubClient[] = [];
  const secrets: Record<string, string> = {};

  async function provision(hubId: string): Promise<string> {
    const res = await api(server.httpUrl, 'POST', '/v1/admin/hubs', server.adminToken, { hubId, homeId: `home-${hubId}` });
    expect(res.status).toBe(201);
    return (secrets[hubId] = res.body.secret as string);
  }

  async function online(hubId: string): Promise<HubClient> {
    const c = new HubClient({ url: server.wsUrl, hubId, secret: await provision(hubId) });
    clients.push(c);
    await c.connect();
    return c;
  }

  beforeAll(async () => {
    // the hello timeout short enough to wait for (a hub that offers only another version)
    server = await startServerProcess({ TIER_HELLO_TIMEOUT_MS: '3000' });
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.terminate()));
    await server?.stop();
  });

  it('a sequenced frame refused for a rule (extension type, non-string key) names its s and is consumed: the next ack covers it', async () => {
    const hub = await online('rules-seq');
    await hub.report({ lamp: { on: true } });
    // ts as a msgpack timestamp (ext −1), as a firmware library may write a date
    const seq = hub.seq + 1;
    const err = hub.waitFor((f) => f.t === FrameType.error);
    const ack = hub.waitFor((f) => f.t === FrameType.ack && f.s === seq);
    hub.sendRaw(withRaw({ t: 4, s: seq, r: { lamp: { on: false } }, ts: '@raw@' }, 'd6ff65a8a0a0'));
    expect(await err).toMatchObject({ e: 'malformed_frame', ref: seq, f: 'ts', tmp: false });
    await ack;
    // an integer device id key: refused, never stored as device "7"
    const next = seq + 1;
    const err2 = hub.waitFor((f) => f.t === FrameType.error && f.ref === next);
    const ack2 = hub.waitFor((f) => f.t === FrameType.ack && f.s === next);
    hub.sendRaw(withRaw({ t: 4, s: next, r: '@raw@' }, '8107' + encodeValue({ a: 1 }).toString('hex')));
    expect(await err2).toMatchObject({ e: 'invalid_field', f: 'r' });
    await ack2;
    const shadow = await api(server.httpUrl, 'GET', '/v1/hubs/rules-seq/shadow', server.adminToken);
    expect(Object.keys(shadow.body.devices)).toEqual(['lamp']);
    expect(shadow.body.devices.lamp.reported).toEqual({ on: true });
  });

  it("a set's result must be Attrs: NaN, an array or a string fail the command at once (502) and the hub hears invalid_field with ref", async () => {
    const hub = await online('rules-set');
    await hub.report({ lamp: { on: false } });
    const command = (body: object) => api(server.httpUrl, 'POST', '/v1/hubs/rules-set/devices/lamp/commands', server.adminToken, { timeoutMs: 60_000, ...body });
    for (const r of [{ on: NaN }, { on: Infinity }, [1, 2], 'done']) {
      hub.onCommand(() => ({ ok: true, r: r as never }));
      const refusal = hub.waitFor((f) => f.t === FrameType.error);
      const res = await command({ set: { on: true } });
      expect(res.status, JSON.stringify(r)).toBe(502);
      expect(res.body.code).toBe('command_failed');
      const e = await refusal;
      expect(e).toMatchObject({ e: 'invalid_field', tmp: false });
      expect((e as { ref?: number }).ref).toBeTypeOf('number');
    }
    // another method's result is any value, as documented
    hub.onCommand(() => ({ ok: true, r: 'done' }));
    const other = await command({ method: 'identify' });
    expect(other.status).toBe(200);
    expect(other.body.result).toBe('done');
  });

  it('an error frame answering a waiting command that fails validation fails the command at once (502), with ref', async () => {
    const hub = await online('rules-err');
    await hub.report({ lamp: { on: false } });
    for (const bad of [{ msg: '' }, { tmp: 'no' }]) {
      hub.onCommand(() => new Promise(() => {})); // no result: only the error frame answers
      hub.on('frame', function answer(f: ServerToHubFrame) {
        if (f.t !== FrameType.command) return;
        hub.off('frame', answer);
        hub.sendFrame({ t: 10, c: 403, e: 'command_failed', tmp: false, ref: f.id, msg: 'stalled', ...bad });
      });
      const refusal = hub.waitFor((f) => f.t === FrameType.error);
      const res = await api(server.httpUrl, 'POST', '/v1/hubs/rules-err/devices/lamp/commands', server.adminToken, { set: { on: true }, timeoutMs: 60_000 });
      expect(res.status, JSON.stringify(bad)).toBe(502);
      expect(res.body.code).toBe('command_failed');
      const e = await refusal;
      expect(e).toMatchObject({ e: 'invalid_field' });
      expect((e as { ref?: number }).ref).toBeTypeOf('number');
    }
  });

  it("a field the server only notes is dropped when bad, not refused: a long fw is welcomed, a fractional heartbeat ts answered, a result's empty msg succeeds (review compat)", async () => {
    const secret = await provision('rules-lenient');
    const hub = new HubClient({ url: server.wsUrl, hubId: 'rules-lenient', secret, fw: `2.4.1+build.${'f'.repeat(80)}` });
    clients.push(hub);
    await hub.connect();
    const errors: ServerToHubFrame[] = [];
    hub.on('frame', (f: ServerToHubFrame) => f.t === FrameType.error && errors.push(f));
    const answered = hub.waitFor((f) => f.t === FrameType.heartbeat);
    hub.sendFrame({ t: 3, ts: Date.now() + 0.5 });
    await answered;
    await hub.report({ lamp: { on: false } });
    hub.onCommand(() => new Promise(() => {})); // answered below with a raw result
    hub.on('frame', function answer(f: ServerToHubFrame) {
      if (f.t !== FrameType.command) return;
      hub.off('frame', answer);
      hub.sendFrame({ t: 8, id: f.id, ok: true, r: { on: true }, msg: '' });
    });
    const res = await api(server.httpUrl, 'POST', '/v1/hubs/rules-lenient/devices/lamp/commands', server.adminToken, { set: { on: true }, timeoutMs: 60_000 });
    expect(res.status).toBe(200);
    expect(res.body.result).toEqual({ on: true });
    expect(errors).toEqual([]);
  });

  describe('a first frame that is not a valid hello: its error, bye hello_required, close 1002 (§2.2)', () => {
    async function firstFrame(hubId: string, send: (ws: WebSocket) => void): Promise<{ frames: ServerToHubFrame[]; code: number }> {
      const secret = secrets[hubId] ?? (await provision(hubId));
      const ws = new WebSocket(hubEndpoint(server.wsUrl), { headers: signedHeaders(hubId, secret) });
      const frames: ServerToHubFrame[] = [];
      ws.on('message', (data: Buffer) => frames.push(decodeServerFrame(data)));
      await once(ws, 'open');
      const closed = once(ws, 'close');
      send(ws);
      const [code] = (await closed) as [number];
      return { frames, code };
    }
    const cases: Array<[string, (ws: WebSocket) => void, string]> = [
      ['a text message', (ws) => ws.send('{"t":1}'), 'malformed_frame'],
      ['byte 0xc1', (ws) => ws.send(Buffer.from([0xc1])), 'malformed_frame'],
      ['a map without t', (ws) => ws.send(encodeValue({ v: 1, b: 'boot' })), 'invalid_field'],
      ['frame type 99', (ws) => ws.send(encodeValue({ t: 99 })), 'unknown_frame_type'],
      ['a hello without its boot id', (ws) => ws.send(encodeValue({ t: 1, v: 1 })), 'invalid_field'],
    ];
    it.each(cases)('%s', async (name, send, code) => {
      const { frames, code: closeCode } = await firstFrame(`first-${name.replace(/[^a-z0-9]+/g, '-')}`, send);
      expect(closeCode).toBe(1002);
      expect(frames.map((f) => f.t)).toEqual([FrameType.error, FrameType.bye]);
      expect(frames[0]).toMatchObject({ e: code });
      expect(frames[1]).toMatchObject({ e: 'hello_required' });
    });

    it('a hello of another version is only refused: a hello v1 that follows is welcomed', async () => {
      const hubId = 'first-version';
      const ws = new WebSocket(hubEndpoint(server.wsUrl), { headers: signedHeaders(hubId, await provision(hubId)) });
      const frames: ServerToHubFrame[] = [];
      const welcome = new Promise<void>((resolve) =>
        ws.on('message', (data: Buffer) => {
          const f = decodeServerFrame(data);
          frames.push(f);
          if (f.t === FrameType.welcome) resolve();
        }),
      );
      await once(ws, 'open');
      ws.send(encodeValue({ t: 1, v: 2, b: 'boot' }));
      ws.send(encodeValue({ t: 1, v: 1, b: 'boot' }));
      await welcome;
      expect(frames[0]).toMatchObject({ t: FrameType.error, e: 'unsupported_version' });
      ws.terminate();
    });

    it('a hub that offers only another version is closed at the hello timeout with bye unsupported_version and 1002, not a temporary 4002', async () => {
      const { frames, code } = await firstFrame('only-v2', (ws) => ws.send(encodeValue({ t: 1, v: 2, b: 'boot' })));
      expect(frames.map((f) => [f.t, (f as { e?: string }).e])).toEqual([
        [FrameType.error, 'unsupported_version'],
        [FrameType.bye, 'unsupported_version'],
      ]);
      expect(code).toBe(1002);
    });

    it('an upgrade to another protocol version of the path (/hub/v2, /app/v3) is refused 400 unsupported_version naming the one spoken', async () => {
      for (const [path, spoken] of [['/hub/v2', '/hub/v1'], ['/app/v3', '/app/v1']] as const) {
        // a WebSocket upgrade, as a hub or an app would try it
        const ws = new WebSocket(`${server.httpUrl.replace('http', 'ws')}${path}`);
        ws.on('error', () => {}); // the terminate below, before any connection
        const [, res] = (await once(ws, 'unexpected-response')) as [unknown, import('node:http').IncomingMessage];
        expect(res.statusCode, path).toBe(400);
        let text = '';
        for await (const chunk of res) text += chunk;
        ws.terminate();
        const body = JSON.parse(text) as { code: string; temporary: boolean; message: string };
        expect(body).toMatchObject({ code: 'unsupported_version', temporary: false });
        expect(body.message).toContain(spoken);
      }
      // an unknown path elsewhere is still not found
      expect((await fetch(`${server.httpUrl}/hub/v1x`)).status).toBe(404);
    });
  });
});
