/**
 * Scenes of many commands to one hub, against a hub that refuses `busy` past its bound of commands
 * in flight (as HubCommands does: TIER_HUB_MAX_COMMANDS, 32). A scene may hold 50 commands; sent at
 * once, those past the bound always failed (review "commands", F1).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { CommandSpec } from '../../src/actors/commands.js';
import { CommandError } from '../../src/errors.js';
import { SCENE_COMMANDS_PER_HUB, sceneCommandsPerHub } from '../../src/rules/hub-lanes.js';
import { deviceKey } from '../../src/rules/model.js';
import { validateRuleSpec, validateSceneSpec } from '../../src/rules/validate.js';
import { rig, warmPool, type Rig } from './rules-fixtures.js';

const pool = warmPool();
let r: Rig;
afterEach(async () => {
  await r?.close();
});

/** A hub that takes `free` commands at a time (its bound less what apps and desired state hold) and answers each a tick later. */
function boundedHub(free: number) {
  const hub = { inFlight: 0, most: 0, busy: 0 };
  const run = async (hubId: string, device: string, spec: CommandSpec): Promise<unknown> => {
    if (hub.inFlight >= free) {
      hub.busy++;
      throw new CommandError('busy', `${free} commands to hub ${hubId} are waiting for answers`);
    }
    hub.inFlight++;
    hub.most = Math.max(hub.most, hub.inFlight);
    try {
      await new Promise((resolve) => setImmediate(resolve));
      return await r.hubs.runCommand(hubId, device, spec);
    } finally {
      hub.inFlight--;
    }
  };
  return { hub, run };
}

const lights = (hub: string, n: number) => Array.from({ length: n }, (_, i) => ({ hub, device: `light-${i}`, set: { on: false } }));

