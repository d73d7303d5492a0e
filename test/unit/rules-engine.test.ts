/**
 * The rules engine end to end in one process: events from simulated hubs → engine → worker threads
 * (a real piscina pool) → actions back through the command path, desired state and the push queue.
 * Over 400 lines: the engine's semantics (cooldown, loop guard, delays, ordering, dry run, faults)
 * share one rig; issue 15 asks for these tests to stay unchanged.
 */
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import { prometheusRuleMetrics } from '../../src/rules/metrics.js';
import { RulePool } from '../../src/rules/pool.js';
import { validateRuleSpec, validateSceneSpec } from '../../src/rules/validate.js';
import { HALL_LIGHT, rig, type Rig } from './rules-fixtures.js';

const poolTimers = new TimerWheel();
let pool: RulePool;
let faultyPool: RulePool;

/**
 * A worker thread's first task includes loading the worker (tsx, the expression library): on a
 * busy machine more than the pool's default 2 s deadline. The deadline is not what these tests
 * are about (rules-pool.test.ts is), so it is far away, and the threads are warm before any test:
 * each test runs alone as well as after the others.
 */
const TASK_TIMEOUT_MS = 30_000;

beforeAll(async () => {
  pool = new RulePool({ timers: poolTimers, threads: 1, taskTimeoutMs: TASK_TIMEOUT_MS });
  faultyPool = new RulePool({ timers: poolTimers, threads: 1, taskTimeoutMs: TASK_TIMEOUT_MS, filename: new URL('./rules-faulty-worker.ts', import.meta.url) });
  await Promise.all([pool.warmUp(), faultyPool.warmUp()]);
});

afterAll(async () => {
  await Promise.all([pool.close(), faultyPool.close()]);
  poolTimers.close();
});

let r: Rig;
afterEach(async () => {
  await r?.close();
});

/** 2024-07-01 is a Monday; Berlin is UTC+2 in July. */
const berlin = (day: number, hh: number, mm = 0, ss = 0) => Date.UTC(2024, 6, day, hh - 2, mm, ss);

const LEAK = {
  name: 'Water leak',
  triggers: [{ type: 'event', event: 'leak' }],
  actions: [
    { type: 'command', hub: 'home1-hub', device: 'main-valve', method: 'close' },
    { type: 'notify', title: 'Water leak', body: 'A leak was detected by {{ event.device }}. The main valve is being closed.' },
  ],
};

describe('names of Object.prototype members as device, alias and attribute', () => {
  // a pool of its own whose task deadline is only a ceiling: a cold worker on a loaded machine
  // must not turn into a failed evaluation here
  let patient: RulePool;
  beforeAll(() => {
    patient = new RulePool({ timers: poolTimers, threads: 1, taskTimeoutMs: 60_000 });
  });
  afterAll(async () => {
    await patient.close();
  });

  it('a rule on device toString, attribute valueOf, alias constructor runs on its own transition only, through the workers', async () => {
    r = rig(patient, berlin(1, 12));
    const rule = await r.store.createRule(
      'home1',
      validateRuleSpec({
        name: 'Members',
        triggers: [{ type: 'state', hub: 'home1-hub', device: 'toString', attr: 'valueOf', from: 1, to: 2 }],
        devices: { constructor: { hub: 'home1-hub', device: 'toString' }, hasOwnProperty: { hub: 'home1-hub', device: 'isPrototypeOf' } },
        conditions: ['dev.constructor.valueOf == 2 && event.prev == 1', '!has(dev.hasOwnProperty.on)'],
        actions: [
          { type: 'command', hub: 'home1-hub', device: 'hasOwnProperty', set: { toString: 'on' } },
          { type: 'notify', title: 'Members', body: '{{ dev.constructor.valueOf }} {{ dev.hasOwnProperty.valueOf }}' },
        ],
      }),
    );
    // another home's devices of the same names change nothing here
    r.hubs.report('home2-hub', 'toString', { valueOf: 1 });
    r.hubs.report('home2-hub', 'toString', { valueOf: 2 });
    r.hubs.report('home1-hub', 'toString', { valueOf: 1 });
    r.hubs.report('home1-hub', 'toString', { toString: 3 });
    await r.settle();
    expect(r.hubs.sent()).toEqual([]);
    r.hubs.report('home1-hub', 'toString', { valueOf: 2 });
    await r.settle();
    expect(r.hubs.sent()).toEqual(['hasOwnProperty:{"set":{"toString":"on"}}']);
    expect(r.pushes.map((p) => p.notification.body)).toEqual(['2 ?']);
    expect(r.engine.status(rule.id, rule.version).stats).toMatchObject({ evaluated: 2, triggered: 1, matched: 1, actionsRun: 2, errors: 0, lastError: null });
  });
});

