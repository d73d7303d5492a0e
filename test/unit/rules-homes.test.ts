/**
 * The engine's per-home processing: one home's events evaluated one after another in arrival order
 * while other homes go on, the bounded backlog and what is dropped, homes forgotten when idle, and
 * shutdown waiting for actions in progress. A gate in front of the real worker pool holds one home's
 * evaluations, so a backlog builds up deterministically.
 */
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { CommandSpec } from '../../src/actors/commands.js';
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import { prometheusRuleMetrics } from '../../src/rules/metrics.js';
import type { EvalResult, EvalTask } from '../../src/rules/model.js';
import { RulePool, type RuleRunner } from '../../src/rules/pool.js';
import { validateRuleSpec } from '../../src/rules/validate.js';
import { rig, type Rig } from './rules-fixtures.js';

const poolTimers = new TimerWheel();
let pool: RulePool;
beforeAll(async () => {
  pool = new RulePool({ timers: poolTimers, threads: 1, taskTimeoutMs: 30_000 });
  await pool.warmUp();
});
afterAll(async () => {
  await pool.close();
  poolTimers.close();
});

let r: Rig | undefined;
afterEach(async () => {
  await r?.close();
  r = undefined;
});

const START = Date.UTC(2024, 6, 1, 10);

/** Passes tasks to the pool; tasks of the held home wait until `release()`. */
class GatedRunner implements RuleRunner {
  readonly tasks: EvalTask[] = [];
  private open!: () => void;
  private readonly gate = new Promise<void>((resolve) => (this.open = resolve));
  private readonly waiters: Array<{ n: number; resolve: () => void }> = [];

  constructor(
    private readonly inner: RuleRunner,
    private readonly held: string | null,
  ) {}

  async evaluate(task: EvalTask): Promise<EvalResult> {
    this.tasks.push(task);
    for (const w of this.waiters.splice(0)) if (this.tasks.length >= w.n) w.resolve();
    else this.waiters.push(w);
    if (task.homeId === this.held) await this.gate;
    return this.inner.evaluate(task);
  }

  release(): void {
    this.open();
  }

  /** resolves once `n` tasks have reached the runner */
  reached(n: number): Promise<void> {
    if (this.tasks.length >= n) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ n, resolve }));
  }

  /** the `n` param of each evaluated button press, in the order the runner got them */
  presses(homeId: string): unknown[] {
    return this.tasks.filter((t) => t.homeId === homeId && t.event.kind === 'event').map((t) => (t.event.kind === 'event' ? t.event.params.n : null));
  }
}

/** Lets every pending continuation run: a macrotask comes after all microtasks. */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const PRESS = (home: string) =>
  validateRuleSpec({
    name: 'Press',
    triggers: [{ type: 'event', hub: `${home}-hub`, device: 'btn', event: 'press' }],
    // a chime reports no state back: the only events are the test's own
    actions: [{ type: 'command', hub: `${home}-hub`, device: 'chime', method: 'ring' }],
    limit: { maxRuns: 1_000, windowMs: 60_000 },
  });

/** The homes whose rules the store is asked for, in order: one entry per load. */
function storeLoads(rig: Rig): string[] {
  const loads: string[] = [];
  const listRules = rig.store.listRules.bind(rig.store);
  rig.store.listRules = (homeId) => {
    loads.push(homeId);
    return listRules(homeId);
  };
  return loads;
}

function metricValue(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.split(' ')[1]);
}

