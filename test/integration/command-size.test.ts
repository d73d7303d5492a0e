import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT } from 'jose';
import { FrameType, type ServerToHubFrame } from '../../proto/frames.js';
import { HubClient } from '../../load/wire/hub-client.js';
import { AppSocket } from '../helpers/app-socket.js';
import { api, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

/**
 * A command whose frame would pass the `max` its hub was welcomed with is refused on the node
 * holding the hub, before anything is sent: a real node (embedded default, 16 KiB frames) and the
 * load tool's hub client, which refuses any frame over its welcome's max as the protocol lets it.
 */
describe('commands over the hub frame limit (real server process)', () => {
  let server: ServerProcess;
  let user: string;
  let hub: HubClient;
  let app: AppSocket;
  const hubId = 'cs-hub';
  const homeId = 'home-cs';
  /** every frame the hub decoded, and every one it refused (over its max, or unreadable) */
  const frames: ServerToHubFrame[] = [];
  const refused: string[] = [];
  /** the welcome's max */
  let max = 0;

  /** 12 KB of JSON (under the 16 KiB app message limit) that msgpack makes 27 KB: floats take 9 bytes each */
  const floats = { lines: Array.from({ length: 3_000 }, () => 0.1) };
  /** 20 attributes of 1,000 characters: a 20 KB body (under the 64 KiB HTTP limit) and a 20 KB frame */
  const wide = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`attribute-${i}`, 'x'.repeat(1_000)]));

  const command = (body: unknown) => api(server.httpUrl, 'POST', `/v1/hubs/${hubId}/devices/lamp/commands`, user, body);
  const commandsSeen = () => frames.filter((f) => f.t === FrameType.command);

  beforeAll(async () => {
    server = await startServerProcess();
    user = await new SignJWT({ homes: [homeId] }).setProtectedHeader({ alg: 'HS256' }).setSubject('cs-user').setExpirationTime('1h').sign(new TextEncoder().encode(server.jwtSecret));
    const res = await api(server.httpUrl, 'POST', '/v1/admin/hubs', server.adminToken, { hubId, homeId });
    expect(res.status).toBe(201);
    hub = new HubClient({ url: server.wsUrl, hubId, secret: res.body.secret });
    hub.on('frame', (f) => frames.push(f));
    hub.on('invalidFrame', (err) => refused.push(err.message));
    max = (await hub.connect()).max;
    app = new AppSocket(`${server.wsUrl}/app/v1?token=${user}`);
    await app.opened();
  });

  afterAll(async () => {
    app?.close();
    await hub?.terminate().catch(() => {});
    await server?.stop();
  });

  it('HTTP: 413 frame_too_large for a set or a method whose frame would pass max, nothing sent, the hub still connected', async () => {
    expect(max).toBe(16 * 1024);
    const set = await command({ set: wide, timeoutMs: 3_000 });
    expect(set).toMatchObject({ status: 413, body: { ok: false, code: 'frame_too_large', temporary: false } });
    expect(set.body.message).toContain(`over its max of ${max}`);
    expect(await command({ method: 'show', params: floats, timeoutMs: 3_000 })).toMatchObject({ status: 413, body: { code: 'frame_too_large' } });
    // a command within max goes through, on the same session
    expect(await command({ set: { on: true } })).toMatchObject({ status: 200, body: { ok: true, result: { on: true } } });
    expect(commandsSeen()).toMatchObject([{ d: 'lamp', m: 'set', p: { on: true } }]);
    expect(refused).toEqual([]);
    expect(hub.connected).toBe(true);
  });

  it('app socket: err frame_too_large with the request id for a message within its own limit whose frame would not be; the socket and the hub stay', async () => {
    const before = commandsSeen().length;
    const message = JSON.stringify({ op: 'cmd', id: 99, hub: hubId, device: 'lamp', method: 'show', params: floats, timeoutMs: 3_000 });
    expect(message.length).toBeLessThan(max);
    const answer = await app.request({ op: 'cmd', hub: hubId, device: 'lamp', method: 'show', params: floats, timeoutMs: 3_000 });
    expect(answer).toMatchObject({ op: 'err', code: 'frame_too_large', temporary: false });
    expect(await app.request({ op: 'cmd', hub: hubId, device: 'lamp', set: { level: 7 } })).toMatchObject({ op: 'ok', result: { level: 7 } });
    expect(commandsSeen().slice(before)).toMatchObject([{ d: 'lamp', m: 'set', p: { level: 7 } }]);
    expect(refused).toEqual([]);
    expect(hub.connected).toBe(true);
  });

  it("a scene's command is held to the same limit: that command fails frame_too_large, the others run", async () => {
    const before = commandsSeen().length;
    const created = await api(server.httpUrl, 'POST', `/v1/homes/${homeId}/scenes`, server.adminToken, {
      name: 'too much',
      commands: [
        { hub: hubId, device: 'lamp', set: wide, timeoutMs: 3_000 },
        { hub: hubId, device: 'lamp', set: { on: false } },
      ],
    });
    expect(created.status).toBe(201);
    const run = await api(server.httpUrl, 'POST', `/v1/homes/${homeId}/scenes/${created.body.scene.id}/run`, server.adminToken);
    expect(run).toMatchObject({ status: 200, body: { allOk: false, results: [{ ok: false, code: 'frame_too_large' }, { ok: true, result: { on: false } }] } });
    expect(commandsSeen().slice(before)).toMatchObject([{ p: { on: false } }]);
    expect(refused).toEqual([]);
    expect(hub.connected).toBe(true);
  });

  it("a command that would break PROTOCOL.md §1's limits (a string over 1024, a name over 64) is refused 400 invalid_field naming the field, on every edge, and never sent", async () => {
    const before = commandsSeen().length;
    const long = await command({ method: 'bulk', params: { data: 'x'.repeat(5_000) } });
    expect(long).toMatchObject({ status: 400, body: { code: 'invalid_field', field: 'params.data' } });
    const key = 'k'.repeat(100);
    expect(await command({ method: 'bulk', params: { list: [{ [key]: 1 }] } })).toMatchObject({ status: 400, body: { code: 'invalid_field', field: `params.list[0].${key}` } });
    const socket = await app.request({ op: 'cmd', hub: hubId, device: 'lamp', method: 'bulk', params: { data: 'x'.repeat(1_025) } });
    expect(socket).toMatchObject({ op: 'err', code: 'invalid_field', field: 'params.data' });
    const scene = await api(server.httpUrl, 'POST', `/v1/homes/${homeId}/scenes`, server.adminToken, { name: 'long', commands: [{ hub: hubId, device: 'lamp', method: 'bulk', params: { data: 'x'.repeat(1_025) } }] });
    expect(scene).toMatchObject({ status: 400, body: { code: 'invalid_field', field: 'commands[0].params.data' } });
    const rule = await api(server.httpUrl, 'POST', `/v1/homes/${homeId}/rules`, server.adminToken, {
      name: 'long',
      triggers: [{ type: 'cron', cron: '0 7 * * *' }],
      actions: [{ type: 'command', hub: hubId, device: 'lamp', method: 'bulk', params: { [key]: 1 } }],
    });
    expect(rule).toMatchObject({ status: 400, body: { code: 'invalid_field', field: `actions[0].params.${key}` } });
    // at the limits it goes (the test hub answers any method but set command_failed)
    expect(await command({ method: 'bulk', params: { data: 'x'.repeat(1_024), ['k'.repeat(64)]: 1 }, timeoutMs: 2_000 })).toMatchObject({ status: 502, body: { code: 'command_failed' } });
    expect(commandsSeen().slice(before)).toMatchObject([{ m: 'bulk', p: { data: 'x'.repeat(1_024) } }]);
    expect(hub.connected).toBe(true);
  });

  it('a command with an empty parameter name is refused 400 invalid_field naming the field, on every edge, and never sent', async () => {
    const before = commandsSeen().length;
    expect(await command({ method: 'bulk', params: { '': 1 } })).toMatchObject({ status: 400, body: { code: 'invalid_field', field: 'params.' } });
    expect(await command({ method: 'bulk', params: { list: [{ '': 1 }] } })).toMatchObject({ status: 400, body: { code: 'invalid_field', field: 'params.list[0].' } });
    expect(await app.request({ op: 'cmd', hub: hubId, device: 'lamp', method: 'bulk', params: { a: { '': 1 } } })).toMatchObject({ op: 'err', code: 'invalid_field', field: 'params.a.' });
    const scene = await api(server.httpUrl, 'POST', `/v1/homes/${homeId}/scenes`, server.adminToken, { name: 'empty', commands: [{ hub: hubId, device: 'lamp', method: 'bulk', params: { '': 1 } }] });
    expect(scene).toMatchObject({ status: 400, body: { code: 'invalid_field', field: 'commands[0].params.' } });
    const rule = await api(server.httpUrl, 'POST', `/v1/homes/${homeId}/rules`, server.adminToken, {
      name: 'empty',
      triggers: [{ type: 'cron', cron: '0 7 * * *' }],
      actions: [{ type: 'command', hub: hubId, device: 'lamp', method: 'bulk', params: { a: [{ '': 1 }] } }],
    });
    expect(rule).toMatchObject({ status: 400, body: { code: 'invalid_field', field: 'actions[0].params.a[0].' } });
    expect(commandsSeen().slice(before)).toEqual([]);
    expect(hub.connected).toBe(true);
  });

  it("a hub's result past §1's limits (a string over 1024, a name over 64 or empty) never reaches the caller: 502 command_failed, and the hub gets error invalid_field naming the command and the field", async () => {
    const answers: Record<string, unknown> = {
      long: { data: 'x'.repeat(5_000) },
      named: { list: [{ ['k'.repeat(100)]: 1 }] },
      empty: { '': true },
      within: { data: 'x'.repeat(1_024), ['k'.repeat(64)]: [''] },
    };
    hub.onCommand((cmd) => (cmd.m in answers ? { ok: true, r: answers[cmd.m] } : hub.defaultHandler(cmd)));
    /** the error frame the hub gets for its result naming `field`, and the id of the command it answered */
    const refusal = async (field: string) => {
      const error = await hub.waitFor((f) => f.t === FrameType.error && f.f === field);
      return { error, command: commandsSeen().at(-1)!.id };
    };
    try {
      const longError = refusal('r.data');
      const long = await command({ method: 'long', timeoutMs: 3_000 });
      expect(long).toMatchObject({ status: 502, body: { ok: false, code: 'command_failed', temporary: false } });
      expect(long.body.message).toContain('r.data');
      expect(JSON.stringify(long.body)).not.toContain('x'.repeat(1_025));
      const { error, command: id } = await longError;
      expect(error).toMatchObject({ t: FrameType.error, e: 'invalid_field', tmp: false, ref: id, f: 'r.data' });
      const namedError = refusal(`r.list[0].${'k'.repeat(100)}`);
      const named = await app.request({ op: 'cmd', hub: hubId, device: 'lamp', method: 'named', timeoutMs: 3_000 });
      expect(named).toMatchObject({ op: 'err', code: 'command_failed' });
      expect((await namedError).error).toMatchObject({ e: 'invalid_field' });
      const emptyError = refusal('r.');
      expect(await command({ method: 'empty', timeoutMs: 3_000 })).toMatchObject({ status: 502, body: { code: 'command_failed' } });
      expect((await emptyError).error).toMatchObject({ e: 'invalid_field' });
      // at the limits it passes whole
      expect(await command({ method: 'within', timeoutMs: 3_000 })).toMatchObject({ status: 200, body: { ok: true, result: answers.within } });
    } finally {
      hub.onCommand((cmd) => hub.defaultHandler(cmd));
    }
    expect(refused).toEqual([]);
    expect(hub.connected).toBe(true);
  });
});