describe('example: hall motion at night, dark → light on for 5 minutes', () => {
  async function setup(at: number, lux: number): Promise<void> {
    r = rig(pool, at);
    await r.store.putSettings('home1', { timeZone: 'Europe/Berlin' });
    await r.store.createRule('home1', validateRuleSpec(HALL_LIGHT));
    r.hubs.report('home1-hub', 'hall-lux', { lux });
    r.hubs.report('home1-hub', 'hall-motion', { motion: false });
    await r.settle();
  }

  it('at 23:00 local time with lux 12: on at once, off 5 minutes later', async () => {
    await setup(berlin(1, 23), 12);
    r.hubs.report('home1-hub', 'hall-motion', { motion: true });
    await r.settle();
    expect(r.hubs.sent()).toEqual(['hall-light:{"set":{"on":true}}']);
    r.advance(299_000);
    await r.settle();
    expect(r.hubs.sent()).toHaveLength(1);
    r.advance(1_100);
    await r.settle();
    expect(r.hubs.sent()).toEqual(['hall-light:{"set":{"on":true}}', 'hall-light:{"set":{"on":false}}']);
    const rule = (await r.store.listRules('home1'))[0]!;
    expect(r.engine.status(rule.id, rule.version).stats).toMatchObject({ evaluated: 2, triggered: 1, matched: 1, actionsRun: 2, errors: 0 }); // motion false was evaluated too: no trigger
  });

  it('a new run does not cancel one still running its actions: that one finishes them (its notification sent) and ends at its delay, counted', async () => {
    const registry = new Registry();
    // the valve's command is answered when the test says: the first run is mid-action when the second begins
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    r = rig(pool, berlin(1, 23), {
      metrics: prometheusRuleMetrics(registry),
      runCommand: async (hub, device, spec) => {
        if (device === 'valve') await gate;
        return r.hubs.runCommand(hub, device, spec);
      },
    });
    const rule = await r.store.createRule(
      'home1',
      validateRuleSpec({
        name: 'Leak',
        triggers: [{ type: 'event', event: 'leak' }],
        actions: [
          { type: 'command', hub: 'home1-hub', device: 'valve', method: 'close' },
          { type: 'notify', title: 'Leak', body: 'at {{ event.device }}' },
          { type: 'delay', ms: 60_000 },
          { type: 'command', hub: 'home1-hub', device: 'lamp', set: { on: false } },
        ],
      }),
    );
    r.hubs.event('home1-hub', 'bath', 'leak');
    await expect.poll(() => r.engine.status(rule.id, rule.version).stats.matched).toBe(1);
    r.hubs.event('home1-hub', 'kitchen', 'leak');
    await expect.poll(() => r.engine.status(rule.id, rule.version).stats.matched).toBe(2);
    open();
    await r.settle();
    // both events notified; the first run ended at its delay, superseded: one delay waits
    expect(r.pushes.map((p) => p.notification.body).sort()).toEqual(['at bath', 'at kitchen']);
    expect(r.engine.status(rule.id, rule.version)).toMatchObject({ waiting: true, stats: { actionsRun: 4, errors: 0 } });
    expect(await registry.metrics()).toMatch(/tier_rule_runs_cancelled_total\{reason="superseded"\} 1/);
    r.advance(60_100);
    await r.settle();
    expect(r.hubs.sent().filter((c) => c.startsWith('lamp'))).toEqual(['lamp:{"set":{"on":false}}']);
    expect(r.engine.status(rule.id, rule.version).waiting).toBe(false);
    // a run waiting in its delay is cancelled by the next one, as before
    r.hubs.event('home1-hub', 'bath', 'leak');
    await r.settle();
    r.hubs.event('home1-hub', 'kitchen', 'leak');
    await r.settle();
    expect(await registry.metrics()).toMatch(/tier_rule_runs_cancelled_total\{reason="superseded"\} 2/);
  });

  it('motion again after 3 minutes keeps the light on until 5 minutes after the last motion', async () => {
    await setup(berlin(1, 23), 12);
    r.hubs.report('home1-hub', 'hall-motion', { motion: true });
    await r.settle();
    r.advance(180_000);
    r.hubs.report('home1-hub', 'hall-motion', { motion: false });
    r.hubs.report('home1-hub', 'hall-motion', { motion: true });
    await r.settle();
    r.advance(200_000); // 6:20 after the first motion, 3:20 after the second
    await r.settle();
    expect(r.hubs.sent().filter((c) => c.includes('false'))).toEqual([]);
    r.advance(100_100);
    await r.settle();
    expect(r.hubs.sent()).toEqual(['hall-light:{"set":{"on":true}}', 'hall-light:{"set":{"on":true}}', 'hall-light:{"set":{"on":false}}']);
  });

  it('does nothing by day (14:00 local) or when the hall is bright', async () => {
    await setup(berlin(1, 14), 12);
    r.hubs.report('home1-hub', 'hall-motion', { motion: true });
    await r.settle();
    expect(r.hubs.sent()).toEqual([]);
    await r.close();

    await setup(berlin(1, 23), 80);
    r.hubs.report('home1-hub', 'hall-motion', { motion: true });
    await r.settle();
    expect(r.hubs.sent()).toEqual([]);
    const rule = (await r.store.listRules('home1'))[0]!;
    expect(r.engine.status(rule.id, rule.version).stats).toMatchObject({ evaluated: 2, triggered: 1, matched: 0, actionsRun: 0 });
  });

  it('uses the home time zone: 23:00 UTC is 01:00 in Berlin (night), 21:30 UTC in New York is 17:30 (day)', async () => {
    await setup(Date.UTC(2024, 6, 1, 23, 0), 5);
    r.hubs.report('home1-hub', 'hall-motion', { motion: true });
    await r.settle();
    expect(r.hubs.sent()).toHaveLength(1);
    await r.store.putSettings('home1', { timeZone: 'America/New_York' });
    r.clock.now = Date.UTC(2024, 6, 2, 21, 30);
    r.hubs.report('home1-hub', 'hall-motion', { motion: false });
    r.hubs.report('home1-hub', 'hall-motion', { motion: true });
    await r.settle();
    // no second "on" (the first run's delayed "off" may have fired meanwhile: the wheel ticks on
    // its own interval, and the clock jumped past its delay)
    expect(r.hubs.sent().filter((c) => c === 'hall-light:{"set":{"on":true}}')).toHaveLength(1);
  });
});

