/**
 * A dry run the pool could not answer gets a code of the error table, not `internal`: a batch that
 * overran on this rule `rule_timeout` (503, temporary), a full queue `busy`, a closing pool `draining`.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCodes } from '../../proto/errors.js';
import { TierError } from '../../src/errors.js';
import { RulePoolError, type RulePoolErrorCode, type RuleRunner } from '../../src/rules/pool.js';
import { validateRuleSpec } from '../../src/rules/validate.js';
import { HALL_LIGHT, rig, type Rig } from './rules-fixtures.js';

let r: Rig | undefined;
afterEach(async () => {
  await r?.close();
  r = undefined;
});

const refusing = (code: RulePoolErrorCode): RuleRunner => ({ evaluate: () => Promise.reject(new RulePoolError(code, `pool said ${code}`)) });

describe('dry run refused by the rule pool', () => {
  it.each([
    ['timeout', 'rule_timeout'],
    ['queue_full', 'busy'],
    ['closed', 'draining'],
  ] as const)('%s answers %s', async (poolCode, code) => {
    r = rig(refusing(poolCode), Date.UTC(2024, 6, 1, 12));
    const rule = await r.store.createRule('home1', validateRuleSpec(HALL_LIGHT));
    const err = await r.engine.dryRun('home1', rule.id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TierError);
    expect(err).toMatchObject({ code, message: `pool said ${poolCode}` });
    expect(ErrorCodes[code].http).toBe(503);
  });
});
