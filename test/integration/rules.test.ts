import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandFrame, ServerToHubFrame } from '../../proto/frames.js';
import { HubClient } from '../../load/wire/hub-client.js';
import { api, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

const isCommand = (f: ServerToHubFrame): f is CommandFrame => f.t === 7;

/**
 * A rule through the node's own wiring (no stubs): created over HTTP, triggered by a real hub's
 * report, its condition read from the shadow the hubs reported, its command sent over the bus to
 * the session of another hub, which gets the command frame.
 */
describe('automation rules on a real server process', () => {
  let server: ServerProcess;
  const clients: HubClient[] = [];

  beforeAll(async () => {
    server = await startServerProcess();
  });

  afterAll(async () => {
    await Promise.allSettled(clients.map((c) => c.terminate()));
    expect(await server.stop()).toBe(0);
  });

  const secrets: Record<string, string> = {};

  async function hubOnline(hubId: string, homeId: string, devices: Array<{ d: string; k: string }>): Promise<HubClient> {
    const res = await api(server.httpUrl, 'POST', '/v1/admin/hubs', server.adminToken, { hubId, homeId });
    expect(res.status).toBe(201);
    secrets[hubId] = res.body.secret;
    const c = new HubClient({ url: server.wsUrl, hubId, secret: res.body.secret });
    clients.push(c);
    await c.connect();
    await c.devices({ f: true, j: devices });
    return c;
  }

  it('a report of one hub fires a rule whose command reaches another hub of the home as a command frame', async ({ signal }) => {
    const home = 'home-rules';
    const sensors = await hubOnline('rules-sensors', home, [
      { d: 'hall-motion', k: 'sensor.motion' },
      { d: 'hall-lux', k: 'sensor.light' },
    ]);
    const lights = await hubOnline('rules-lights', home, [{ d: 'hall-light', k: 'light' }]);
    await sensors.report({ 'hall-motion': { motion: false }, 'hall-lux': { lux: 12 } });

    const created = await api(server.httpUrl, 'POST', `/v1/homes/${home}/rules`, server.adminToken, {
      name: 'Hall light when dark',
      triggers: [{ type: 'state', hub: 'rules-sensors', device: 'hall-motion', attr: 'motion', to: true }],
      devices: { lux: { hub: 'rules-sensors', device: 'hall-lux' } },
      conditions: ['dev.lux.lux < 30'],
      actions: [{ type: 'command', hub: 'rules-lights', device: 'hall-light', set: { on: true } }],
    });
    expect(created.status).toBe(201);
    const ruleId = created.body.rule.id as string;

    // what the next step needs: a rule worker that has loaded (a dry run is evaluated by the pool
    // too, and does nothing); the node warms its pool at start, this waits for it if need be
    for (;;) {
      const test = await api(server.httpUrl, 'POST', `/v1/homes/${home}/rules/${ruleId}/test`, server.adminToken);
      if (test.status === 200) {
        // the dry run sees the reported lux through the shadow store: the condition would pass
        expect(test.body.test).toMatchObject({ passed: true, state: { 'rules-sensors/hall-lux': { lux: 12 } } });
        break;
      }
      if (signal.aborted) throw new Error(`dry run still failing: ${JSON.stringify(test.body)}`);
      await new Promise((r) => setTimeout(r, 200));
    }

    const command = lights.waitFor(isCommand, 25_000);
    await sensors.report({ 'hall-motion': { motion: true } });
    expect(await command).toMatchObject({ t: 7, d: 'hall-light', m: 'set', p: { on: true } });
    // the hub's answer (the default handler applies `set`) goes back to the rule's action
    expect(lights.state.get('hall-light')).toEqual({ on: true });
    await expect
      .poll(async () => (await api(server.httpUrl, 'GET', `/v1/homes/${home}/rules/${ruleId}`, server.adminToken)).body.rule.status.stats, { timeout: 25_000 })
      .toMatchObject({ matched: 1, actionsRun: 1, errors: 0 });
  });

  it('a rule\'s command to a hub that is away waits for it to connect (a node restarting, a takeover) instead of failing hub_offline', async () => {
    const home = 'home-away';
    const door = await hubOnline('away-door', home, [{ d: 'front-door', k: 'sensor.contact' }]);
    const lights = await hubOnline('away-lights', home, [{ d: 'porch', k: 'light' }]);
    await door.report({ 'front-door': { open: false } });
    const created = await api(server.httpUrl, 'POST', `/v1/homes/${home}/rules`, server.adminToken, {
      name: 'Porch light when the door opens',
      triggers: [{ type: 'state', hub: 'away-door', device: 'front-door', attr: 'open', to: true }],
      actions: [{ type: 'command', hub: 'away-lights', device: 'porch', set: { on: true } }],
    });
    expect(created.status).toBe(201);
    const ruleId = created.body.rule.id as string;
    await lights.terminate();

    await door.report({ 'front-door': { open: true } });
    const stats = async () => (await api(server.httpUrl, 'GET', `/v1/homes/${home}/rules/${ruleId}`, server.adminToken)).body.rule.status.stats;
    await expect.poll(stats, { timeout: 25_000 }).toMatchObject({ matched: 1 });
    // the run has asked for the hub and found it offline (it fails at once without the wait)
    await new Promise((r) => setTimeout(r, 600));

    const back = new HubClient({ url: server.wsUrl, hubId: 'away-lights', secret: secrets['away-lights']! });
    clients.push(back);
    const got: CommandFrame[] = [];
    back.onCommand((cmd) => {
      got.push(cmd);
      return { ok: true };
    });
    await back.connect();
    await expect.poll(stats, { timeout: 25_000 }).toMatchObject({ matched: 1, actionsRun: 1, errors: 0 });
    expect(got).toMatchObject([{ t: 7, d: 'porch', m: 'set', p: { on: true } }]);
  });
});