describe('example: any water-leak sensor → close the valve and notify everyone in the home', () => {
  it('closes the valve and pushes one notification per leak, naming the sensor', async () => {
    r = rig(pool, berlin(1, 10));
    await r.store.createRule('home1', validateRuleSpec(LEAK));
    r.hubs.report('home1-hub', 'main-valve', { position: 100 });
    r.hubs.event('home1-hub', 'bath-leak', 'leak', { level: 3 });
    await r.settle();
    expect(r.hubs.sent()).toEqual(['main-valve:{"method":"close","params":{}}']);
    expect(r.hubs.devices.get('home1-hub/main-valve')).toEqual({ position: 0 });
    expect(r.pushes).toHaveLength(1);
    expect(r.pushes[0]!.notification).toMatchObject({
      homeId: 'home1',
      audience: 'home',
      title: 'Water leak',
      body: 'A leak was detected by bath-leak. The main valve is being closed.',
    });

    // another sensor in the same home (another hub too): the same rule, its own notification
    r.hubs.event('home1-hub2', 'kitchen-leak', 'leak');
    await r.settle();
    expect(r.hubs.sent()).toHaveLength(2);
    expect(r.pushes.map((p) => p.notification.body)).toEqual([
      'A leak was detected by bath-leak. The main valve is being closed.',
      'A leak was detected by kitchen-leak. The main valve is being closed.',
    ]);
  });

  it('the same event delivered twice (its history offset the same) notifies once (dedup key per event), other homes are not touched', async () => {
    r = rig(pool, berlin(1, 10));
    await r.store.createRule('home1', validateRuleSpec(LEAK));
    const ts = r.clock.now;
    const leak = (home: string) => ({ kind: 'event' as const, home, hub: `${home}-hub`, device: 'bath-leak', event: 'leak', ts });
    r.engine.onEvent(leak('home1'), undefined, 7);
    r.engine.onEvent(leak('home1'), undefined, 7);
    r.engine.onEvent(leak('home2'), undefined, 7);
    await r.settle();
    expect(r.pushes).toHaveLength(1);
    expect(r.hubs.commands.filter((c) => c.hub === 'home1-hub')).toHaveLength(2);
    expect(r.hubs.commands.filter((c) => c.hub === 'home2-hub')).toHaveLength(0);
  });
});

