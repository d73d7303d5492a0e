/**
 * A home's actions per second (ActionBudget): what one home's rule runs may start on the main
 * thread, its commands (a scene's each), desired changes and notifications. Counted on the rig's
 * fake clock, which moves only when a test moves it: no test here depends on how fast it runs.
 */
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log/logger.js';
import { ActionBudget, ActionBudgetError } from '../../src/rules/action-budget.js';
import { prometheusRuleMetrics } from '../../src/rules/metrics.js';
import { validateRuleSpec, validateSceneSpec } from '../../src/rules/validate.js';
import { rig, warmPool, type Rig } from './rules-fixtures.js';

const pool = warmPool();
let r: Rig | undefined;
afterEach(async () => {
  await r?.close();
  r = undefined;
});

const press = [{ type: 'event', event: 'press' }];
const fourLamps = (home: string) => validateSceneSpec({ name: 'four', commands: ['a', 'b', 'c', 'd'].map((device) => ({ hub: `${home}-hub`, device, set: { on: true } })) });

describe('ActionBudget', () => {
  it('takes up to one second of charges, refuses past it (emptying the bucket), refills with time, and lets a charge larger than the bucket through only when full', () => {
    let now = 0;
    const b = new ActionBudget(10, () => now);
    b.take('h', 4);
    b.take('h', 4);
    expect(() => b.take('h', 4)).toThrow(ActionBudgetError);
    // emptied by the refusal: the 2 left are not taken one by one
    expect(() => b.take('h', 1)).toThrow(ActionBudgetError);
    expect(() => b.check('h')).toThrow(ActionBudgetError);
    b.check('other');
    now += 500;
    b.take('h', 5);
    expect(() => b.take('h', 1)).toThrow(ActionBudgetError);
    now += 1_000;
    b.take('h', 50);
    expect(() => b.take('h', 50)).toThrow(/TIER_RULE_HOME_ACTIONS_PER_SEC/);
    const off = new ActionBudget(0, () => now);
    for (let i = 0; i < 1_000; i++) off.take('h', 50);
  });
});