describe('per-home processing', () => {
  it("one home's events reach the evaluator one at a time, in arrival order, while another home goes on", async () => {
    const runner = new GatedRunner(pool, 'home1');
    r = rig(runner, START);
    await r.store.createRule('home1', PRESS('home1'));
    await r.store.createRule('home2', PRESS('home2'));
    for (let n = 1; n <= 4; n++) r.hubs.event('home1-hub', 'btn', 'press', { n });
    await runner.reached(1);
    r.hubs.event('home2-hub', 'btn', 'press', { n: 1 });
    while (r.hubs.commands.length < 1) await turn();
    // home1's first event is held in evaluation: its others wait behind it; home2's ran through
    expect(runner.presses('home1')).toEqual([1]);
    expect(runner.presses('home2')).toEqual([1]);
    expect(r.hubs.commands.map((c) => c.hub)).toEqual(['home2-hub']);
    runner.release();
    await r.settle();
    expect(runner.presses('home1')).toEqual([1, 2, 3, 4]);
    expect(r.hubs.commands.filter((c) => c.hub === 'home1-hub')).toHaveLength(4);
  });

  it('a full backlog drops further events of that home and counts them; a cron instant is answered error; other homes are not affected', async () => {
    const registry = new Registry();
    const runner = new GatedRunner(pool, 'home1');
    r = rig(runner, START, { maxBacklogPerHome: 3, metrics: prometheusRuleMetrics(registry) });
    await r.store.createRule('home1', PRESS('home1'));
    await r.store.createRule('home2', PRESS('home2'));
    // three accepted (one in evaluation, two waiting), three dropped
    for (let n = 1; n <= 6; n++) r.hubs.event('home1-hub', 'btn', 'press', { n });
    const cron = r.engine.fireScheduled('home1', 'any-rule', START);
    expect(metricValue(await registry.metrics(), 'tier_rule_dropped_total{reason="backlog"}')).toBe(4);
    r.hubs.event('home2-hub', 'btn', 'press', { n: 1 });
    await runner.reached(2);
    runner.release();
    await r.settle();
    // refused at once, not run later ('gone': no such rule)
    expect(await cron).toBe('error');
    expect(runner.presses('home1')).toEqual([1, 2, 3]);
    expect(runner.presses('home2')).toEqual([1]);
    // the backlog drained: the home takes events again
    r.hubs.event('home1-hub', 'btn', 'press', { n: 7 });
    await r.settle();
    expect(runner.presses('home1')).toEqual([1, 2, 3, 7]);
    expect(r.hubs.commands.filter((c) => c.hub === 'home1-hub')).toHaveLength(4);
    expect(metricValue(await registry.metrics(), 'tier_rule_dropped_total{reason="backlog"}')).toBe(4);
  });

  it('a change of the rules told while the backlog is full is not dropped: the events after it see the new rules', async () => {
    const registry = new Registry();
    const runner = new GatedRunner(pool, 'home1');
    r = rig(runner, START, { maxBacklogPerHome: 3, metrics: prometheusRuleMetrics(registry) });
    const rule = await r.store.createRule('home1', PRESS('home1'));
    for (let n = 1; n <= 3; n++) r.hubs.event('home1-hub', 'btn', 'press', { n });
    await runner.reached(1);
    await r.store.setRuleEnabled('home1', rule.id, false);
    runner.release();
    await r.settle();
    // the clock stands still: without the notice the cached rules would stay in use
    r.hubs.event('home1-hub', 'btn', 'press', { n: 4 });
    await r.settle();
    // the press on the worker as the rule was disabled is dropped, the queued ones see the rule gone
    // (until 2026-12-06 all three ran: test/unit/rules-change-during-eval.test.ts)
    expect(runner.presses('home1')).toEqual([1]);
    expect(r.hubs.commands).toHaveLength(0);
    expect(metricValue(await registry.metrics(), 'tier_rule_dropped_total{reason="backlog"}')).toBe(0);
  });

  it('a home failing message after message is stopped by its supervisor: what it had queued is dropped and counted, the next event starts it afresh', async () => {
    const registry = new Registry();
    r = rig(pool, START, { metrics: prometheusRuleMetrics(registry) });
    await r.store.createRule('home1', PRESS('home1'));
    const listRules = r.store.listRules.bind(r.store);
    let down = true;
    r.store.listRules = (homeId) => (down ? Promise.reject(new Error('store unreachable')) : listRules(homeId));
    // the first is in progress, the rest queue behind it; ten failures within a minute stop the home
    for (let n = 1; n <= 12; n++) r.hubs.event('home1-hub', 'btn', 'press', { n });
    const cron = r.engine.fireScheduled('home1', 'any-rule', START);
    await r.settle();
    expect(await cron).toBe('error');
    expect(metricValue(await registry.metrics(), 'tier_rule_dropped_total{reason="home_stopped"}')).toBe(3);
    expect(r.hubs.commands).toEqual([]);
    down = false;
    r.hubs.event('home1-hub', 'btn', 'press', { n: 13 });
    await r.settle();
    expect(r.hubs.commands).toHaveLength(1);
  });

  it("the node's supervision applies to home actors: its bound stops them and its counter hears each failure", async () => {
    const registry = new Registry();
    const failures: Array<[string, string]> = [];
    r = rig(pool, START, {
      metrics: prometheusRuleMetrics(registry),
      supervision: { supervision: { maxFailures: 2, withinMs: 60_000 }, onFailure: (address, type) => void failures.push([address, type]) },
    });
    await r.store.createRule('home1', PRESS('home1'));
    r.store.listRules = () => Promise.reject(new Error('store unreachable'));
    for (let n = 1; n <= 4; n++) r.hubs.event('home1-hub', 'btn', 'press', { n });
    await r.settle();
    // two failures stop the home (not the default ten); the two events queued behind are dropped
    expect(failures).toEqual([
      ['rules:home:home1', 'event'],
      ['rules:home:home1', 'event'],
    ]);
    expect(metricValue(await registry.metrics(), 'tier_rule_dropped_total{reason="home_stopped"}')).toBe(2);
  });

  it('beyond maxHomes an idle home is forgotten (its rules are read again on its next event); a busy one is kept', async () => {
    const runner = new GatedRunner(pool, 'home1');
    r = rig(runner, START, { maxHomes: 2 });
    const loads = storeLoads(r);
    for (const h of ['home1', 'home2', 'home3']) await r.store.createRule(h, PRESS(h));
    // home1 busy (held in evaluation), home2 idle: home3 arriving makes room by forgetting home2
    r.hubs.event('home1-hub', 'btn', 'press', { n: 1 });
    await runner.reached(1);
    r.hubs.event('home2-hub', 'btn', 'press', { n: 1 });
    while (r.hubs.commands.length < 1) await turn();
    r.hubs.event('home3-hub', 'btn', 'press', { n: 1 });
    await runner.reached(3);
    runner.release();
    await r.settle();
    r.hubs.event('home1-hub', 'btn', 'press', { n: 2 });
    await r.settle();
    expect(loads.filter((h) => h === 'home1')).toEqual(['home1']);
    r.hubs.event('home2-hub', 'btn', 'press', { n: 2 });
    await r.settle();
    expect(loads.filter((h) => h === 'home2')).toEqual(['home2', 'home2']);
    // forgotten or not, every event was evaluated
    expect(r.hubs.commands).toHaveLength(5);
  });
});