describe('loop guard', () => {
  it('a rule that triggers itself is stopped by its run limit, suspended, reported, and resumes when re-enabled', async () => {
    r = rig(pool, berlin(1, 10), { suspendMs: 600_000 });
    // "when the lamp changes, toggle the lamp": every run causes the next trigger
    const rule = await r.store.createRule(
      'home1',
      validateRuleSpec({
        name: 'Flip-flop',
        triggers: [{ type: 'state', hub: 'home1-hub', device: 'lamp', attr: 'on' }],
        actions: [{ type: 'command', hub: 'home1-hub', device: 'lamp', method: 'toggle' }],
        limit: { maxRuns: 5, windowMs: 60_000 },
      }),
    );
    r.hubs.report('home1-hub', 'lamp', { on: true });
    await r.settle();
    expect(r.hubs.commands).toHaveLength(5);
    const status = r.engine.status(rule.id, rule.version);
    expect(status.suspendedUntil).toBe(r.clock.now + 600_000);
    expect(status.stats).toMatchObject({ matched: 6, actionsRun: 5, loopStops: 1 });
    expect(status.stats.lastError?.message).toMatch(/loop guard: more than 5 runs within 60000 ms/);
    expect(r.pushes.map((p) => p.notification.title)).toEqual(['Automation paused']);
    expect(r.pushes[0]!.notification.body).toMatch(/"Flip-flop" ran more than 5 times within 60 s/);

    // suspended: further changes do not run it
    r.hubs.report('home1-hub', 'lamp', { on: false });
    await r.settle();
    expect(r.hubs.commands).toHaveLength(5);
    expect(r.engine.status(rule.id, rule.version).stats.suppressed).toBeGreaterThanOrEqual(1);

    // the user fixes or re-enables it: a new version lifts the suspension
    await r.store.setRuleEnabled('home1', rule.id, false);
    const again = (await r.store.setRuleEnabled('home1', rule.id, true))!;
    expect(r.engine.status(again.id, again.version).suspendedUntil).toBeNull();
    r.hubs.report('home1-hub', 'lamp', { on: true });
    await r.settle();
    expect(r.hubs.commands).toHaveLength(10);
    expect(r.engine.status(again.id, again.version).stats.loopStops).toBe(2);
  });

  it("charges its report to the home's notifications a minute: suspended and re-enabled in a loop, the rule is still suspended each time, pushed only within the limit (review \"rulesdos2\": 6,450 a minute)", async () => {
    r = rig(pool, berlin(1, 10), { suspendMs: 600_000, homeNotificationsPerMinute: 2 });
    let rule = await r.store.createRule(
      'home1',
      validateRuleSpec({ name: 'Twice', triggers: [{ type: 'event', hub: 'home1-hub', device: 'bell', event: 'press' }], actions: [{ type: 'command', hub: 'home1-hub', device: 'chime', method: 'ring' }], limit: { maxRuns: 1, windowMs: 60_000 } }),
    );
    for (let round = 1; round <= 4; round++) {
      // a second apart: each report has its own dedup key
      r.advance(1_000);
      r.hubs.event('home1-hub', 'bell', 'press');
      r.hubs.event('home1-hub', 'bell', 'press');
      await r.settle();
      expect(r.engine.status(rule.id, rule.version).stats.loopStops, `round ${round}`).toBe(round);
      await r.store.setRuleEnabled('home1', rule.id, false);
      rule = (await r.store.setRuleEnabled('home1', rule.id, true))!;
    }
    expect(r.pushes.map((p) => p.notification.title)).toEqual(['Automation paused', 'Automation paused']);
  });

  it('forgets runs that left the window: the rule runs again once the window has passed, and counts the runs still in it', async () => {
    r = rig(pool, berlin(1, 10));
    const rule = await r.store.createRule(
      'home1',
      validateRuleSpec({
        name: 'Doorbell chime',
        triggers: [{ type: 'event', hub: 'home1-hub', device: 'bell', event: 'press' }],
        actions: [{ type: 'command', hub: 'home1-hub', device: 'chime', method: 'ring' }],
        limit: { maxRuns: 3, windowMs: 60_000 },
      }),
    );
    const press = async (afterMs: number) => {
      r.advance(afterMs);
      r.hubs.event('home1-hub', 'bell', 'press');
      await r.settle();
    };
    await press(0); // runs at 0 s, 20 s and 40 s: the limit of the window
    await press(20_000);
    await press(20_000);
    expect(r.hubs.commands).toHaveLength(3);
    // at 60 s the run of 0 s has left the window: three runs in it again (20, 40, 60), not four
    await press(20_000);
    expect(r.hubs.commands).toHaveLength(4);
    expect(r.engine.status(rule.id, rule.version)).toMatchObject({ suspendedUntil: null, stats: { loopStops: 0 } });
    // at 61 s the runs of 20, 40 and 60 s are still in it: a fourth is one too many
    await press(1_000);
    expect(r.hubs.commands).toHaveLength(4);
    expect(r.engine.status(rule.id, rule.version).stats.loopStops).toBe(1);
  });

  it('cooldown skips matches within the window without suspending', async () => {
    r = rig(pool, berlin(1, 10));
    const rule = await r.store.createRule(
      'home1',
      validateRuleSpec({
        name: 'Doorbell chime',
        triggers: [{ type: 'event', hub: 'home1-hub', device: 'bell', event: 'press' }],
        actions: [{ type: 'command', hub: 'home1-hub', device: 'chime', method: 'ring' }],
        cooldownMs: 10_000,
      }),
    );
    r.hubs.event('home1-hub', 'bell', 'press');
    r.hubs.event('home1-hub', 'bell', 'press');
    await r.settle();
    r.advance(9_000);
    r.hubs.event('home1-hub', 'bell', 'press');
    await r.settle();
    expect(r.hubs.commands).toHaveLength(1);
    r.advance(1_000);
    r.hubs.event('home1-hub', 'bell', 'press');
    await r.settle();
    expect(r.hubs.commands).toHaveLength(2);
    expect(r.engine.status(rule.id, rule.version)).toMatchObject({ suspendedUntil: null, stats: { matched: 4, suppressed: 2, loopStops: 0 } });
  });
});

