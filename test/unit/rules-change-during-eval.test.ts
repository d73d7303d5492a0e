/**
 * A rule's change told while its home's events are evaluated or wait behind the evaluation: what the
 * worker matched of a rule since deleted (a home erased) or disabled is dropped, and the events
 * queued behind are evaluated on the rules as they are now. Until 2026-12-06 (a race review) an
 * erased home's deleted rule still sent its notification after the erasure answered, and a
 * disabled rule ran for each event already queued.
 */
import { afterEach, expect, it } from 'vitest';
import { eraseHome, type HomeDataDeps } from '../../src/api/home-data.js';
import type { RuleRunner } from '../../src/rules/pool.js';
import type { EvalResult, EvalTask } from '../../src/rules/model.js';
import { validateRuleSpec } from '../../src/rules/validate.js';
import { TierError } from '../../src/errors.js';
import { eventually } from '../helpers/eventually.js';
import { rig, warmPool, type Rig } from './rules-fixtures.js';

const pool = warmPool();
let r: Rig;
afterEach(async () => r?.close());

/** the real pool, with each evaluation's answer held until `release()` */
class GatedRunner implements RuleRunner {
  gate: Promise<void> = Promise.resolve();
  release: () => void = () => {};
  handed = 0;
  constructor(private readonly inner: () => RuleRunner) {}
  hold(): void {
    this.gate = new Promise((res) => (this.release = res));
  }
  async evaluate(task: EvalTask): Promise<EvalResult> {
    this.handed++;
    const result = await this.inner().evaluate(task);
    await this.gate;
    return result;
  }
}

const LEAK = {
  name: 'Leak alarm',
  triggers: [{ type: 'event', hub: 'home1-hub', device: 'leak', event: 'leak' }],
  conditions: [],
  actions: [{ type: 'notify', title: 'Water leak', body: 'kitchen' }],
};

it('a rule deleted by a home erasure does not send a notification after the erasure answered', async () => {
  const runner = new GatedRunner(pool);
  r = rig(runner, Date.UTC(2024, 6, 1, 12));
  await r.store.createRule('home1', validateRuleSpec(LEAK));
  runner.hold();
  r.hubs.event('home1-hub', 'leak', 'leak');
  await eventually(AbortSignal.timeout(10_000), 'an evaluation on the worker', async () => (runner.handed > 0 ? true : undefined));
  // the evaluation is on the worker: the admin erases the home
  const deps: HomeDataDeps = {
    fleet: { homeHubs: async () => [], remove: async () => undefined } as unknown as HomeDataDeps['fleet'],
    rules: r.store,
    shadows: {} as HomeDataDeps['shadows'],
    history: undefined,
    push: r.push,
    eventsSettled: async () => {},
    revokeHome: async () => 0,
  };
  const erased = await eraseHome(deps, 'home1');
  expect(erased.rules).toBe(1);
  runner.release();
  await r.settle();
  expect(r.pushes).toEqual([]);
});

it('a rule disabled while events of its home are evaluated or wait in the backlog: no run after the disable answered', async () => {
  const runner = new GatedRunner(pool);
  r = rig(runner, Date.UTC(2024, 6, 1, 12));
  const rule = await r.store.createRule('home1', validateRuleSpec({ ...LEAK, actions: [{ type: 'command', hub: 'home1-hub', device: 'siren', set: { on: true } }] }));
  runner.hold();
  // three leak events: the first on the worker, two in the home's mailbox
  for (let i = 0; i < 3; i++) r.hubs.event('home1-hub', 'leak', 'leak');
  await eventually(AbortSignal.timeout(10_000), 'an evaluation on the worker', async () => (runner.handed > 0 ? true : undefined));
  await r.store.setRuleEnabled('home1', rule.id, false);
  const disabledAt = r.hubs.commands.length;
  runner.release();
  await r.settle();
  expect(r.hubs.commands.length - disabledAt).toBe(0);
});

it('a rule edited (its text only) while its event is on the worker still runs, as matched on the version the event came to (a review of the fix)', async () => {
  const runner = new GatedRunner(pool);
  r = rig(runner, Date.UTC(2024, 6, 1, 12));
  const rule = await r.store.createRule('home1', validateRuleSpec(LEAK));
  runner.hold();
  r.hubs.event('home1-hub', 'leak', 'leak');
  await eventually(AbortSignal.timeout(10_000), 'an evaluation on the worker', async () => (runner.handed > 0 ? true : undefined));
  // the user fixes a typo in the notification's body
  await r.store.updateRule('home1', rule.id, validateRuleSpec({ ...LEAK, actions: [{ type: 'notify', title: 'Water leak', body: 'Kitchen' }] }));
  runner.release();
  await r.settle();
  expect(r.pushes.length).toBe(1);
});

it('a store failing after a change was told: the events after it are evaluated on the held rules, not one store read (and its timeout) each', async () => {
  r = rig(pool(), Date.UTC(2024, 6, 1, 12));
  const rule = await r.store.createRule('home1', validateRuleSpec(LEAK));
  r.hubs.event('home1-hub', 'leak', 'leak');
  await r.settle();
  // the store stops answering: each read fails after 300 ms (ioredis' commandTimeout is 2 s)
  let reads = 0;
  const hang = async () => {
    reads++;
    await new Promise((res) => setTimeout(res, 300));
    throw new TierError('unavailable', 'Command timed out');
  };
  const s = r.store as unknown as Record<string, unknown>;
  s.homeVersion = hang;
  s.listRules = hang;
  s.getSettings = hang;
  // a change is told just before (its notice came; its reload cannot be read)
  await r.store.updateRule('home1', rule.id, validateRuleSpec({ ...LEAK, name: 'Leak!' }));
  await new Promise((res) => setTimeout(res, 500));
  reads = 0;
  for (let i = 0; i < 8; i++) r.hubs.event('home1-hub', 'leak', 'leak', { n: i });
  await r.settle();
  // within the hold a failed read set (HomeRules), none; the clock of the rig stands still
  expect(reads).toBeLessThanOrEqual(3);
  expect(r.pushes.length).toBe(9);
}, 30_000);

it('a cron rule edited (its name only) while its instant is on the worker: the instant runs', async () => {
  const runner = new GatedRunner(pool);
  r = rig(runner, Date.UTC(2024, 6, 1, 7));
  const BLINDS = {
    name: 'Blinds up at 7',
    triggers: [{ type: 'cron', cron: '0 7 * * *' }],
    conditions: [],
    actions: [{ type: 'command', hub: 'home1-hub', device: 'blinds', set: { position: 100 } }],
  };
  const rule = await r.store.createRule('home1', validateRuleSpec(BLINDS));
  runner.hold();
  const fired = r.engine.fireScheduled('home1', rule.id, Date.UTC(2024, 6, 1, 7));
  await eventually(AbortSignal.timeout(10_000), 'an evaluation on the worker', async () => (runner.handed > 0 ? true : undefined));
  await r.store.updateRule('home1', rule.id, validateRuleSpec({ ...BLINDS, name: 'Blinds up at seven' }));
  runner.release();
  const result = await fired;
  await r.settle();
  const edited = await r.store.getRule('home1', rule.id);
  const status = r.engine.status(rule.id, edited!.version);
  void status;
  expect(result).not.toBe('error');
  expect(r.hubs.commands.length).toBe(1);
});
