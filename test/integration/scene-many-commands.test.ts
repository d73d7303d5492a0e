import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FrameType } from '../../proto/frames.js';
import { HubClient } from '../../load/wire/hub-client.js';
import { api, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

/**
 * A scene of up to 50 commands to one hub, through the node's own command path: the hub's session
 * refuses `busy` past 32 commands in flight (TIER_HUB_MAX_COMMANDS), so a scene sent at once always
 * had some refused (review "commands", F1). Embedded node on ports 34001/34002.
 */
describe('a scene of many commands to one hub', { timeout: 60_000 }, () => {
  let server: ServerProcess;
  let hub: HubClient;
  const hubId = 'scene-hub';
  const homeId = 'home-scenes';
  let received = 0;
  let inHub = 0;
  let mostInHub = 0;

  beforeAll(async () => {
    server = await startServerProcess({ PORT: '34001', ADMIN_PORT: '34002' });
    const res = await api(server.httpUrl, 'POST', '/v1/admin/hubs', server.adminToken, { hubId, homeId });
    expect(res.status).toBe(201);
    hub = new HubClient({ url: server.wsUrl, hubId, secret: res.body.secret });
    hub.on('frame', (f) => {
      if (f.t === FrameType.command) received++;
    });
    await hub.connect();
    await hub.devices({ f: true, j: Array.from({ length: 50 }, (_, i) => ({ d: `light-${i}`, k: 'switch' })) });
  });

  afterAll(async () => {
    await hub?.terminate().catch(() => {});
    expect(await server?.stop()).toBe(0);
  });

  const allOff = (n: number) => Array.from({ length: n }, (_, i) => ({ hub: hubId, device: `light-${i}`, set: { on: false } }));

  async function createScene(n: number): Promise<string> {
    const created = await api(server.httpUrl, 'POST', `/v1/homes/${homeId}/scenes`, server.adminToken, { name: `All off ${n}`, commands: allOff(n) });
    expect(created.status).toBe(201);
    return created.body.scene.id as string;
  }

  it('50 commands (the most a scene holds) to a hub answering at once: every one ok, the hub got all 50', async () => {
    const sceneId = await createScene(50);
    const before = received;
    const run = await api(server.httpUrl, 'POST', `/v1/homes/${homeId}/scenes/${sceneId}/run`, server.adminToken);
    expect(run.status).toBe(200);
    expect(run.body.results.filter((r: { ok: boolean }) => !r.ok)).toEqual([]);
    expect(run.body.allOk).toBe(true);
    expect(received - before).toBe(50);
  });

  it('a hub answering each command after 20 ms: all 40 ok, at most 8 of them in the hub at once, and an app\'s command meanwhile is answered, not refused busy', async () => {
    hub.onCommand(async (cmd) => {
      mostInHub = Math.max(mostInHub, ++inHub);
      await new Promise((resolve) => setTimeout(resolve, 20));
      inHub--;
      return hub.defaultHandler(cmd);
    });
    try {
      const sceneId = await createScene(40);
      const running = api(server.httpUrl, 'POST', `/v1/homes/${homeId}/scenes/${sceneId}/run`, server.adminToken);
      await expect.poll(() => inHub, { interval: 2 }).toBeGreaterThan(0);
      const app = await api(server.httpUrl, 'POST', `/v1/hubs/${hubId}/devices/light-49/commands`, server.adminToken, { set: { on: true } });
      const run = await running;
      expect(run.body.results.filter((r: { ok: boolean }) => !r.ok)).toEqual([]);
      expect(app.status).toBe(200);
      expect(mostInHub).toBeLessThanOrEqual(8 + 1);
    } finally {
      hub.onCommand((cmd) => hub.defaultHandler(cmd));
    }
  });
});
