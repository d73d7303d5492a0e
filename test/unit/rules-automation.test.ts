/**
 * The assembled automation of a node (what server.ts wires): shadow-store state for conditions,
 * the command path, desired state, push, cron through the lease, and shutdown.
 */
import { describe, expect, it } from 'vitest';
import type { Attrs } from '../../proto/frames.js';
import type { CommandSpec } from '../../src/actors/commands.js';
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import { emptyDevice } from '../../src/ports/shadow-store/shadow-store.js';
import { MemoryShadowStore } from '../../src/ports/shadow-store/shadow-store-memory.js';
import type { PushDelivery } from '../../src/ports/push-queue/push-queue.js';
import { MemoryPushQueue } from '../../src/ports/push-queue/push-queue-memory.js';
import { createAutomation, shadowState } from '../../src/rules/automation.js';
import { MemoryLease } from '../../src/ports/lease/lease-memory.js';
import { MemoryRuleStore } from '../../src/ports/rule-store/rule-store-memory.js';
import { MemoryPendingRuns } from '../../src/ports/pending-runs/pending-runs-memory.js';
import type { PendingRun, PendingRuns } from '../../src/ports/pending-runs/pending-runs.js';
import { validateRuleSpec } from '../../src/rules/validate.js';
import { TierError } from '../../src/errors.js';
import { silentLog } from './rules-fixtures.js';