describe('triggers through the engine', () => {
  it('a threshold fires when the value crosses it, not on every report above it', async () => {
    r = rig(pool, berlin(1, 10));
    await r.store.createRule(
      'home1',
      validateRuleSpec({
        name: 'Too warm',
        triggers: [{ type: 'state', hub: 'home1-hub', device: 'temp', attr: 't', above: 28 }],
        actions: [{ type: 'desired', hub: 'home1-hub', device: 'fan', desired: { on: true } }],
      }),
    );
    for (const t of [25, 29, 30, 31, 27, 29]) r.hubs.report('home1-hub', 'temp', { t });
    await r.settle();
    expect(r.hubs.desired).toEqual([
      { hub: 'home1-hub', device: 'fan', patch: { on: true } },
      { hub: 'home1-hub', device: 'fan', patch: { on: true } },
    ]);
  });

  it('a button double-press runs a scene: all its commands', async () => {
    r = rig(pool, berlin(1, 20));
    const scene = await r.store.createScene(
      'home1',
      validateSceneSpec({ name: 'Movie', commands: [{ hub: 'home1-hub', device: 'tv', set: { on: true } }, { hub: 'home1-hub', device: 'blinds', method: 'close' }] }),
    );
    await r.store.createRule(
      'home1',
      validateRuleSpec({
        name: 'Movie button',
        triggers: [{ type: 'event', hub: 'home1-hub', device: 'btn', event: 'press', params: { count: 2 } }],
        actions: [{ type: 'scene', scene: scene.id }],
      }),
    );
    r.hubs.event('home1-hub', 'btn', 'press', { count: 1 });
    await r.settle();
    expect(r.hubs.commands).toHaveLength(0);
    r.hubs.event('home1-hub', 'btn', 'press', { count: 2 });
    await r.settle();
    expect(r.hubs.sent().sort()).toEqual(['blinds:{"method":"close","params":{}}', 'tv:{"set":{"on":true}}']);
  });

  it('edits reach the engine at once (store watch), and disabling a rule cancels its run waiting in a delay', async () => {
    r = rig(pool, berlin(1, 23));
    await r.store.putSettings('home1', { timeZone: 'Europe/Berlin' });
    const rule = await r.store.createRule('home1', validateRuleSpec({ ...HALL_LIGHT, conditions: [] }));
    r.hubs.report('home1-hub', 'hall-motion', { motion: true });
    await r.settle();
    expect(r.hubs.commands).toHaveLength(1);
    expect(r.engine.status(rule.id, rule.version).waiting).toBe(true);
    await r.store.setRuleEnabled('home1', rule.id, false);
    await r.settle();
    r.advance(301_000);
    await r.settle();
    expect(r.hubs.commands).toHaveLength(1); // the "off" never ran
    // an edit: the next event uses the new actions
    await r.store.updateRule('home1', rule.id, validateRuleSpec({ ...HALL_LIGHT, conditions: [], actions: [{ type: 'command', hub: 'home1-hub', device: 'hall-lamp2', set: { on: true } }] }));
    r.hubs.report('home1-hub', 'hall-motion', { motion: false });
    r.hubs.report('home1-hub', 'hall-motion', { motion: true });
    await r.settle();
    expect(r.hubs.sent().at(-1)).toBe('hall-lamp2:{"set":{"on":true}}');
  });

  it('a failed action is counted with its index and the next action still runs', async () => {
    r = rig(pool, berlin(1, 10));
    r.hubs.offline.add('home1-hub2');
    const rule = await r.store.createRule(
      'home1',
      validateRuleSpec({
        name: 'Two lamps',
        triggers: [{ type: 'event', event: 'press' }],
        actions: [
          { type: 'command', hub: 'home1-hub2', device: 'lamp', set: { on: true } },
          { type: 'command', hub: 'home1-hub', device: 'lamp', set: { on: true } },
        ],
      }),
    );
    r.hubs.event('home1-hub', 'btn', 'press');
    await r.settle();
    expect(r.hubs.commands.map((c) => c.hub)).toEqual(['home1-hub2', 'home1-hub']);
    const stats = r.engine.status(rule.id, rule.version).stats;
    expect(stats).toMatchObject({ actionsRun: 1, errors: 1 });
    expect(stats.lastError?.message).toMatch(/^actions\[0\] \(command\): hub home1-hub2 is not connected/);
  });
});

