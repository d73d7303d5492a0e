/**
 * One home's costly rules against the others: the budget of one event (all rules it triggers share
 * EVENT_MAX_COST, cheapest first), the refusal at save of a rule over it, a home's worker time per
 * second (events past it dropped, other homes evaluated), and a close that does not wait for a
 * home's backlog.
 */
import { describe, expect, it } from 'vitest';
import { TierError } from '../../src/errors.js';
import { EVENT_MAX_COST } from '../../src/rules/expr-cost.js';
import { RuleEvaluator } from '../../src/rules/evaluate.js';
import { EVENT_BUDGET_MESSAGE } from '../../src/rules/event-budget.js';
import { noRuleMetrics, type DropReason, type RuleMetricsSink } from '../../src/rules/metrics.js';
import type { EvalResult, EvalTask } from '../../src/rules/model.js';
import { RulePoolError, type RuleRunner } from '../../src/rules/pool.js';
import { validateRuleSpec } from '../../src/rules/validate.js';
import { ruleOf } from '../helpers/rule.js';
import { rig } from './rules-fixtures.js';

const L = `[${Array.from({ length: 100 }, (_, i) => i).join(',')}]`;
/** true, at about 92,500 steps: near the bound of one expression */
const HEAVY = `${L}.all(a, ${L}.all(b, a != b + 1000))`;

const drops = (): { sink: RuleMetricsSink; counted: DropReason[] } => {
  const counted: DropReason[] = [];
  return { counted, sink: { ...noRuleMetrics, dropped: (r) => void counted.push(r) } };
};

describe('the budget of one event', () => {
  it('is shared by all rules the event triggers, compiling included: past it the rest are not evaluated, and cheap rules go first', () => {
    const heavy = (id: string) => ruleOf({ id, conditions: Array<string>(10).fill(HEAVY) });
    const cheap = ruleOf({ id: 'cheap', conditions: ['true'] });
    const untouched = ruleOf({ id: 'other', triggers: [{ type: 'state', attr: 'level' }], conditions: [HEAVY] });
    const task: EvalTask = { homeId: 'home', homeVersion: 1, timeZone: 'UTC', now: 0, rules: [heavy('h1'), heavy('h2'), heavy('h3'), cheap, untouched], event: { kind: 'state', hub: 'h', device: 'd', attrs: { on: true }, ts: 0 }, prev: {}, state: {} };
    const evaluator = new RuleEvaluator();
    const dropped = { triggered: true, passed: false, dropped: 'event_budget', error: EVENT_BUDGET_MESSAGE };
    // the first event compiles the four it triggers (10 steps a character, ~60,000 a heavy rule):
    // what is left is less than one heavy rule's 10 × ~92,500
    const first = new Map(evaluator.evaluate(task).outcomes.map((o) => [o.ruleId, o]));
    expect(first.get('cheap')).toMatchObject({ passed: true });
    for (const id of ['h1', 'h2', 'h3']) expect(first.get(id)).toMatchObject(dropped);
    expect(first.get('other')).toMatchObject({ triggered: false });
    expect(first.get('other')?.error).toBeUndefined();
    // compiled now: the cheap rule and one heavy rule fit in 1,000,000, two do not
    const next = new Map(evaluator.evaluate(task).outcomes.map((o) => [o.ruleId, o]));
    expect(next.get('cheap')).toMatchObject({ passed: true });
    expect([...next.values()].filter((o) => o.passed && o.ruleId !== 'cheap')).toHaveLength(1);
    expect([...next.values()].filter((o) => o.dropped === 'event_budget')).toHaveLength(2);
  });

  it('a rule whose conditions and templates could cost more than one event may is refused at save, 422 limit_exceeded', () => {
    const body = { name: 'heavy', triggers: [{ type: 'state', attr: 'on' }], conditions: Array<string>(10).fill(HEAVY), actions: [{ type: 'notify', title: 't', body: 'b' }] };
    expect(validateRuleSpec(body).conditions).toHaveLength(10);
    let err: unknown;
    try {
      validateRuleSpec({ ...body, actions: [{ type: 'notify', title: 't', body: `{{ ${HEAVY} }}` }] });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TierError);
    expect(err).toMatchObject({ code: 'limit_exceeded', field: 'conditions' });
    expect((err as Error).message).toContain(`more than the ${EVENT_MAX_COST.toLocaleString('en-US')} one event may use`);
  });
});