describe('createAutomation', () => {
  it('reads conditions from the shadow store, commands over the command path, and shuts down cleanly', async () => {
    const timers = new TimerWheel();
    const shadows = new MemoryShadowStore();
    const store = new MemoryRuleStore();
    const pushes: PushDelivery[] = [];
    const push = new MemoryPushQueue({ sender: async (d) => void pushes.push(d) });
    const sent: Array<{ hub: string; device: string; spec: CommandSpec }> = [];
    const desired: Array<{ hub: string; device: string; patch: Attrs }> = [];
    const automation = createAutomation({
      store,
      lease: new MemoryLease(),
      push,
      shadows,
      homeOfHub: async (hub) => (hub === 'h1' ? 'home1' : null),
      runCommand: async (hub, device, spec) => void sent.push({ hub, device, spec }),
      setDesired: async (hub, device, patch) => void desired.push({ hub, device, patch }),
      timers,
      log: silentLog,
      nodeId: 'node-a',
      pool: { threads: 1 },
    });
    automation.start();
    shadows.writeReported('h1', 'lux', { ...emptyDevice(), reported: { lux: 12 }, reportedVersion: 1 });
    const rule = await store.createRule(
      'home1',
      validateRuleSpec({
        name: 'Hall',
        triggers: [{ type: 'state', hub: 'h1', device: 'motion', attr: 'motion', to: true }],
        devices: { lux: { hub: 'h1', device: 'lux' } },
        conditions: ['dev.lux.lux < 30'],
        actions: [
          { type: 'command', hub: 'h1', device: 'light', set: { on: true } },
          { type: 'desired', hub: 'h1', device: 'fan', desired: { on: true } },
          { type: 'notify', title: 'Motion', body: 'lux {{ dev.lux.lux }}' },
        ],
      }),
    );
    automation.onEvent({ kind: 'state', home: 'home1', hub: 'h1', device: 'motion', attrs: { motion: true }, version: 1, ts: Date.now() });
    // devices, online and offline events are not rule triggers: ignored without work
    automation.onEvent({ kind: 'online', home: 'home1', hub: 'h1', node: 'node-a', ts: Date.now() });
    await automation.engine.idle();
    await push.drain();
    expect(sent).toEqual([{ hub: 'h1', device: 'light', spec: { set: { on: true } } }]);
    expect(desired).toEqual([{ hub: 'h1', device: 'fan', patch: { on: true } }]);
    expect(pushes.map((p) => p.notification.body)).toEqual(['lux 12']);
    expect(automation.engine.status(rule.id, rule.version).stats).toMatchObject({ evaluated: 1, matched: 1, actionsRun: 3 });
    await automation.close();
    expect(automation.pool.stats().threads).toBe(0);
    await expect(automation.pool.evaluate({ homeId: 'x', homeVersion: 0, timeZone: 'UTC', now: 0, rules: [], event: { kind: 'manual', ts: 0 }, prev: {}, state: {} })).rejects.toMatchObject({ code: 'closed' });
    await push.close();
    timers.close();
  });

  it("sends a rule's notification its queue refused for now (a full Redis): tried again, not dropped (review \"diskfull\")", async () => {
    const timers = new TimerWheel();
    const store = new MemoryRuleStore();
    const pushes: PushDelivery[] = [];
    const push = new MemoryPushQueue({ sender: async (d) => void pushes.push(d) });
    let refusals = 2;
    const enqueue = push.enqueue.bind(push);
    push.enqueue = (n) => (refusals-- > 0 ? Promise.reject(new TierError('unavailable', 'push notification not queued: OOM command not allowed')) : enqueue(n));
    const automation = createAutomation({ store, lease: new MemoryLease(), push, shadows: new MemoryShadowStore(), homeOfHub: async () => 'home1', runCommand: async () => {}, setDesired: async () => {}, timers, log: silentLog, nodeId: 'node-a', pool: { threads: 1 } });
    automation.start();
    await store.createRule('home1', validateRuleSpec({ name: 'Leak', triggers: [{ type: 'event', hub: 'h1', device: 'leak', event: 'leak' }], actions: [{ type: 'notify', title: 'Water leak', body: 'kitchen' }] }));
    automation.onEvent({ kind: 'event', home: 'home1', hub: 'h1', device: 'leak', event: 'leak', ts: Date.now() });
    await automation.engine.idle();
    await push.drain();
    expect(refusals).toBe(-1);
    expect(pushes.map((p) => p.notification.title)).toEqual(['Water leak']);
    await automation.close();
    await push.close();
    timers.close();
  });

  describe('delays across restarts', () => {
    /** A rule `name` in home1: on a press, wait a minute, then turn device `name` off. */
    const delayed = (store: MemoryRuleStore, name: string) =>
      store.createRule(
        'home1',
        validateRuleSpec({
          name,
          triggers: [{ type: 'event', event: 'press' }],
          actions: [
            { type: 'delay', ms: 60_000 },
            { type: 'command', hub: 'h1', device: name, set: { on: false } },
          ],
        }),
      );
    /** What a run of `rule` saved at its delay: device `rule.name` off at `dueAt`. */
    const rest = (rule: { id: string; name: string }, dueAt: number): PendingRun => ({
      runId: `run-${rule.id}`,
      homeId: 'home1',
      ruleId: rule.id,
      ruleVersion: 1,
      dueAt,
      offset: 1,
      dedupBase: `rule:${rule.id}:x`,
      actions: [{ type: 'command', hub: 'h1', device: rule.name, set: { on: false } }],
    });
    /** The automation of a node over `store` and `pendingRuns`; commands name their device to `sent`. */
    function node(store: MemoryRuleStore, pendingRuns: PendingRuns, sent: (device: string) => void, extra: { orphanCheckMs?: number } = {}) {
      const timers = new TimerWheel();
      const push = new MemoryPushQueue({ sender: async () => {} });
      const automation = createAutomation({
        store,
        lease: new MemoryLease(),
        push,
        shadows: new MemoryShadowStore(),
        pendingRuns,
        homeOfHub: async () => 'home1',
        runCommand: async (_hub, device) => sent(device),
        setDesired: async () => {},
        timers,
        log: silentLog,
        nodeId: 'node-a',
        pool: { threads: 1 },
        ...extra,
      });
      return {
        automation,
        async close() {
          await automation.close();
          await push.close();
          timers.close();
        },
      };
    }

    it('start resumes the delays pending at the last stop; close keeps the ones still waiting', async () => {
      const store = new MemoryRuleStore();
      const pendingRuns = new MemoryPendingRuns();
      const late = await delayed(store, 'late');
      const ahead = await delayed(store, 'ahead');
      await pendingRuns.save(rest(late, Date.now() - 1_000));
      await pendingRuns.save(rest(ahead, Date.now() + 3_600_000));
      const sent: string[] = [];
      const { automation, close } = node(store, pendingRuns, (d) => sent.push(d));
      automation.start();
      await automation.engine.idle();
      expect(sent).toEqual(['late']);
      expect(automation.engine.status(ahead.id, ahead.version).waiting).toBe(true);
      await close();
      expect((await pendingRuns.load()).map((p) => p.ruleId)).toEqual([ahead.id]);
    });

    it('with a store shared by a cluster, the delays of a dead node that this node claims go on here', async () => {
      const store = new MemoryRuleStore();
      const orphan = rest(await delayed(store, 'orphan'), Date.now());
      // a shared store whose claimOrphans answers the dead node's entry at its second call: found
      // by the periodic check, not at start
      const inner = new MemoryPendingRuns();
      let claims = 0;
      const pendingRuns: PendingRuns = {
        durable: true,
        save: (run) => inner.save(run),
        remove: (ruleId, runId) => inner.remove(ruleId, runId),
        // the dead node's entry is in the shared store until it runs
        holds: async (ruleId, runId) => runId === orphan.runId || inner.holds(ruleId, runId),
        load: () => inner.load(),
        claimOrphans: async () => (++claims === 2 ? [orphan] : []),
        close: () => inner.close(),
      };
      let ran!: (device: string) => void;
      const sent = new Promise<string>((resolve) => (ran = resolve));
      const { automation, close } = node(store, pendingRuns, (d) => ran(d), { orphanCheckMs: 5 });
      automation.start();
      expect(await sent).toBe('orphan');
      expect(claims).toBeGreaterThanOrEqual(2);
      await close();
    });
  });

  it('shadowState reads each hub once, of the named devices alone (never the whole hub), and leaves unknown devices out', async () => {
    const shadows = new MemoryShadowStore();
    shadows.writeReported('h1', 'a', { ...emptyDevice(), reported: { on: true } });
    shadows.writeReported('h1', 'b', { ...emptyDevice(), reported: { t: 20 } });
    let loads = 0;
    const asked: string[][] = [];
    // a hub of 512 devices read whole took 11-28 ms of the main thread an evaluation (review "fairness", 2026-12-06)
    const counting = new Proxy(shadows, {
      get(target, prop, receiver) {
        if (prop === 'load') return () => Promise.reject(new Error('the whole hub read'));
        if (prop === 'loadDevices') return (hub: string, ids: string[]) => (loads++, asked.push([hub, ...ids]), target.loadDevices(hub, ids));
        return Reflect.get(target, prop, receiver);
      },
    });
    const state = await shadowState(counting)([
      { hub: 'h1', device: 'a' },
      { hub: 'h1', device: 'b' },
      { hub: 'h1', device: 'gone' },
      { hub: 'h2', device: 'x' },
    ]);
    expect(state).toEqual({ 'h1/a': { on: true }, 'h1/b': { t: 20 } });
    expect(loads).toBe(2);
    expect(asked).toEqual([['h1', 'a', 'b', 'gone'], ['h2', 'x']]);
  });

  it('shadowState: a device named like an Object.prototype member reads only its own hub’s state', async () => {
    // the embedded store keeps a hub's devices in a plain object: a device `toString` of hub a
    // was written onto the shared Object.prototype.toString, and a rule of another home naming
    // its own hub's device `toString` read hub a's state through the inherited member
    const shadows = new MemoryShadowStore();
    const names = ['toString', 'valueOf', 'constructor', 'hasOwnProperty'];
    const builtins = names.map((n) => (Object.prototype as unknown as Record<string, object>)[n]!);
    const before = builtins.map((b) => new Set(Reflect.ownKeys(b)));
    try {
      for (const n of names) shadows.writeReported('hub-a', n, { ...emptyDevice(), reported: { doorCode: '1234' }, reportedVersion: 1 });
      const state = await shadowState(shadows)(names.map((device) => ({ hub: 'hub-b', device })));
      expect(Object.keys(state)).toEqual([]);
      // a store whose read answers a plain object: the members it does not own are not devices
      const plain = { loadDevices: async () => ({ valueOf: { ...emptyDevice(), reported: { on: true } } }) } as unknown as MemoryShadowStore;
      const own = await shadowState(plain)(names.map((device) => ({ hub: 'hub-c', device })));
      expect(Object.keys(own)).toEqual(['hub-c/valueOf']);
      expect(own['hub-c/valueOf']).toEqual({ on: true });
    } finally {
      // whatever the store wrote onto the built-ins goes again
      builtins.forEach((b, i) => {
        for (const k of Reflect.ownKeys(b)) if (!before[i]!.has(k)) delete (b as Record<string | symbol, unknown>)[k];
      });
    }
  });
});
