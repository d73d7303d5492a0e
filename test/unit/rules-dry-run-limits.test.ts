/**
 * Dry runs of one home run one at a time and within a budget of worker time (DryRunLimits): any
 * user of a home could otherwise keep the rule workers busy with dry runs of a costly rule and
 * hold every other home's automations late (the attacker red team, 2026-12-05).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { TierError } from '../../src/errors.js';
import { DryRunLimits } from '../../src/rules/dry-run-limits.js';
import type { RuleRunner } from '../../src/rules/pool.js';

type EvalResult = Awaited<ReturnType<RuleRunner['evaluate']>>;
import { validateRuleSpec } from '../../src/rules/validate.js';
import { HALL_LIGHT, rig, type Rig } from './rules-fixtures.js';

let r: Rig | undefined;
afterEach(async () => {
  await r?.close();
  r = undefined;
});

const codeOf = (err: unknown) => (err instanceof TierError ? err.code : err);

describe('dry-run limits', () => {
  it('one dry run of a home at a time: a second while the first runs is 429 rate_limited; other homes are not held', async () => {
    let clock = 0;
    const limits = new DryRunLimits(250, () => clock);
    let release: () => void = () => {};
    const first = limits.run('h1', () => new Promise<{ value: string; workerMs: number }>((resolve) => (release = () => resolve({ value: 'first', workerMs: 10 }))));
    await expect(limits.run('h1', async () => ({ value: 'second', workerMs: 1 })).catch(codeOf)).resolves.toBe('rate_limited');
    await expect(limits.run('h2', async () => ({ value: 'other home', workerMs: 1 }))).resolves.toBe('other home');
    release();
    await expect(first).resolves.toBe('first');
    await expect(limits.run('h1', async () => ({ value: 'after', workerMs: 1 }))).resolves.toBe('after');
  });

  it('past its worker time per second a home is refused until the bucket refills; a failure is charged its round trip', async () => {
    let clock = 0;
    const limits = new DryRunLimits(250, () => clock);
    await limits.run('h1', async () => ({ value: 1, workerMs: 300 }));
    await expect(limits.run('h1', async () => ({ value: 2, workerMs: 1 })).catch(codeOf)).resolves.toBe('rate_limited');
    clock += 1_000;
    // a run that fails after 400 ms (a worker timeout) costs those 400 ms
    await expect(
      limits.run('h1', async () => {
        clock += 400;
        throw new TierError('rule_timeout', 'overran');
      }).catch(codeOf),
    ).resolves.toBe('rule_timeout');
    await expect(limits.run('h1', async () => ({ value: 3, workerMs: 1 })).catch(codeOf)).resolves.toBe('rate_limited');
    clock += 1_000;
    await expect(limits.run('h1', async () => ({ value: 4, workerMs: 1 }))).resolves.toBe(4);
  });

  it('the engine holds dry runs to them: concurrent dry runs of one home, the second refused', async () => {
    let answer: (result: EvalResult) => void = () => {};
    let reached: () => void = () => {};
    const atPool = new Promise<void>((resolve) => (reached = resolve));
    const runner: RuleRunner = {
      evaluate: () =>
        new Promise<EvalResult>((resolve) => {
          answer = resolve;
          reached();
        }),
    };
    r = rig(runner, Date.UTC(2024, 6, 1, 12));
    const rule = await r.store.createRule('home1', validateRuleSpec(HALL_LIGHT));
    const first = r.engine.dryRun('home1', rule.id);
    // the first reaches the pool (it waits there) before the second is asked
    await atPool;
    await expect(r.engine.dryRun('home1', rule.id).catch(codeOf)).resolves.toBe('rate_limited');
    answer({ outcomes: [{ ruleId: rule.id, triggered: true, passed: true, actions: [], evalUs: 50 }] } as unknown as EvalResult);
    await expect(first).resolves.toMatchObject({ ruleId: rule.id, triggered: true });
  });
});