describe('scenes and dry runs', () => {
  it('runScene runs every command and reports each result; a disabled scene is refused', async () => {
    r = rig(pool, berlin(1, 10));
    r.hubs.offline.add('home1-hub2');
    const scene = await r.store.createScene(
      'home1',
      validateSceneSpec({ name: 'All off', commands: [{ hub: 'home1-hub', device: 'a', set: { on: false } }, { hub: 'home1-hub2', device: 'b', set: { on: false } }] }),
    );
    const res = await r.engine.runScene('home1', scene.id);
    expect(res.results).toEqual([
      { hub: 'home1-hub', device: 'a', ok: true, result: { on: false } },
      { hub: 'home1-hub2', device: 'b', ok: false, code: 'hub_offline', message: 'hub home1-hub2 is not connected' },
    ]);
    await r.store.setSceneEnabled('home1', scene.id, false);
    await expect(r.engine.runScene('home1', scene.id)).rejects.toMatchObject({ code: 'invalid_field', field: 'enabled' });
    await expect(r.engine.runScene('home1', 'sNope')).rejects.toMatchObject({ code: 'not_found' });
  });

  it('a dry run evaluates on the pool against current state and runs nothing', async () => {
    r = rig(pool, berlin(1, 23));
    await r.store.putSettings('home1', { timeZone: 'Europe/Berlin' });
    const scene = await r.store.createScene('home1', validateSceneSpec({ name: 'Night', commands: [{ hub: 'home1-hub', device: 'blinds', method: 'close' }] }));
    const rule = await r.store.createRule('home1', validateRuleSpec({ ...HALL_LIGHT, actions: [...HALL_LIGHT.actions, { type: 'scene', scene: scene.id }] }));
    r.hubs.report('home1-hub', 'hall-lux', { lux: 12 });
    await r.settle();
    const yes = await r.engine.dryRun('home1', rule.id);
    expect(yes).toMatchObject({
      triggered: true,
      passed: true,
      wouldRun: true,
      blockedBy: [],
      conditions: [
        { expr: 'between(time.hhmm, "22:00", "06:00")', value: true },
        { expr: 'dev.lux.lux < 30', value: true },
      ],
      state: { 'home1-hub/hall-lux': { lux: 12 } },
    });
    expect(yes.actions).toEqual([
      { type: 'command', hub: 'home1-hub', device: 'hall-light', set: { on: true } },
      { type: 'delay', ms: 300_000 },
      { type: 'command', hub: 'home1-hub', device: 'hall-light', set: { on: false } },
      { type: 'scene', scene: scene.id, commands: [{ hub: 'home1-hub', device: 'blinds', method: 'close', params: {} }] },
    ]);
    r.hubs.report('home1-hub', 'hall-lux', { lux: 90 });
    await r.settle();
    const no = await r.engine.dryRun('home1', rule.id, { kind: 'state', hub: 'home1-hub', device: 'hall-motion', attrs: { motion: true }, ts: 0 }, { motion: false });
    expect(no).toMatchObject({ triggered: true, passed: false, wouldRun: false, actions: [], conditions: [{ value: true }, { value: false }] });
    const other = await r.engine.dryRun('home1', rule.id, { kind: 'state', hub: 'home1-hub', device: 'hall-motion', attrs: { motion: false }, ts: 0 }, { motion: true });
    expect(other).toMatchObject({ triggered: false, wouldRun: false });
    await r.store.setRuleEnabled('home1', rule.id, false);
    r.hubs.report('home1-hub', 'hall-lux', { lux: 1 });
    await r.settle();
    expect(await r.engine.dryRun('home1', rule.id)).toMatchObject({ passed: true, wouldRun: false, blockedBy: ['disabled'] });
    // nothing ran, nothing counted
    expect(r.hubs.commands).toEqual([]);
    expect(r.engine.status(rule.id, rule.version).stats.evaluated).toBe(0);
  });
});