describe('a scene of many commands to one hub', () => {
  it('50 commands (the most a scene holds) to a hub with 16 of its 32 slots taken: every one ok, at most a few in flight, sent in the scene\'s order', async () => {
    const bounded = boundedHub(32 - 16);
    r = rig(pool(), Date.UTC(2026, 0, 1), { runCommand: bounded.run });
    const scene = await r.store.createScene('home1', validateSceneSpec({ name: 'All off', commands: lights('home1-hub', 50) }));
    const res = await r.engine.runScene('home1', scene.id);
    expect(res.results.filter((x) => !x.ok)).toEqual([]);
    expect(res.results).toHaveLength(50);
    expect(bounded.hub.busy).toBe(0);
    expect(bounded.hub.most).toBe(SCENE_COMMANDS_PER_HUB);
    expect(r.hubs.commands.map((c) => c.device)).toEqual(lights('home1-hub', 50).map((c) => c.device));
  });

  it('with TIER_HUB_MAX_COMMANDS set to 8, a scene sends a hub a quarter of it at a time (2), and every command runs', async () => {
    expect([1, 4, 8, 32, 100_000].map(sceneCommandsPerHub)).toEqual([1, 1, 2, 8, 8]);
    const bounded = boundedHub(8 - 4);
    r = rig(pool(), Date.UTC(2026, 0, 1), { runCommand: bounded.run, hubMaxCommands: 8 });
    const scene = await r.store.createScene('home1', validateSceneSpec({ name: 'All off', commands: lights('home1-hub', 20) }));
    const res = await r.engine.runScene('home1', scene.id);
    expect(res.results.filter((x) => !x.ok)).toEqual([]);
    expect(bounded.hub.most).toBe(2);
  });

  it('a rule\'s scene action of 40 commands to one hub runs all 40, with no error counted', async () => {
    const bounded = boundedHub(32);
    r = rig(pool(), Date.UTC(2026, 0, 1), { runCommand: bounded.run });
    const scene = await r.store.createScene('home1', validateSceneSpec({ name: 'All off', commands: lights('home1-hub', 40) }));
    const rule = await r.store.createRule('home1', validateRuleSpec({ name: 'Night button', triggers: [{ type: 'event', hub: 'home1-hub', device: 'btn', event: 'press' }], actions: [{ type: 'scene', scene: scene.id }] }));
    r.hubs.event('home1-hub', 'btn', 'press');
    await r.settle();
    expect(r.hubs.commands).toHaveLength(40);
    expect(bounded.hub.busy).toBe(0);
    expect(r.engine.status(rule.id, rule.version).stats).toMatchObject({ actionsRun: 1, errors: 0, lastError: null });
  });

  it('hubs do not wait for each other; a hub found offline fails its unsent commands at once, without trying each', async () => {
    r = rig(pool(), Date.UTC(2026, 0, 1));
    r.hubs.offline.add('home1-hub2');
    const scene = await r.store.createScene('home1', validateSceneSpec({ name: 'All off', commands: [...lights('home1-hub2', 20), ...lights('home1-hub', 20)] }));
    const res = await r.engine.runScene('home1', scene.id);
    expect(res.results.slice(20).every((x) => x.ok)).toBe(true);
    expect(res.results.slice(0, 20).map((x) => x.code)).toEqual(Array(20).fill('hub_offline'));
    expect(res.results[19]?.message).toBe('not sent: hub home1-hub2 is not connected');
    expect(r.hubs.commands.filter((c) => c.hub === 'home1-hub2')).toHaveLength(SCENE_COMMANDS_PER_HUB);
  });

  it("devices that answer nothing stop none of the hub's others: a first window of dead bulbs timing out, every later command still runs (review diff18)", async () => {
    r = rig(pool(), Date.UTC(2026, 0, 1), {
      runCommand: async (hub, device, spec) => {
        // the scene's first eight devices are dead bulbs: their commands time out, nothing else answers meanwhile
        if (Number(device.split('-')[1]) < SCENE_COMMANDS_PER_HUB) {
          await new Promise((resolve) => setTimeout(resolve, 30));
          throw new CommandError('command_timeout', `hub ${hub} did not answer within 30 ms`);
        }
        return r.hubs.runCommand(hub, device, spec);
      },
    });
    const scene = await r.store.createScene('home1', validateSceneSpec({ name: 'All off', commands: lights('home1-hub', 20) }));
    const res = await r.engine.runScene('home1', scene.id);
    expect(res.results.slice(0, SCENE_COMMANDS_PER_HUB).map((x) => x.code)).toEqual(Array(SCENE_COMMANDS_PER_HUB).fill('command_timeout'));
    expect(res.results.slice(SCENE_COMMANDS_PER_HUB).every((x) => x.ok)).toBe(true);
    expect(r.hubs.commands).toHaveLength(20 - SCENE_COMMANDS_PER_HUB);
  });

  it('a slow device timing out while the hub answers the others stops nothing: every other command runs', async () => {
    r = rig(pool(), Date.UTC(2026, 0, 1), {
      runCommand: async (hub, device, spec) => {
        // the others answer in 5 ms each, so some are still to send when light-12 times out
        await new Promise((resolve) => setTimeout(resolve, device === 'light-12' ? 12 : 5));
        if (device !== 'light-12') return r.hubs.runCommand(hub, device, spec);
        throw new CommandError('command_timeout', `hub ${hub} did not answer within 12 ms`);
      },
    });
    const scene = await r.store.createScene('home1', validateSceneSpec({ name: 'All off', commands: lights('home1-hub', 40) }));
    const res = await r.engine.runScene('home1', scene.id);
    expect(res.results.filter((x) => !x.ok).map((x) => `${x.device} ${x.code}`)).toEqual(['light-12 command_timeout']);
    expect(r.hubs.commands).toHaveLength(39);
  });

  it('a rule\'s scene to a hub that reconnects within the hub wait: all 40 commands run once it is back', async () => {
    const bounded = boundedHub(32);
    r = rig(pool(), Date.UTC(2026, 0, 1), { runCommand: bounded.run, hubWaitMs: 10_000 });
    r.hubs.offline.add('home1-hub');
    const scene = await r.store.createScene('home1', validateSceneSpec({ name: 'All off', commands: lights('home1-hub', 40) }));
    const rule = await r.store.createRule('home1', validateRuleSpec({ name: 'Night button', triggers: [{ type: 'event', hub: 'home1-hub2', device: 'btn', event: 'press' }], actions: [{ type: 'scene', scene: scene.id }] }));
    r.hubs.event('home1-hub2', 'btn', 'press');
    await expect.poll(() => r.hubs.commands.length).toBeGreaterThanOrEqual(SCENE_COMMANDS_PER_HUB);
    r.hubs.offline.delete('home1-hub');
    await r.settle();
    expect(lights('home1-hub', 40).filter((c) => r.hubs.devices.get(deviceKey(c.hub, c.device))?.on !== false)).toEqual([]);
    expect(r.engine.status(rule.id, rule.version).stats).toMatchObject({ errors: 0, lastError: null });
  });
});