describe("a home's rule runs past its actions per second", () => {
  it('are refused past the bound for one event, across its rules: counted in the rules\' errors and tier_rule_actions_total{result="refused"}; another home is not held', async () => {
    const registry = new Registry();
    r = rig(pool(), Date.UTC(2024, 6, 1, 10), { homeActionsPerSecond: 10, metrics: prometheusRuleMetrics(registry) });
    const scene = await r.store.createScene('home1', fourLamps('home1'));
    const sceneAction = { type: 'scene', scene: scene.id };
    // three rules of one home on one event: 3 × 4 commands asked for, 10 allowed: two scenes fit, whichever goes first
    const rules = await Promise.all(['a', 'b', 'c'].map((name) => r!.store.createRule('home1', validateRuleSpec({ name, triggers: press, actions: [sceneAction] }))));
    // one rule in order: two scenes fit, the third does not and empties the bucket, so the notification is refused too
    const scene3 = await r.store.createScene('home3', fourLamps('home3'));
    const s3 = { type: 'scene', scene: scene3.id };
    const inOrder = await r.store.createRule('home3', validateRuleSpec({ name: 'in order', triggers: press, actions: [s3, s3, s3, { type: 'notify', title: 't', body: 'b' }] }));
    const other = await r.store.createRule('home2', validateRuleSpec({ name: 'other', triggers: press, actions: [{ type: 'command', hub: 'home2-hub', device: 'lamp', set: { on: true } }] }));
    r.hubs.event('home1-hub', 'btn', 'press');
    r.hubs.event('home2-hub', 'btn', 'press');
    r.hubs.event('home3-hub', 'btn', 'press');
    await r.settle();
    expect(r.hubs.commands.filter((c) => c.hub === 'home1-hub')).toHaveLength(8);
    const stats = rules.map((rule) => r!.engine.status(rule.id, rule.version).stats);
    expect(stats.map((st) => st.actionsRun).sort()).toEqual([0, 1, 1]);
    expect(stats.map((st) => st.errors).sort()).toEqual([0, 0, 1]);
    expect(stats.map((st) => st.lastError?.message).join()).toMatch(/home home1's rules started more than 10 device commands and notifications within a second/);
    expect(r.hubs.commands.filter((c) => c.hub === 'home3-hub')).toHaveLength(8);
    expect(r.pushes).toHaveLength(0);
    expect(r.engine.status(inOrder.id, inOrder.version).stats).toMatchObject({ actionsRun: 2, errors: 2 });
    // another home's bucket is its own
    expect(r.engine.status(other.id, other.version).stats).toMatchObject({ actionsRun: 1, errors: 0 });
    expect(r.hubs.commands.filter((c) => c.hub === 'home2-hub')).toHaveLength(1);
    const text = await registry.metrics();
    const refused = [...text.matchAll(/tier_rule_actions_total\{type="(\w+)",result="refused"\} (\d+)/g)].map((m) => `${m[1]}:${m[2]}`).sort();
    expect(refused).toEqual(['notify:1', 'scene:2']);

    // a second later the bucket is full again: the same event runs 10 more
    r.advance(1_000);
    r.hubs.event('home1-hub', 'btn', 'press');
    await r.settle();
    expect(r.hubs.commands.filter((c) => c.hub === 'home1-hub')).toHaveLength(16);
  });

  it('the default bound (500) is not reached by a home whose event runs 4 scenes of 50 commands and a notification', async () => {
    r = rig(pool(), Date.UTC(2024, 6, 1, 10));
    const big = await r.store.createScene('home1', validateSceneSpec({ name: 'big', commands: Array.from({ length: 50 }, (_, i) => ({ hub: 'home1-hub', device: `d${i}`, set: { on: true } })) }));
    const s = { type: 'scene', scene: big.id };
    const rule = await r.store.createRule('home1', validateRuleSpec({ name: 'all', triggers: press, actions: [s, s, s, s, { type: 'notify', title: 't', body: 'b' }] }));
    r.hubs.event('home1-hub', 'btn', 'press');
    await r.settle();
    expect(r.hubs.commands).toHaveLength(200);
    expect(r.engine.status(rule.id, rule.version).stats).toMatchObject({ actionsRun: 5, errors: 0 });
  });

  it("a home's notifications past its bound per minute are refused; another home's are sent, and a minute later the home's are again", async () => {
    r = rig(pool(), Date.UTC(2024, 6, 1, 10), { homeNotificationsPerMinute: 3 });
    const notify = { type: 'notify', title: 't', body: 'b' };
    const loud = await r.store.createRule('home1', validateRuleSpec({ name: 'loud', triggers: press, actions: Array.from({ length: 5 }, () => notify) }));
    const quiet = await r.store.createRule('home2', validateRuleSpec({ name: 'quiet', triggers: press, actions: [notify] }));
    r.hubs.event('home1-hub', 'btn', 'press');
    r.hubs.event('home2-hub', 'btn', 'press');
    await r.settle();
    const homes = () => r!.pushes.map((p) => p.notification.homeId);
    expect(homes().filter((h) => h === 'home1')).toHaveLength(3);
    expect(homes().filter((h) => h === 'home2')).toHaveLength(1);
    const stats = r.engine.status(loud.id, loud.version).stats;
    expect(stats).toMatchObject({ actionsRun: 3, errors: 2 });
    expect(stats.lastError?.message).toMatch(/more than 3 notifications within 60 s \(TIER_RULE_HOME_NOTIFY_PER_MIN\)/);
    expect(r.engine.status(quiet.id, quiet.version).stats).toMatchObject({ actionsRun: 1, errors: 0 });
    r.advance(60_000);
    r.hubs.event('home1-hub', 'btn', 'press');
    await r.settle();
    expect(homes().filter((h) => h === 'home1')).toHaveLength(6);
  });

  it('refusals are logged sampled (10 per 10 s node-wide), each still counted', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const log = createLogger('info', {}, { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) });
    r = rig(pool(), Date.UTC(2024, 6, 1, 10), { homeActionsPerSecond: 1, log });
    const notify = { type: 'notify', title: 't', body: 'b' };
    const rule = await r.store.createRule('home1', validateRuleSpec({ name: 'chatty', triggers: press, actions: Array.from({ length: 20 }, () => notify) }));
    r.hubs.event('home1-hub', 'btn', 'press');
    await r.settle();
    expect(r.engine.status(rule.id, rule.version).stats).toMatchObject({ actionsRun: 1, errors: 19 });
    // any line of a failed or refused action: 19 of them unsampled
    const refusals = lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('rules: action'));
    expect(refusals).toHaveLength(10);
    expect(refusals[0]).toMatchObject({ level: 40, homeId: 'home1', ruleId: rule.id, msg: expect.stringMatching(/^rules: action refused/) });
  });
});
