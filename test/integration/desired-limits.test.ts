import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT } from 'jose';
import { FrameType, type Attrs, type ServerToHubFrame } from '../../proto/frames.js';
import { HubClient } from '../../load/wire/hub-client.js';
import { encode } from '../../src/protocol/codec.js';
import { api, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

/**
 * Desired state a home's user sets can neither lock its hub out nor grow past the hub's limits: a
 * real node (embedded default, default limits) and the load tool's hub client, which checks every
 * frame it gets with the server's own validator.
 */
describe('desired state within the limits, and in frames a hub accepts (real server process)', () => {
  let server: ServerProcess;
  let user: string;
  const secrets: Record<string, string> = {};
  const clients: HubClient[] = [];
  let hubs = 0;

  async function provision(name: string): Promise<string> {
    const hubId = `dl-${name}-${++hubs}`;
    const res = await api(server.httpUrl, 'POST', '/v1/admin/hubs', server.adminToken, { hubId, homeId: 'home-dl' });
    expect(res.status).toBe(201);
    secrets[hubId] = res.body.secret;
    return hubId;
  }

  const desired = (hubId: string, deviceId: string, attrs: Attrs) => api(server.httpUrl, 'PUT', `/v1/hubs/${hubId}/devices/${deviceId}/desired`, user, { desired: attrs });

  /**
   * Connects the hub and collects the desired state it is sent, welcome and `set` commands, until
   * it has `expected`; every frame must pass the hub's validation and stay within the welcome's max.
   */
  async function received(hubId: string, expected: Record<string, Attrs>): Promise<{ got: Record<string, Attrs>; frames: ServerToHubFrame[] }> {
    const hub = new HubClient({ url: server.wsUrl, hubId, secret: secrets[hubId]!, heartbeat: false });
    clients.push(hub);
    const invalid: string[] = [];
    const frames: ServerToHubFrame[] = [];
    const got: Record<string, Attrs> = {};
    const devices = Object.keys(expected).length;
    let done!: () => void;
    const all = new Promise<void>((resolve) => (done = resolve));
    const take = (d: string, attrs: Attrs) => {
      got[d] = { ...got[d], ...attrs };
      if (Object.keys(got).length === devices && Object.keys(expected).every((id) => Object.keys(expected[id]!).every((k) => got[id]?.[k] !== undefined))) done();
    };
    hub.on('invalidFrame', (err: Error) => invalid.push(err.message));
    hub.on('frame', (f: ServerToHubFrame) => {
      frames.push(f);
      if (f.t === FrameType.welcome) for (const d in f.dl) take(d, f.dl[d]!);
      if (f.t === FrameType.command && f.m === 'set') take(f.d, f.p as Attrs);
    });
    const welcome = await hub.connect().catch((err: unknown) => {
      throw new Error(`no welcome (${String(err)}); frames refused: ${invalid.join('; ')}`);
    });
    await all;
    expect(invalid).toEqual([]);
    for (const f of frames) expect(encode(f).length).toBeLessThanOrEqual(welcome.max);
    expect(Object.keys(welcome.dl).length).toBeLessThanOrEqual(256);
    return { got, frames };
  }

  beforeAll(async () => {
    server = await startServerProcess();
    user = await new SignJWT({ homes: ['home-dl'] }).setProtectedHeader({ alg: 'HS256' }).setSubject('dl-user').setExpirationTime('1h').sign(new TextEncoder().encode(server.jwtSecret));
  });

  afterAll(async () => {
    for (const c of clients) await c.terminate().catch(() => {});
    await server?.stop();
  });

  it('a hub with desired state for 300 devices still connects and gets all of them, across frames', async () => {
    const hubId = await provision('many');
    const expected: Record<string, Attrs> = {};
    for (let i = 0; i < 300; i++) {
      expected[`lamp-${i}`] = { on: true, level: i };
      expect((await desired(hubId, `lamp-${i}`, expected[`lamp-${i}`]!)).status).toBe(200);
    }
    const { got, frames } = await received(hubId, expected);
    expect(got).toEqual(expected);
    expect(frames.filter((f) => f.t === FrameType.command).length).toBeGreaterThanOrEqual(300 - 256);
  });

  it("a hub's desired state stops at its byte budget (422 naming the field), and what is stored reaches the hub within max bytes a frame", async () => {
    const hubId = await provision('bytes');
    const value = 'x'.repeat(1_000);
    const statuses: number[] = [];
    let refusal: unknown;
    const expected: Record<string, Attrs> = {};
    for (let d = 0; d < 6; d++) {
      for (let k = 0; k < 60; k += 10) {
        const attrs = Object.fromEntries(Array.from({ length: 10 }, (_, j) => [`key-${k + j}`, value]));
        const res = await desired(hubId, `dev-${d}`, attrs);
        statuses.push(res.status);
        if (res.status === 200) expected[`dev-${d}`] = { ...expected[`dev-${d}`], ...attrs };
        else refusal ??= res.body;
      }
    }
    expect(new Set(statuses)).toEqual(new Set([200, 422]));
    expect(refusal).toMatchObject({ code: 'limit_exceeded', field: 'desired' });
    const shadow = (await api(server.httpUrl, 'GET', `/v1/hubs/${hubId}/shadow`, user)).body.devices as Record<string, { desired: Attrs }>;
    let bytes = 0;
    for (const id in shadow) for (const key in shadow[id]!.desired) bytes += key.length + String(shadow[id]!.desired[key]).length;
    expect(bytes).toBeLessThanOrEqual(128 * 1024);
    expect(bytes).toBeGreaterThan(100 * 1024);
    const { got } = await received(hubId, expected);
    expect(got).toEqual(expected);
  });

  it('concurrent requests cannot pass the device limit or the attribute limit together', async () => {
    const hubId = await provision('race');
    const results = await Promise.all(Array.from({ length: 700 }, (_, i) => desired(hubId, `d${i}`, { on: true })));
    const ok = results.filter((r) => r.status === 200).length;
    expect(ok).toBe(512);
    expect(results.filter((r) => r.status !== 200).every((r) => r.status === 422 && r.body.field === 'deviceId')).toBe(true);
    let shadow = (await api(server.httpUrl, 'GET', `/v1/hubs/${hubId}/shadow`, user)).body.devices as Record<string, { desired: Attrs }>;
    expect(Object.keys(shadow)).toHaveLength(512);

    const keys = await Promise.all(Array.from({ length: 200 }, (_, i) => desired(hubId, 'd0', { [`k${i}`]: i })));
    // d0 already has `on`: 63 new keys fit
    expect(keys.filter((r) => r.status === 200)).toHaveLength(63);
    shadow = (await api(server.httpUrl, 'GET', `/v1/hubs/${hubId}/shadow`, user)).body.devices as Record<string, { desired: Attrs }>;
    expect(Object.keys(shadow.d0!.desired)).toHaveLength(64);
  });

  it("a rule's desired action is held to the same limits: refused (an error of the rule), nothing stored", async ({ signal }) => {
    const full = await provision('rule-full');
    await Promise.all(Array.from({ length: 512 }, (_, i) => desired(full, `d${i}`, { on: true })));
    const sensors = await provision('rule-sensors');
    const hub = new HubClient({ url: server.wsUrl, hubId: sensors, secret: secrets[sensors]!, heartbeat: false });
    clients.push(hub);
    await hub.connect();
    await hub.devices({ f: true, j: [{ d: 'button', k: 'sensor.button' }] });
    const created = await api(server.httpUrl, 'POST', '/v1/homes/home-dl/rules', server.adminToken, {
      name: 'one device too many',
      triggers: [{ type: 'state', hub: sensors, device: 'button', attr: 'pressed', to: true }],
      actions: [{ type: 'desired', hub: full, device: 'one-too-many', desired: { on: true } }],
    });
    expect(created.status).toBe(201);
    const ruleId = created.body.rule.id as string;
    // a rule worker that has loaded (the node warms its pool at start; this waits for it if need be)
    while ((await api(server.httpUrl, 'POST', `/v1/homes/home-dl/rules/${ruleId}/test`, server.adminToken)).status !== 200) {
      if (signal.aborted) throw new Error('no rule worker');
      await new Promise((r) => setTimeout(r, 200));
    }
    await hub.report({ button: { pressed: true } });
    await expect
      .poll(async () => (await api(server.httpUrl, 'GET', `/v1/homes/home-dl/rules/${ruleId}`, server.adminToken)).body.rule.status.stats, { timeout: 25_000 })
      .toMatchObject({ matched: 1, errors: 1 });
    const shadow = (await api(server.httpUrl, 'GET', `/v1/hubs/${full}/shadow`, user)).body.devices as Record<string, unknown>;
    expect(Object.keys(shadow)).toHaveLength(512);
    expect(shadow['one-too-many']).toBeUndefined();
  });
});