describe('homes without rules', () => {
  it('one idle past forgetIdleMs since the store said it had none is forgotten, one with rules kept; its next event reads the store again', async () => {
    r = rig(pool, START, { forgetIdleMs: 30_000 });
    const loads = storeLoads(r);
    await r.store.createRule('home1', PRESS('home1'));
    r.hubs.event('home1-hub', 'btn', 'press', { n: 1 });
    r.hubs.event('home2-hub', 'btn', 'press', { n: 1 });
    await r.settle();
    // the store said so just now
    expect(r.engine.forgetIdleHomes()).toBe(0);
    r.clock.now += 30_000;
    expect(r.engine.forgetIdleHomes()).toBe(1);
    expect(r.engine.forgetIdleHomes()).toBe(0);
    // a rule added meanwhile: the change is told only to homes kept, and the next event finds it
    await r.store.createRule('home2', PRESS('home2'));
    r.hubs.event('home2-hub', 'btn', 'press', { n: 2 });
    r.hubs.event('home1-hub', 'btn', 'press', { n: 2 });
    await r.settle();
    expect(loads.filter((h) => h === 'home2')).toEqual(['home2', 'home2']);
    expect(loads.filter((h) => h === 'home1')).toEqual(['home1']);
    expect(r.hubs.commands.map((c) => c.hub).sort()).toEqual(['home1-hub', 'home1-hub', 'home2-hub']);
  });

  it('one whose rules were deleted is kept while its mark waits for a run of the old rule, and forgotten once it has run', async () => {
    let finish!: () => void;
    const slow = new Promise<void>((resolve) => (finish = resolve));
    const noted: number[] = [];
    const marks = { note: (_home: string, offset: number) => void noted.push(offset), unevaluated: async () => [] };
    let running = false;
    r = rig(pool, START, { forgetIdleMs: 30_000, marks, runCommand: async () => ((running = true), slow) });
    const loads = storeLoads(r);
    const rule = await r.store.createRule('home1', PRESS('home1'));
    let offset = 0;
    const engine = r.engine;
    r.hubs.onEvent = (e) => engine.onEvent(e, undefined, ++offset);
    r.hubs.event('home1-hub', 'btn', 'press', { n: 1 });
    // the run has begun (deleted while its event was evaluated, the rule would start none)
    while (offset < 1 || loads.length < 1 || !running) await turn();
    await r.store.deleteRule('home1', rule.id);
    // the home reads its rules again (none now): event 2 is evaluated while event 1's run still waits
    r.hubs.event('home1-hub', 'btn', 'press', { n: 2 });
    while (loads.length < 2) await turn();
    for (let i = 0; i < 10; i++) await turn();
    r.clock.now += 30_000;
    expect(r.engine.forgetIdleHomes()).toBe(0);
    expect(noted).toEqual([]);
    finish();
    await r.settle();
    expect(noted).toEqual([2]);
    expect(r.engine.forgetIdleHomes()).toBe(1);
  });

  it('one whose deleted rule watched a value is forgotten: the values watched for it do not keep the home', async () => {
    r = rig(pool, START, { forgetIdleMs: 30_000 });
    const loads = storeLoads(r);
    const rule = await r.store.createRule('home1', validateRuleSpec({ name: 'Lamp', triggers: [{ type: 'state', hub: 'home1-hub', device: 'lamp', attr: 'on' }], actions: [{ type: 'command', hub: 'home1-hub', device: 'chime', method: 'ring' }] }));
    r.hubs.report('home1-hub', 'lamp', { on: true });
    await r.settle();
    await r.store.deleteRule('home1', rule.id);
    // the home reads its rules again (none now) at its next event
    r.hubs.report('home1-hub', 'lamp', { on: false });
    await r.settle();
    expect(loads).toEqual(['home1', 'home1']);
    r.clock.now += 30_000;
    expect(r.engine.forgetIdleHomes()).toBe(1);
  });

  it('one whose store is unreachable at its last check is kept: its cached rules serve the outage', async () => {
    r = rig(pool, START, { forgetIdleMs: 30_000, cacheTtlMs: 1_000 });
    r.hubs.event('home2-hub', 'btn', 'press', { n: 1 });
    await r.settle();
    const homeVersion = r.store.homeVersion.bind(r.store);
    r.store.homeVersion = () => Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
    r.clock.now += 30_000;
    r.hubs.event('home2-hub', 'btn', 'press', { n: 2 });
    await r.settle();
    expect(r.engine.forgetIdleHomes()).toBe(0);
    r.store.homeVersion = homeVersion;
  });
});