/** Answers every task at once, each rule passing; `usPerRule`: the worker time it reports per rule. */
function measuredRunner(usPerRule: number, seen: string[]): RuleRunner {
  return {
    evaluate: async (task: EvalTask): Promise<EvalResult> => {
      seen.push(task.homeId);
      return { compiled: 0, outcomes: task.rules.map((r) => ({ ruleId: r.id, version: r.version, triggered: true, passed: false, actions: [], evalUs: usPerRule })) };
    },
  };
}

describe("a home's worker time per second", () => {
  it("past it the home's events are dropped and counted (home_cpu, the rules' lastError) while other homes' are evaluated", async () => {
    const seen: string[] = [];
    const { sink, counted } = drops();
    // 10 s of worker time per evaluation: far past 250 ms, however slow the machine running this
    const r = rig(measuredRunner(10_000_000, seen), 0, { metrics: sink, homeCpuMsPerSecond: 250 });
    const x = await r.store.createRule('homex', { ...ruleOf(), name: 'x', triggers: [{ type: 'state', attr: 'n' }] });
    await r.store.createRule('homey', { ...ruleOf(), name: 'y', triggers: [{ type: 'state', attr: 'n' }] });
    for (let i = 1; i <= 5; i++) {
      r.hubs.report('homex-hub', 'd', { n: i });
      r.hubs.report('homey-hub', 'd', { n: i });
      await r.settle();
    }
    expect(seen.filter((h) => h === 'homex')).toHaveLength(1);
    expect(seen.filter((h) => h === 'homey')).toHaveLength(1);
    expect(counted.filter((c) => c === 'home_cpu')).toHaveLength(8);
    // a home that uses little is not touched by another's overdraft
    await r.store.createRule('homez', { ...ruleOf(), name: 'z', triggers: [{ type: 'state', attr: 'n' }] });
    r.hubs.report('homez-hub', 'd', { n: 1 });
    await r.settle();
    expect(seen.filter((h) => h === 'homez')).toHaveLength(1);
    expect(r.engine.stats.snapshot(x.id).lastError?.message).toContain('ms of worker time per second');
    await r.close();
  });
});

describe("the main thread's part of a home's evaluations", () => {
  it("is charged to the home's budget too: its state read and its task's sending (review complexity)", async () => {
    for (const part of ['state read', 'task sent'] as const) {
      const seen: string[] = [];
      const { sink, counted } = drops();
      // 1 µs of worker time a rule: the main thread's 10 s is what overdraws the home
      const cheap = measuredRunner(1, seen);
      const runner: RuleRunner = part === 'task sent' ? { evaluate: (task, cost) => ((cost!.ms += 10_000), cheap.evaluate(task)) } : cheap;
      const stateOf = async (_refs: unknown, spent?: { ms: number }) => {
        if (part === 'state read') spent!.ms += 10_000;
        return {};
      };
      const r = rig(runner, 0, { metrics: sink, homeCpuMsPerSecond: 250, stateOf });
      await r.store.createRule('homex', { ...ruleOf(), name: 'x', triggers: [{ type: 'state', attr: 'n' }], devices: { a: { hub: 'homex-hub', device: 'd' } } });
      for (let i = 1; i <= 3; i++) {
        r.hubs.report('homex-hub', 'd', { n: i });
        await r.settle();
      }
      expect(seen, part).toEqual(['homex']);
      expect(counted.filter((c) => c === 'home_cpu'), part).toHaveLength(2);
      await r.close();
    }
  });
});

describe('close', () => {
  it("drops what the homes had queued (closed) and does not wait past closeWaitMs for an evaluation that does not end", async () => {
    const { sink, counted } = drops();
    const pending: Array<(err: Error) => void> = [];
    const stuck: RuleRunner = { evaluate: () => new Promise<EvalResult>((_, reject) => void pending.push(reject)) };
    const r = rig(stuck, 0, { metrics: sink, closeWaitMs: 50 });
    await r.store.createRule('homex', { ...ruleOf(), name: 'x', triggers: [{ type: 'state', attr: 'n' }] });
    for (let i = 1; i <= 6; i++) r.hubs.report('homex-hub', 'd', { n: i });
    await r.engine.close();
    // the first was in the runner (never answered) when close gave up waiting; the pool's close fails it
    expect(pending).toHaveLength(1);
    for (const reject of pending) reject(new RulePoolError('closed', 'rule pool is closed'));
    await r.engine.idle();
    // five waited in the home's mailbox: dropped, not evaluated
    expect(pending).toHaveLength(1);
    expect(counted.filter((c) => c === 'closed')).toHaveLength(6);
  });
});
