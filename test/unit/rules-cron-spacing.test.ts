/**
 * A rule's cron triggers are spaced together, not only each alone: ten patterns 6 s apart each
 * passed the per-trigger check and the rule fired every 6 s. The save looks at the first 100
 * firings; the scheduler passes over any instant closer than the minimum to the one before. An
 * instant several triggers name is one firing, so identical patterns are accepted and fire once.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { TierError } from '../../src/errors.js';
import { MemoryLease } from '../../src/ports/lease/lease-memory.js';
import { MemoryRuleStore } from '../../src/ports/rule-store/rule-store-memory.js';
import { CronScheduler } from '../../src/rules/scheduler.js';
import { noRuleMetrics } from '../../src/rules/metrics.js';
import { validateRuleSpec } from '../../src/rules/validate.js';
import { silentLog } from './rules-fixtures.js';

const crons = (...patterns: string[]) => ({
  name: 'Chime',
  triggers: patterns.map((cron) => ({ type: 'cron', cron })),
  actions: [{ type: 'command', hub: 'hub1', device: 'chime', method: 'ring' }],
});

/** The refusal of `body`, which must be `invalid_field`. */
function refusal(body: unknown, options?: Parameters<typeof validateRuleSpec>[1]): TierError {
  try {
    validateRuleSpec(body, options);
  } catch (err) {
    expect(err).toBeInstanceOf(TierError);
    expect((err as TierError).code).toBe('invalid_field');
    return err as TierError;
  }
  throw new Error('expected a validation error');
}

describe('cron triggers of one rule, together', () => {
  it('ten triggers 6 s apart (each alone fires once a minute) are refused naming triggers', () => {
    const err = refusal(crons(...Array.from({ length: 10 }, (_, i) => `${i * 6} * * * * *`)));
    expect(err.field).toBe('triggers');
    expect(err.message).toMatch(/^triggers: triggers\[\d\] \(\d+ \* \* \* \* \*\) and triggers\[\d\] \(\d+ \* \* \* \* \*\) fire 6 s apart .* at most once per 60 s$/);
  });

  it('two triggers 30 minutes apart are accepted', () => {
    expect(validateRuleSpec(crons('0 0 * * * *', '0 30 * * * *')).triggers).toEqual([
      { type: 'cron', cron: '0 0 * * * *' },
      { type: 'cron', cron: '0 30 * * * *' },
    ]);
  });

  it('identical or overlapping triggers are accepted as they are: an instant both name is one firing', () => {
    expect(validateRuleSpec(crons('0 7 * * *', '0 7 * * *')).triggers).toHaveLength(2);
    expect(validateRuleSpec(crons('0 0 * * * *', '0 0,30 * * * *')).triggers).toHaveLength(2);
  });

  it('state and event triggers beside the crons play no part; the node’s minimum applies', () => {
    const body = { ...crons('0 * * * * *', '30 * * * * *'), triggers: [{ type: 'event', event: 'press' }, ...crons('0 * * * * *', '30 * * * * *').triggers] };
    expect(refusal(body).message).toMatch(/^triggers: triggers\[[12]\] .* and triggers\[[12]\] .* fire 30 s apart/);
    expect(validateRuleSpec(body, { minCronIntervalMs: 30_000 }).triggers).toHaveLength(3);
    // a backup's check re-applies no policy limits (data-backup-check.ts passes 0)
    expect(validateRuleSpec(crons('0 * * * * *', '1 * * * * *'), { minCronIntervalMs: 0 }).triggers).toHaveLength(2);
  });
});

describe('identical triggers through the scheduler', () => {
  let scheduler: CronScheduler | undefined;
  afterEach(async () => {
    await scheduler?.stop();
  });

  it('pass over an instant closer than the node’s minimum to the one before: a pair the save did not see meet', async () => {
    // a daily 08:00:30 beside a once-a-minute trigger meets once a day, past the save's first 100 firings
    const clock = { now: Date.UTC(2026, 0, 5, 7, 58) };
    const store = new MemoryRuleStore({ now: () => clock.now });
    await store.createRule('home1', validateRuleSpec(crons('0 * * * * *', '30 0 8 * * *'), { minCronIntervalMs: 30_000 }));
    const fired: number[] = [];
    const lease = new MemoryLease({ now: () => clock.now });
    const outcomes: string[] = [];
    const metrics = { ...noRuleMetrics, cron: (o: string) => void outcomes.push(o) };
    scheduler = new CronScheduler({ store, lease, nodeId: 'node-a', fire: async (_h, _r, at) => void fired.push(at), log: silentLog, now: () => clock.now, minIntervalMs: 60_000, metrics });
    for (let t = 0; t < 5 * 12; t++) {
      clock.now += 5_000;
      await scheduler.tick();
    }
    expect(fired.map((at) => new Date(at).toISOString().slice(11, 19))).toEqual(['07:59:00', '08:00:00', '08:01:00', '08:02:00', '08:03:00']);
    expect(scheduler.counts.missed).toBe(0);
    // the passed-over 08:00:30 is counted (tier_rule_cron_total{outcome="spaced"}), once
    expect(scheduler.counts.spaced).toBe(1);
    expect(outcomes.filter((o) => o === 'spaced')).toEqual(['spaced']);
  });

  it('fire the rule once per instant', async () => {
    const clock = { now: Date.UTC(2026, 0, 5, 6, 59) };
    const store = new MemoryRuleStore({ now: () => clock.now });
    const rule = await store.createRule('home1', validateRuleSpec(crons('0 0 * * * *', '0 0 * * * *')));
    const fired: number[] = [];
    scheduler = new CronScheduler({ store, lease: new MemoryLease({ now: () => clock.now }), nodeId: 'node-a', fire: async (_h, _r, at) => void fired.push(at), log: silentLog, now: () => clock.now });
    for (let t = 0; t < 3 * 60; t++) {
      clock.now += 60_000;
      await scheduler.tick();
    }
    expect(fired.map((at) => new Date(at).toISOString())).toEqual(['2026-01-05T07:00:00.000Z', '2026-01-05T08:00:00.000Z', '2026-01-05T09:00:00.000Z']);
    expect(scheduler.counts.fired).toBe(3);
    expect(rule.triggers).toHaveLength(2);
  });
});
