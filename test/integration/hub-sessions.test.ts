import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { SignJWT } from 'jose';
import { HubClient } from '../../load/wire/hub-client.js';
import { hubAuthHeaderMap, hubCredentials } from '../../src/auth/hub-signature.js';
import { connect } from 'node:net';
import { encodeFrame, frames } from '../../load/wire/frames.js';
import { signedHeaders } from '../../load/wire/handshake.js';
import { Opcode, clientFrame, closeFrame } from '../../load/wire/ws-framing.js';
import { readUpgrade, upgradeKey, upgradeRequest } from '../../load/wire/ws-upgrade.js';
import { AppSocket } from '../helpers/app-socket.js';
import { eventually } from '../helpers/eventually.js';
import { api, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

/** The value of one Prometheus series in an exposition text; 0 when absent (a counter not yet counted). */
function metric(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

describe('hub sessions, commands and live state (real server process)', () => {
  let server: ServerProcess;
  const secrets: Record<string, string> = {};
  const clients: HubClient[] = [];
  let userToken: string;
  let hubs = 0;

  /** Provisions a hub of its own for the calling test: `hs-<name>-<n>` in `homeId`. */
  async function provision(name: string, homeId: string): Promise<string> {
    const hubId = `hs-${name}-${++hubs}`;
    const res = await api(server.httpUrl, 'POST', '/v1/admin/hubs', server.adminToken, { hubId, homeId });
    expect(res.status).toBe(201);
    secrets[hubId] = res.body.secret;
    return hubId;
  }

  async function online(hubId: string, extra: Partial<ConstructorParameters<typeof HubClient>[0]> = {}): Promise<HubClient> {
    const c = new HubClient({ url: server.wsUrl, hubId, secret: secrets[hubId]!, ...extra });
    clients.push(c);
    await c.connect();
    return c;
  }

  const command = (hubId: string, deviceId: string, body: unknown, token = server.adminToken) =>
    api(server.httpUrl, 'POST', `/v1/hubs/${hubId}/devices/${deviceId}/commands`, token, body);

  const metrics = async () => (await fetch(`${server.adminUrl}/metrics`)).text();

  beforeAll(async () => {
    // device caches idle 1-2 s are packed: every test here also meets sessions whose cache is packed
    // (long enough that a cache read right after a report is still in use on a loaded machine)
    server = await startServerProcess({ TIER_SHADOW_PACK_MS: '1000' });
    userToken = await new SignJWT({ homes: ['home-1'] })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('alice')
      .setExpirationTime('1h')
      .sign(new TextEncoder().encode(server.jwtSecret));
  });

  afterAll(async () => {
    await Promise.allSettled(clients.map((c) => c.terminate()));
    expect(await server.stop()).toBe(0);
  });

  /** A hub on a raw TCP socket, past the upgrade and the welcome: for writes the ws client would split. */
  async function rawHub(hubId: string) {
    const url = new URL(server.wsUrl);
    const socket = connect(Number(url.port), url.hostname);
    const key = upgradeKey();
    let received = Buffer.alloc(0);
    let opened = false;
    const welcomed = new Promise<void>((resolve, reject) => {
      socket.on('error', reject);
      socket.on('data', (chunk: Buffer) => {
        received = Buffer.concat([received, chunk]);
        if (!opened) {
          const answer = readUpgrade(received, key);
          if (answer.kind === 'partial') return;
          if (answer.kind !== 'open') return reject(new Error(`upgrade: ${JSON.stringify(answer)}`));
          opened = true;
          received = Buffer.from(answer.rest);
          socket.write(clientFrame(Opcode.binary, encodeFrame(frames.hello('boot-1'))));
        }
        // the welcome: the first frame the server sends after the upgrade
        if (opened && received.length > 0) resolve();
      });
    });
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.write(upgradeRequest(`${url.hostname}:${url.port}`, '/hub/v1', key, signedHeaders(hubId, secrets[hubId]!)));
    await welcomed;
    return { socket, closed };
  }

  it('handles a report that arrives together with the close frame before the session closes (one TCP write)', async ({ signal }) => {
    const hubId = await provision('report-then-close', 'home-1');
    const { socket, closed } = await rawHub(hubId);
    // one write, so one read on the server: uWS hands over the report and then the close in the same turn
    socket.write(Buffer.concat([clientFrame(Opcode.binary, encodeFrame(frames.report(1, { d1: { level: 42 } }))), closeFrame(1000, 'bye')]));
    await closed;
    // the session took the report before it heard of the close (an unacknowledged report may be
    // dropped by the protocol, but one the server has read is not silently skipped)
    const d1 = await eventually(signal, 'the report in the shadow', async () => {
      const shadow = await api(server.httpUrl, 'GET', `/v1/hubs/${hubId}/shadow`, server.adminToken);
      return (shadow.body.devices as Record<string, { reported: unknown }> | undefined)?.d1;
    });
    expect(d1.reported).toEqual({ level: 42 });
  });

  it('after closing a session for malformed frames, frames read with them are not handled (one TCP write)', async () => {
    const hubId = await provision('malformed-then-report', 'home-1');
    const { socket, closed } = await rawHub(hubId);
    // ten frames that are not msgpack (the tenth closes the session), then a report in the same read
    const bad = Array.from({ length: 10 }, () => clientFrame(Opcode.binary, new Uint8Array([0xc1])));
    socket.write(Buffer.concat([...bad, clientFrame(Opcode.binary, encodeFrame(frames.report(1, { d1: { level: 7 } })))]));
    await closed;
    // a second session's acknowledged report: by then the first session's frames were all handled
    const again = await online(hubId);
    await again.report({ d2: { level: 8 } });
    const shadow = await api(server.httpUrl, 'GET', `/v1/hubs/${hubId}/shadow`, server.adminToken);
    expect(shadow.body.devices.d2?.reported).toEqual({ level: 8 });
    // as uWS hands over nothing of a socket after its end, the report after the tenth bad frame was dropped
    expect(shadow.body.devices.d1).toBeUndefined();
  });

  it('a bye read together with the close frame of the hub throws nowhere (one TCP write)', async () => {
    const hubId = await provision('bye-then-close', 'home-1');
    const series = 'tier_actor_failures_total{message="frame"}';
    const before = metric(await metrics(), series);
    const { socket, closed } = await rawHub(hubId);
    // the bye makes the session close its socket, which uWS has closed already when the frame is handled
    socket.write(Buffer.concat([clientFrame(Opcode.binary, encodeFrame(frames.bye('leaving'))), closeFrame(1000, 'bye')]));
    await closed;
    // a report on a second session of the same hub: the first one's frames were all handled by then
    const again = await online(hubId);
    await again.report({ d1: { on: true } });
    expect(metric(await metrics(), series)).toBe(before);
  });

  it('delivers a hub report to an app subscribed to its home (JSON and msgpack), not to other homes', async () => {
    const mine = await provision('report', 'home-1');
    const theirs = await provision('other-home', 'home-2');
    const json = new AppSocket(`${server.wsUrl}/app/v1?token=${userToken}`);
    const pack = new AppSocket(`${server.wsUrl}/app/v1?token=${userToken}&enc=msgpack`, 'msgpack');
    await Promise.all([json.opened(), pack.opened()]);
    expect(await json.request({ op: 'sub', home: 'home-1' })).toMatchObject({ op: 'ok' });
    expect(await pack.request({ op: 'sub', home: 'home-1' })).toMatchObject({ op: 'ok' });
    expect(await json.request({ op: 'sub', home: 'home-2' })).toMatchObject({ op: 'err', code: 'forbidden', num: 201 });

    const hub = await online(mine);
    const other = await online(theirs);
    await other.report({ t1: { temperature: 30 } });
    await hub.report({ t1: { temperature: 21.5, humidity: 40 } });
    const isState = (m: any) => m.op === 'evt' && m.kind === 'state' && m.hub === mine;
    for (const app of [json, pack]) {
      const evt = await app.next(isState);
      expect(evt).toMatchObject({ home: 'home-1', device: 't1', attrs: { temperature: 21.5, humidity: 40 }, version: 1 });
    }
    // the hub of home-2 reported first: nothing of it may have reached a home-1 subscriber
    expect(json.messages.some((m) => m.hub === theirs)).toBe(false);
    const shadow = await api(server.httpUrl, 'GET', `/v1/hubs/${mine}/shadow`, userToken);
    expect(shadow.body.devices.t1).toMatchObject({ reported: { temperature: 21.5, humidity: 40 }, reportedVersion: 1 });
    json.close();
    pack.close();
  });

  it('packs an idle hub\'s device cache and unpacks it for its next report: versions, values and commands go on', async ({ signal }) => {
    const hubId = await provision('pack', 'home-1');
    const hub = await online(hubId);
    await hub.report({ lamp: { on: true, level: 3, label: 'hall\tlight' }, door: { contact: false } });
    expect(metric(await metrics(), 'tier_hub_device_caches_unpacked')).toBeGreaterThanOrEqual(1);
    await eventually(signal, 'every cache packed', async () => (metric(await metrics(), 'tier_hub_device_caches_unpacked') === 0 ? true : undefined));
    // a command names a device of the packed cache (checked without unpacking it), another none
    expect(await command(hubId, 'lamp', { set: { on: true } })).toMatchObject({ status: 200, body: { ok: true } });
    expect(await command(hubId, 'nope', { set: { on: true } })).toMatchObject({ status: 404, body: { code: 'unknown_device' } });
    expect(metric(await metrics(), 'tier_hub_device_caches_unpacked')).toBe(0);
    await hub.report({ lamp: { level: 4 } });
    await hub.report({ door: { contact: false } }); // unchanged: no new version
    expect(metric(await metrics(), 'tier_hub_device_caches_unpacked')).toBe(1);
    const shadow = await api(server.httpUrl, 'GET', `/v1/hubs/${hubId}/shadow`, server.adminToken);
    expect(shadow.body.devices.lamp).toMatchObject({ reported: { on: true, level: 4, label: 'hall\tlight' }, reportedVersion: 2 });
    expect(shadow.body.devices.door).toMatchObject({ reported: { contact: false }, reportedVersion: 1 });
  });

  it('acknowledges a duplicate sequence number again without applying it twice', async () => {
    const hubId = await provision('dup', 'home-1');
    const hub = await online(hubId);
    const seq = await hub.report({ s1: { on: true } });
    hub.sendFrame({ t: 4, s: seq, r: { s1: { on: false } } });
    const ack = await hub.waitFor((f) => f.t === 6 && f.s === seq && hub.acked === seq);
    expect(ack).toMatchObject({ t: 6, s: seq });
    await hub.report({ s1: { level: 3 } }); // a barrier: processed after the duplicate
    const shadow = await api(server.httpUrl, 'GET', `/v1/hubs/${hubId}/shadow`, server.adminToken);
    expect(shadow.body.devices.s1.reported).toEqual({ on: true, level: 3 });
    expect(shadow.body.devices.s1.reportedVersion).toBe(2);
  });

  it('runs a command round trip over HTTP and over the app socket', async () => {
    const hubId = await provision('cmd', 'home-1');
    const foreign = await provision('cmd-foreign', 'home-2');
    const hub = await online(hubId);
    const res = await command(hubId, 't1', { set: { on: true } }, userToken);
    expect(res).toMatchObject({ status: 200, body: { ok: true, result: { on: true } } });
    const app = new AppSocket(`${server.wsUrl}/app/v1?token=${userToken}`);
    await app.opened();
    const reply = await app.request({ op: 'cmd', hub: hubId, device: 't1', method: 'identify', params: {} });
    expect(reply).toMatchObject({ op: 'err', code: 'command_failed' }); // the client's default handler knows only set
    const ok = await app.request({ op: 'cmd', hub: hubId, device: 't1', set: { brightness: 80 } });
    expect(ok).toMatchObject({ op: 'ok', result: { brightness: 80 } });
    const denied = await app.request({ op: 'cmd', hub: foreign, device: 't1', set: { on: true } });
    expect(denied).toMatchObject({ op: 'err', code: 'forbidden' });
    // the node's largest command timeout (TIER_COMMAND_TIMEOUT_MAX_MS, 60 s by default) holds on the socket as over HTTP
    const tooLong = await app.request({ op: 'cmd', hub: hubId, device: 't1', set: { on: true }, timeoutMs: 60_001 });
    expect(tooLong).toMatchObject({ op: 'err', code: 'invalid_field', field: 'timeoutMs' });
    const httpTooLong = await command(hubId, 't1', { set: { on: true }, timeoutMs: 60_001 }, userToken);
    expect(httpTooLong).toMatchObject({ status: 400, body: { code: 'invalid_field', field: 'timeoutMs' } });
    expect(hub.connected).toBe(true);
    app.close();
  });

  it('answers 504 when the hub does not answer in time, and 409 hub_offline at once when no session holds it', async () => {
    const slowId = await provision('slow', 'home-1');
    const offId = await provision('off', 'home-1');
    const slow = await online(slowId);
    slow.onCommand(() => new Promise(() => {})); // never answers
    const t0 = Date.now();
    const timeout = await command(slowId, 'd1', { set: { on: true }, timeoutMs: 300 });
    expect(timeout).toMatchObject({ status: 504, body: { code: 'command_timeout', temporary: true } });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(300);

    // "at once": the command's own timeout (the largest allowed, 60 s) is beyond the test's 30 s
    const offline = await command(offId, 'd1', { set: { on: true }, timeoutMs: 60_000 });
    expect(offline).toMatchObject({ status: 409, body: { code: 'hub_offline', num: 400, temporary: true } });
    const status = await api(server.httpUrl, 'GET', `/v1/hubs/${offId}`, server.adminToken);
    expect(status.body).toMatchObject({ online: false, node: null });
  });

  it('lets a second connection take the session over: the old socket closes with 4000, commands reach the new one', async () => {
    const hubId = await provision('take', 'home-1');
    const first = await online(hubId);
    const firstClosed = first.closed;
    const byes: string[] = [];
    first.on('bye', (b) => byes.push(b.e ?? ''));
    const second = await online(hubId);
    expect(await firstClosed).toMatchObject({ code: 4000, reason: 'session_taken_over' });
    expect(byes).toEqual(['session_taken_over']);
    let answeredBy = '';
    second.onCommand((cmd) => {
      answeredBy = 'second';
      return { ok: true, r: cmd.p };
    });
    const res = await command(hubId, 'd1', { set: { on: true } });
    expect(res.status).toBe(200);
    expect(answeredBy).toBe('second');
    const status = await api(server.httpUrl, 'GET', `/v1/hubs/${hubId}`, server.adminToken);
    expect(status.body).toMatchObject({ online: true, epoch: 2 });
  });

  it('answers malformed frames with error frames, closes after too many, and keeps serving others', async () => {
    const badId = await provision('bad', 'home-1');
    const goodId = await provision('good', 'home-1');
    const good = await online(goodId);
    const bad = await online(badId);
    const errors: string[] = [];
    const fiveErrors = new Promise<void>((resolve) =>
      bad.on('errorFrame', (e) => {
        if (errors.push(e.e) === 5) resolve();
      }),
    );
    bad.sendRaw(new Uint8Array([0xc1]));
    bad.sendRaw('{"t": 4}');
    bad.sendFrame({ t: 99 });
    bad.sendFrame({ t: 4, s: 'one', r: {} });
    bad.sendFrame({ t: 4, s: 1, r: { d1: { x: { nested: true } } } });
    await fiveErrors;
    expect(errors).toEqual(['malformed_frame', 'malformed_frame', 'unknown_frame_type', 'invalid_field', 'invalid_field']);
    expect(bad.connected).toBe(true);
    for (let i = 0; i < 6; i++) bad.sendRaw(new Uint8Array([0x92, 0x01]));
    expect(await bad.closed).toMatchObject({ code: 4003, reason: 'malformed_frame' });

    const big = await online(badId);
    const tooLarge = big.waitFor((f) => f.t === 10 && f.e === 'frame_too_large');
    big.sendRaw(new Uint8Array(20_000));
    await tooLarge;
    expect(await big.closed).toMatchObject({ code: 1009, reason: 'frame_too_large' });

    const res = await command(goodId, 't1', { set: { on: false } });
    expect(res.status).toBe(200);
    expect(good.connected).toBe(true);
  });

  it('rates results for no pending command as any frame (rate_limited, then 4004) and never refuses the answer to a real command', async () => {
    const hubId = await provision('stray', 'home-1');
    const hub = await online(hubId);
    let refused = 0;
    hub.on('errorFrame', (e) => void (e.e === 'rate_limited' && refused++));
    // results for a command id never sent, as a flooding hub sends them (a large `r`, within §1's
    // string limit: refused ones are not decoded, the others are and pass validation)
    const stray = (i: number) => ({ t: 8, id: 900_000 + i, ok: true, r: { k: Array.from({ length: 4 }, () => 'z'.repeat(1_000)) } });
    const firstRefusal = hub.waitFor((f) => f.t === 10 && f.e === 'rate_limited', 20_000);
    // the burst of 200 passes (each spends a token), the rest are refused
    for (let i = 0; i < 260; i++) hub.sendFrame(stray(i));
    expect(await firstRefusal).toMatchObject({ e: 'rate_limited', ref: expect.any(Number) });
    // with the budget spent, the answer to a real command still passes
    const res = await command(hubId, 't1', { set: { on: true } });
    expect(res).toMatchObject({ status: 200, body: { ok: true, result: { on: true } } });
    expect(hub.connected).toBe(true);
    // persistent excess: more refusals within 10 s than the burst close the session, as for any frame
    for (let i = 0; i < 300; i++) hub.sendFrame(stray(i));
    expect(await hub.closed).toMatchObject({ code: 4004, reason: 'rate_limited' });
    expect(refused).toBe(200); // one error frame per refusal; the 201st closes instead
  });

  it('sends desired-minus-reported on connect and as a set command while online', async () => {
    const hubId = await provision('desired', 'home-1');
    const put = await api(server.httpUrl, 'PUT', `/v1/hubs/${hubId}/devices/lamp/desired`, userToken, { desired: { on: true, level: 40 } });
    expect(put).toMatchObject({ status: 200, body: { device: { desired: { on: true, level: 40 }, desiredVersion: 1 } } });
    const hub = new HubClient({ url: server.wsUrl, hubId, secret: secrets[hubId]! });
    clients.push(hub);
    const welcome = await hub.connect();
    expect(welcome.dl).toEqual({ lamp: { on: true, level: 40 } });
    await hub.report({ lamp: { on: true, level: 40 } });
    const cmd = hub.waitFor((f) => f.t === 7);
    await api(server.httpUrl, 'PUT', `/v1/hubs/${hubId}/devices/lamp/desired`, userToken, { desired: { level: 70 } });
    expect(await cmd).toMatchObject({ t: 7, d: 'lamp', m: 'set', p: { level: 70 } });
  });

  it('counts bad frames, command timeouts and their late answers, and stays alive and healthy', async ({ signal }) => {
    const hubId = await provision('counted', 'home-1');
    const hub = await online(hubId);
    const badFrames = 'tier_hub_bad_frames_total{code="malformed_frame"}';
    const timeouts = 'tier_commands_total{outcome="timeout"}';
    const late = 'tier_hub_stray_results_total{outcome="ignored"}';
    const before = await metrics();
    hub.sendRaw(new Uint8Array([0xc1]));
    await hub.waitFor((f) => f.t === 10 && f.e === 'malformed_frame');
    let commandId = -1;
    hub.onCommand((cmd) => ((commandId = cmd.id), new Promise(() => {}))); // answers only after the timeout
    expect(await command(hubId, 'd1', { set: { on: true }, timeoutMs: 100 })).toMatchObject({ status: 504 });
    hub.sendFrame({ t: 8, id: commandId, ok: true, r: { on: true } });
    const after = await eventually(signal, 'the late answer counted', async () => {
      const text = await metrics();
      return metric(text, late) > metric(before, late) ? text : undefined;
    });
    expect(metric(after, late)).toBe(metric(before, late) + 1);
    expect(metric(after, badFrames)).toBe(metric(before, badFrames) + 1);
    expect(metric(after, timeouts)).toBe(metric(before, timeouts) + 1);
    expect((await fetch(`${server.adminUrl}/healthz`)).status).toBe(200);
    expect(server.child.exitCode).toBeNull();
    expect(hub.connected).toBe(true);
  });
});

describe('session deadlines (real server process with short timeouts)', () => {
  let server: ServerProcess;
  let secret: string;

  beforeAll(async () => {
    server = await startServerProcess({ TIER_HEARTBEAT_MS: '1000', TIER_IDLE_MS: '2000', TIER_HELLO_TIMEOUT_MS: '500' });
    secret = (await api(server.httpUrl, 'POST', '/v1/admin/hubs', server.adminToken, { hubId: 'dl-1', homeId: 'h' })).body.secret;
  });
  afterAll(async () => {
    await server.stop();
  });

  it('closes a silent hub with 4001 and keeps one that sends heartbeats', async () => {
    const silent = new HubClient({ url: server.wsUrl, hubId: 'dl-1', secret, heartbeat: false });
    await silent.connect();
    const closed = await silent.closed;
    expect(closed).toMatchObject({ code: 4001, reason: 'heartbeat_timeout' });

    const alive = new HubClient({ url: server.wsUrl, hubId: 'dl-1', secret });
    const welcome = await alive.connect();
    expect(welcome).toMatchObject({ hb: 1000, idle: 2000 });
    await alive.waitFor((f) => f.t === 3, 20_000); // the server answered a heartbeat (ceilings below the test timeout, to name what is missing)
    await alive.waitFor((f) => f.t === 3 && (f.ts ?? 0) > welcome.ts + 2_500, 20_000); // still there after the idle time
    expect(alive.connected).toBe(true);
    await alive.close();
  });

  it('closes a socket that never sends hello with 4002', async () => {
    const mute = new WebSocket(`${server.wsUrl}/hub/v1`, { headers: hubAuthHeaderMap(hubCredentials('dl-1', secret)) });
    const code = await new Promise<number>((resolve) => mute.on('close', (c) => resolve(c)));
    expect(code).toBe(4002);
  });
});
