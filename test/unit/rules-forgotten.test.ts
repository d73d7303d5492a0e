import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import { RulePool } from '../../src/rules/pool.js';
import { validateRuleSpec } from '../../src/rules/validate.js';
import { eventually } from '../helpers/eventually.js';
import { rig } from './rules-fixtures.js';

const timers = new TimerWheel();
let pool: RulePool;
beforeAll(async () => {
  // a first task loads the worker (tsx, the expression library): far from the deadline on a busy machine
  pool = new RulePool({ timers, threads: 1, taskTimeoutMs: 30_000 });
  await pool.warmUp();
});
afterAll(async () => {
  await pool.close();
  timers.close();
});

/** Polls until `ok` holds (the test's timeout is the ceiling). */
const until = (signal: AbortSignal, what: string, ok: () => boolean) => eventually(signal, what, async () => (ok() ? true : undefined));

const LAMP = (home: string) =>
  validateRuleSpec({ name: 'Lamp follows switch', triggers: [{ type: 'state', hub: `${home}-hub`, device: 'switch', attr: 'on' }], actions: [{ type: 'command', hub: `${home}-hub`, device: 'lamp', set: { on: true } }] });

describe('a rule deleted while its action is in flight', () => {
  it('leaves no counters on the node once the action ends: an app deleting rules that wait on silent devices must not grow them', async ({ signal }) => {
    let answer: () => void = () => undefined;
    let sent = 0;
    const r = rig(pool, Date.UTC(2024, 6, 1, 12), {
      runCommand: () => {
        sent++;
        return new Promise((resolve) => (answer = () => resolve({})));
      },
    });
    try {
      const rule = await r.store.createRule('home1', LAMP('home1'));
      r.hubs.report('home1-hub', 'switch', { on: true });
      await until(signal, 'the command sent', () => sent === 1);
      expect(r.engine.stats.has(rule.id)).toBe(true);
      await r.store.deleteRule('home1', rule.id);
      await until(signal, 'the deleted rule\'s counters dropped', () => !r.engine.stats.has(rule.id));
      answer();
      await r.settle();
      expect(r.engine.stats.has(rule.id)).toBe(false);
    } finally {
      await r.close();
    }
  });
});

describe('a home whose actor retires (the engine past maxHomes)', () => {
  it("lets go of its rules' counters and run history once they are in the store; the rule counts on when its home comes back", async ({ signal }) => {
    const r = rig(pool, Date.UTC(2024, 6, 1, 12), { maxHomes: 1 });
    try {
      const a = await r.store.createRule('home1', LAMP('home1'));
      await r.store.createRule('home2', LAMP('home2'));
      r.hubs.report('home1-hub', 'switch', { on: true });
      await r.settle();
      expect(r.engine.stats.has(a.id)).toBe(true);
      expect(r.engine.status(a.id, a.version).lastRunAt).not.toBeNull();
      // past the rule's loop window: nothing of its last run still counts
      r.advance(3_600_000);
      // a second home: the first, idle, is retired
      r.hubs.report('home2-hub', 'switch', { on: true });
      await r.settle();
      await until(signal, 'the retired home\'s counters let go', () => !r.engine.stats.has(a.id));
      expect(r.engine.status(a.id, a.version).lastRunAt).toBeNull();
      expect((await r.store.getRunStats('home1', [a.id])).get(a.id)).toMatchObject({ evaluated: 1, actionsRun: 1 });
      // back: a new actor, counting on from the store's totals
      r.hubs.report('home1-hub', 'switch', { on: false });
      await r.settle();
      await r.engine.stats.flush();
      expect((await r.store.getRunStats('home1', [a.id])).get(a.id)).toMatchObject({ evaluated: 2, actionsRun: 2 });
    } finally {
      await r.close();
    }
  });
});