describe('worker faults do not take the node down', () => {
  it('a worker that dies or throws fails that evaluation (counted), and the engine goes on serving', async () => {
    r = rig(faultyPool, berlin(1, 10));
    const spec = validateRuleSpec({ ...LEAK, actions: [{ type: 'command', hub: 'x-hub', device: 'valve', method: 'close' }] });
    const dying = await r.store.createRule('fault-exit', spec);
    const throwing = await r.store.createRule('fault-throw', spec);
    const fine = await r.store.createRule('home1', spec);
    // one turn's evaluations go to a worker as one batch, and a worker that dies fails its whole batch
    r.hubs.event('fault-exit-hub', 'bath-leak', 'leak');
    await r.settle();
    r.hubs.event('fault-throw-hub', 'bath-leak', 'leak');
    await r.settle();
    r.hubs.event('home1-hub', 'bath-leak', 'leak');
    await r.settle();
    expect(r.engine.status(dying.id, 1).stats).toMatchObject({ evaluated: 1, errors: 1, matched: 0 });
    expect(r.engine.status(dying.id, 1).stats.lastError?.message).toMatch(/exited with code: 7/);
    expect(r.engine.status(throwing.id, 1).stats.lastError?.message).toMatch(/bug in the worker/);
    expect(r.engine.status(fine.id, 1).stats).toMatchObject({ evaluated: 1, matched: 1, actionsRun: 1, errors: 0 });
    expect(r.hubs.commands).toHaveLength(1);
  });
});

describe('observability', () => {
  it('exports node-wide Prometheus series and keeps per-rule counters with evaluation latency', async () => {
    const registry = new Registry();
    r = rig(pool, berlin(1, 10), { metrics: prometheusRuleMetrics(registry) });
    const rule = await r.store.createRule('home1', validateRuleSpec(LEAK));
    r.hubs.event('home1-hub', 'bath-leak', 'leak');
    r.hubs.event('home1-hub', 'bath-leak', 'not-a-leak');
    await r.settle();
    const text = await registry.metrics();
    expect(text).toMatch(/tier_rule_evaluations_total\{outcome="matched"\} 1/);
    expect(text).toMatch(/tier_rule_actions_total\{type="command",result="ok"\} 1/);
    expect(text).toMatch(/tier_rule_actions_total\{type="notify",result="ok"\} 1/);
    expect(text).toMatch(/tier_rule_evaluation_seconds_count 1/);
    expect(text).toMatch(/tier_rule_event_to_action_seconds_count 1/);
    const stats = r.engine.status(rule.id, rule.version).stats;
    expect(stats).toMatchObject({ evaluated: 1, matched: 1, actionsRun: 2, errors: 0 });
    expect(stats.evalUs.count).toBe(1);
    expect(stats.evalUs.max).toBeGreaterThan(0);
    expect(stats.lastRunAt).toBe(r.clock.now);
    expect(stats.lastEvaluatedAt).toBe(r.clock.now);
  });
});