describe('close', () => {
  it('waits for an action in progress, cancels a run waiting in a delay, and takes no more events', async () => {
    let finish!: () => void;
    const slow = new Promise<void>((resolve) => (finish = resolve));
    const sent: string[] = [];
    r = rig(pool, START, {
      runCommand: async (_hub: string, device: string, _spec: CommandSpec) => {
        sent.push(device);
        if (device === 'slow') await slow;
        return {};
      },
    });
    await r.store.createRule(
      'home1',
      validateRuleSpec({ name: 'Slow', triggers: [{ type: 'event', event: 'press' }], actions: [{ type: 'command', hub: 'home1-hub', device: 'slow', method: 'x' }] }),
    );
    await r.store.createRule(
      'home1',
      validateRuleSpec({
        name: 'Later',
        triggers: [{ type: 'event', event: 'press' }],
        actions: [
          { type: 'command', hub: 'home1-hub', device: 'now', method: 'x' },
          { type: 'delay', ms: 60_000 },
          { type: 'command', hub: 'home1-hub', device: 'later', method: 'x' },
        ],
      }),
    );
    r.hubs.event('home1-hub', 'btn', 'press');
    while (sent.length < 2) await turn();
    let closed = false;
    const closing = r.engine.close().then(() => (closed = true));
    await turn();
    await turn();
    expect(closed).toBe(false);
    finish();
    await closing;
    r.hubs.event('home1-hub', 'btn', 'press');
    r.advance(61_000);
    await turn();
    expect(sent.sort()).toEqual(['now', 'slow']);
    expect(await r.engine.fireScheduled('home1', 'any', START)).toBe('error');
  });
});