describe('home boundary at run time', () => {
  it('a hub moved to another home since the rule was written: its state is not read, commands to it fail', async () => {
    const homes: Record<string, string> = { 'home1-hub': 'home1', 'home1-hub2': 'home1' };
    r = rig(pool, berlin(1, 23), { homeOfHub: async (hub) => homes[hub] ?? null });
    const scene = await r.store.createScene('home1', validateSceneSpec({ name: 's', commands: [{ hub: 'home1-hub2', device: 'a', set: { on: true } }] }));
    const rule = await r.store.createRule(
      'home1',
      validateRuleSpec({
        name: 'Uses hub2',
        triggers: [{ type: 'event', event: 'press' }],
        devices: { other: { hub: 'home1-hub2', device: 'lux' } },
        conditions: ['!has(dev.other.lux)'],
        actions: [
          { type: 'command', hub: 'home1-hub2', device: 'lamp', set: { on: true } },
          { type: 'scene', scene: scene.id },
          { type: 'command', hub: 'home1-hub', device: 'lamp', set: { on: true } },
        ],
      }),
    );
    r.hubs.report('home1-hub2', 'lux', { lux: 5 });
    homes['home1-hub2'] = 'home2'; // re-provisioned into another home
    r.hubs.event('home1-hub', 'btn', 'press');
    await r.settle();
    // the condition saw no state of hub2 (has() is false), and only the home1 command went out
    expect(r.hubs.sent()).toEqual(['lamp:{"set":{"on":true}}']);
    expect(r.hubs.commands.map((c) => c.hub)).toEqual(['home1-hub']);
    const stats = r.engine.status(rule.id, rule.version).stats;
    expect(stats).toMatchObject({ matched: 1, actionsRun: 1, errors: 2 });
    expect((await r.engine.runScene('home1', scene.id)).results[0]).toMatchObject({ ok: false, code: 'forbidden' });
    expect((await r.engine.dryRun('home1', rule.id)).state).toEqual({});
  });

  it("a hub moved after the engine already reached it: the next run sees the move (the engine keeps no hub → home cache of its own; the registry's is the node's)", async () => {
    const homes: Record<string, string> = { 'home1-hub': 'home1', 'home1-hub2': 'home1' };
    r = rig(pool, berlin(1, 23), { homeOfHub: async (hub) => homes[hub] ?? null });
    const rule = await r.store.createRule(
      'home1',
      validateRuleSpec({ name: 'Lamp on hub2', triggers: [{ type: 'event', event: 'press' }], actions: [{ type: 'command', hub: 'home1-hub2', device: 'lamp', method: 'ring' }] }),
    );
    r.hubs.event('home1-hub', 'btn', 'press');
    await r.settle();
    expect(r.hubs.commands.map((c) => c.hub)).toEqual(['home1-hub2']);
    homes['home1-hub2'] = 'home2';
    r.advance(1_000);
    r.hubs.event('home1-hub', 'btn', 'press');
    await r.settle();
    expect(r.hubs.commands).toHaveLength(1);
    const stats = r.engine.status(rule.id, rule.version).stats;
    expect(stats).toMatchObject({ matched: 2, actionsRun: 1, errors: 1 });
    expect(stats.lastError?.message).toMatch(/hub home1-hub2 is not in home home1/);
  });

  it('a hub moved while a command (or a scene\'s) waits for it to connect: the wait ends forbidden, the hub never runs it', async () => {
    const homes: Record<string, string> = { 'home1-hub': 'home1', 'home1-hub2': 'home1' };
    r = rig(pool, berlin(1, 23), { homeOfHub: async (hub) => homes[hub] ?? null, hubWaitMs: 600_000 });
    const scene = await r.store.createScene('home1', validateSceneSpec({ name: 's', commands: [{ hub: 'home1-hub2', device: 'b', set: { on: true } }] }));
    const press = [{ type: 'event', event: 'press' }];
    const direct = await r.store.createRule('home1', validateRuleSpec({ name: 'Lamp a', triggers: press, actions: [{ type: 'command', hub: 'home1-hub2', device: 'a', set: { on: true } }] }));
    const viaScene = await r.store.createRule('home1', validateRuleSpec({ name: 'Scene s', triggers: press, actions: [{ type: 'scene', scene: scene.id }] }));
    r.hubs.offline.add('home1-hub2');
    r.hubs.event('home1-hub', 'btn', 'press');
    // both commands tried once and waiting for the hub
    await expect.poll(() => r.hubs.commands.length).toBe(2);
    // the admin moves the hub to home2; it reconnects there
    homes['home1-hub2'] = 'home2';
    r.hubs.offline.delete('home1-hub2');
    await r.settle();
    // no second try reached the hub now in home2: the home1 rules changed none of its devices
    expect(r.hubs.commands.map((c) => c.device).sort()).toEqual(['a', 'b']);
    expect(r.hubs.devices.size).toBe(0);
    for (const rule of [direct, viaScene]) {
      const stats = r.engine.status(rule.id, rule.version).stats;
      expect(stats).toMatchObject({ matched: 1, actionsRun: 0, errors: 1 });
    }
    expect(r.engine.status(direct.id, direct.version).stats.lastError?.message).toMatch(/hub home1-hub2 is not in home home1/);
    expect(r.engine.status(viaScene.id, viaScene.version).stats.lastError?.message).toMatch(/forbidden/);
  });
});
