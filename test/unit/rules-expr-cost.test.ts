/**
 * The static cost bound of conditions and templates (src/rules/expr-cost.ts): nested macros are
 * refused at validation with `invalid_field` naming the field, ordinary rules still pass, and a
 * worker refuses a stored expression over the bound without running it.
 */
import { describe, expect, it } from 'vitest';
import { TierError } from '../../src/errors.js';
import { checkExpression, compile } from '../../src/rules/expr.js';
import { EXPR_MAX_COST, expressionCost, join, weight, type Shape } from '../../src/rules/expr-cost.js';
import { RuleEvaluator } from '../../src/rules/evaluate.js';
import { ruleOf } from '../helpers/rule.js';
import { validateRuleSpec } from '../../src/rules/validate.js';
import { HALL_LIGHT, LEAK } from '../../src/schemas/rules.js';

const LIST10 = '[0,1,2,3,4,5,6,7,8,9]';

/** `levels` nested `[0..9].exists(…)`, as the red-team probe built it (8 levels: 277 characters). */
function nested(levels: number, body = 'false'): string {
  let expr = body;
  for (let i = 0; i < levels; i++) expr = `${LIST10}.exists(v${i}, ${expr})`;
  return expr;
}

function cost(src: string): number {
  const c = expressionCost(compile(src).ast);
  if (!('cost' in c)) throw new Error(c.problem);
  return c.cost;
}

const aliases = new Set(['lux', 'x']);

function refusal(body: Record<string, unknown>): TierError {
  try {
    validateRuleSpec(body);
  } catch (err) {
    if (err instanceof TierError) return err;
    throw err;
  }
  throw new Error('expected a refusal');
}

const base = { name: 'r', triggers: [{ type: 'state', attr: 'temperature' }], devices: { x: { hub: 'hub1', device: 'd' } }, actions: [{ type: 'notify', title: 't', body: 'b' }] };

describe('the cost of an expression', () => {
  it('refuses the probe: 8 nested exists over 10 entries (10^8 iterations) is conditions[0], too costly', () => {
    const probe = nested(8);
    expect(probe).toHaveLength(277);
    expect(cost(probe)).toBeGreaterThan(1e8);
    const err = refusal({ ...base, conditions: ['true', probe].reverse() });
    expect(err).toMatchObject({ code: 'invalid_field', field: 'conditions[0]' });
    expect(err.message).toMatch(/too costly/);
    expect(err.message).toContain(`${EXPR_MAX_COST.toLocaleString('en-US')} allowed`);
  });

  it('multiplies a macro body by the entries of its range, level after level', () => {
    for (let k = 1; k < 5; k++) {
      const ratio = cost(nested(k + 1)) / cost(nested(k));
      expect(ratio).toBeGreaterThan(9);
      expect(ratio).toBeLessThan(11);
    }
    // every macro counts, not only exists
    for (const m of ['all', 'exists_one', 'filter', 'map']) expect(cost(`${LIST10}.${m}(a, ${LIST10}.${m}(b, a == b)) == true`)).toBeGreaterThan(100);
    expect(checkExpression(nested(4), aliases)).toBeNull();
    expect(checkExpression(nested(5), aliases)).toMatch(/too costly/);
  });

  it('ranges over a device with its 64-attribute bound: one level is fine, three are not', () => {
    const one = 'dev.x.exists(k, dev.x[k] == "alarm")';
    expect(cost(one)).toBeGreaterThan(64);
    expect(checkExpression(one, aliases)).toBeNull();
    expect(checkExpression('dev.x.exists(a, dev.x.exists(b, dev.x.exists(c, a + b + c == "")))', aliases)).toMatch(/too costly/);
    // a list split from an attribute: up to 1025 entries
    expect(checkExpression('dev.x.tags.split(",").exists(t, t == "kitchen")', aliases)).toBeNull();
    expect(checkExpression('dev.x.tags.split(",").exists(a, dev.x.tags.split(",").exists(b, a == b))', aliases)).toMatch(/too costly/);
  });

  it('bounds what an expression builds: lists and strings doubled by cel.bind are too costly past a few doublings', () => {
    const doubled = (init: string, times: number) => {
      let e = 'size(v0) > 0';
      for (let i = 1; i <= times; i++) e = `cel.bind(v${i - 1}, v${i} + v${i}, ${e})`;
      return `cel.bind(v${times}, ${init}, ${e})`;
    };
    expect(checkExpression(doubled(LIST10, 2), aliases)).toBeNull();
    expect(checkExpression(doubled(LIST10, 14), aliases)).toMatch(/too costly/);
    expect(checkExpression(doubled('dev.x.name', 4), aliases)).toBeNull();
    expect(checkExpression(doubled('dev.x.name', 12), aliases)).toMatch(/too costly/);
    // a big value shown whole (a template, or a condition that is not true or false) is read whole
    expect(cost(`${LIST10}.map(a, ${LIST10}.map(b, ${LIST10}))`)).toBeGreaterThan(cost(`${LIST10}.map(a, ${LIST10}.map(b, ${LIST10})).size() > 0`));
  });

  it('counts the devices of dev by the rule\'s aliases: showing all of dev is fine for two, too costly for twenty', () => {
    expect(checkExpression('dev.exists(a, a == "lux")', aliases)).toBeNull();
    expect(checkExpression('dev', aliases)).toBeNull();
    const twenty = new Set(Array.from({ length: 20 }, (_, i) => `d${i}`));
    expect(checkExpression('dev', twenty)).toMatch(/too costly/);
  });

  it('refuses a map keyed by a list or map before the type check: cel-js typed each `{v: v}` link twice the size of the last (review "rulesdos": 24 links of a 325-character condition held the node 73 s and took 2 GB)', () => {
    const chain = (link: string, n: number) => `size([1]${link.repeat(n)}) > 0`;
    for (const src of [chain('.map(v,{v:v})', 24), chain('.map(v,{dyn(v):v})', 27), chain('.map(v,cel.bind(x,v,{x:x}))', 20), '{[1]: 1}.size() > 0', "{{'a': 1}: 1}.size() > 0"]) {
      expect(checkExpression(src, aliases, { condition: true }), src).toBe('a map key must be an int, uint, bool or string, not a list or map');
    }
    // stored before the check, a worker refuses it without compiling it further
    expect(expressionCost(compile(chain('.map(v,{v:v})', 24)).ast)).toEqual({ problem: 'a map key must be an int, uint, bool or string, not a list or map' });
    expect(refusal({ ...LEAK, conditions: [chain('.map(v,{v:v})', 24)] })).toMatchObject({ code: 'invalid_field', field: 'conditions[0]' });
    // scalar keys, literal or computed, as before
    // `event.*` fields are strings or maps (its params), known at run time only (review "diff24": refused for a day)
    for (const src of ["{'a': 1, 'b': 2}.size() == 2", '{1: true}[1]', "[1,2].map(v, {string(v): v}).size() == 2", "{dev.x.name: 1}.size() == 1", '{event.device: true}[event.device]', '{event.attr: event.value}.size() == 1']) expect(checkExpression(src, aliases, { condition: true }), src).toBeNull();
  });

  it('refuses lists and maps nested deeper than 4, and optional.of (cel-js keeps each type its check meets for the process\'s life: review "exprfuzz", 3 MB a save)', () => {
    for (const src of ['[[[[[1]]]]].size() > 0', "{'a': [[[[1]]]]}.size() > 0", '[1].map(a, [[[[a]]]]).size() > 0', 'cel.bind(x, [[[1]]], [[x]]).size() > 0', '[1].map(a, [a]).map(b, [b]).map(c, [c]).map(d, [d]).map(e, [e]).size() > 0']) {
      expect(checkExpression(src, aliases, { condition: true }), src).toBe('lists and maps nest at most 4 deep');
    }
    for (const src of ['[[[[1]]]].size() > 0', "{'a': [[[1]]]}.size() > 0", 'cel.bind(x, [[1]], [[x]]).size() > 0']) expect(checkExpression(src, aliases, { condition: true }), src).toBeNull();
    expect(checkExpression('optional.of(optional.of(1)).hasValue()', aliases, { condition: true })).toMatch(/^optional\.of\(\) is not allowed/);
    expect(checkExpression('optional.ofNonZeroValue(1).hasValue()', aliases, { condition: true })).toMatch(/^optional\.ofNonZeroValue\(\) is not allowed/);
    expect(checkExpression('dev.x.?temp.orValue(0) > 20', aliases, { condition: true })).toBeNull();
  });

  it('charges size() of a string by its characters, as cel-js counts them one by one (review "exprfuzz": a 204,800-character string sized 6,400 times passed at 81,409 and ran 6 s)', () => {
    // 800 characters more: 80 steps more (a character is a tenth of one)
    expect(cost(`size("${'x'.repeat(900)}") > 0`) - cost(`size("${'x'.repeat(100)}") > 0`)).toBe(80);
    let body = 'l.all(i, l.all(j, size(s11) > 0))';
    for (let k = 11; k >= 1; k--) body = `cel.bind(s${k}, s${k - 1} + s${k - 1}, ${body})`;
    const doubled = `cel.bind(l, [${Array.from({ length: 80 }, (_, i) => i).join(',')}], cel.bind(s0, "${'x'.repeat(100)}", ${body}))`;
    expect(checkExpression(doubled, aliases, { condition: true })).toMatch(/is too costly/);
    // a list's or a map's size is its length: free as before
    expect(cost('[1,2,3].size() > 0')).toBeLessThan(20);
  });

  it('weighs and joins a shape shared by its key and its value once, not once per path (2^40 paths here)', () => {
    const chain = (leaf: Shape) => {
      let s = leaf;
      for (let i = 0; i < 40; i++) s = { chars: 0, items: 1, elem: s, key: s };
      return s;
    };
    const a = chain({ chars: 1, items: 0, elem: null, key: null });
    const b = chain({ chars: 2, items: 0, elem: null, key: null });
    // each level reads its one entry's key and value: w(n) = 1 + 2 w(n-1), the leaf 0.1 (a character)
    expect(weight(a)).toBeCloseTo(2 ** 40 - 1 + 2 ** 40 * 0.1, -3);
    expect(weight(join(a, b))).toBeCloseTo(2 ** 40 - 1 + 2 ** 40 * 0.2, -3);
    expect(join(a, a)).toBe(a);
  });

  it('refuses a function it cannot bound (json parses any shape)', () => {
    expect(checkExpression('bytes(dev.x.doc).json().size() > 0', aliases)).toMatch(/function json is not allowed/);
  });

  it('lets duration() parse a short literal only: cel-js backtracks cubically on a long run of digits', () => {
    for (const ok of ['duration("90s") > duration("1m")', 'duration("-1.5h") < duration("2h45m30s")', 'duration("300ms").getMilliseconds() == 300']) {
      expect(checkExpression(ok, aliases), ok).toBeNull();
    }
    for (const bad of [
      `duration("${'1'.repeat(800)}") > duration("1s")`,
      `[0,0,0,0,0,0,0,0,0,0].exists(x, duration("${'1'.repeat(930)}") < duration("1s"))`,
      'duration(dev.x.since) > duration("1s")',
      'duration("1s" + "0") > duration("1s")',
      'duration("1s1s1s1s1s1s1s") > duration("1s")',
    ]) {
      expect(checkExpression(bad, aliases), bad.slice(0, 60)).toMatch(/^duration\(\) takes a string literal/);
    }
  });

  it('accepts the README and API examples and ordinary conditions', () => {
    for (const body of [HALL_LIGHT, LEAK]) expect(() => validateRuleSpec(body)).not.toThrow();
    for (const c of [
      'between(time.hhmm, "22:00", "06:00")',
      'dev.lux.lux < 30',
      'time.weekday <= 5 && time.hour >= 7',
      'event.value > event.prev',
      'has(dev.x.on) && dev.x.on == true',
      'dev.x.mode in ["away", "night", "vacation"]',
      'event.attrs.exists(k, k.startsWith("temp") && event.attrs[k] > 30.0)',
      'dev.x.name.lowerAscii().contains("kitchen")',
      '[dev.x.a, dev.x.b, dev.x.c].filter(v, v > 20.0).size() >= 2',
      'timestamp(dev.x.since) < timestamp("2030-01-01T00:00:00Z")',
    ]) {
      expect(checkExpression(c, aliases), c).toBeNull();
    }
  });

  it('refuses a costly template in a notification, naming its field', () => {
    const err = refusal({ ...base, actions: [{ type: 'notify', title: 't', body: `{{ ${nested(6)} }}` }] });
    expect(err).toMatchObject({ code: 'invalid_field', field: 'actions[0].body' });
    expect(err.message).toMatch(/too costly/);
  });
});

describe('a worker and a stored expression over the bound', () => {
  it('does not run it: the rule reports the problem as its error', () => {
    // stored before the bound existed (never validated here): 10^5 iterations
    const rule = ruleOf({ homeId: 'h', name: 'heavy', triggers: [{ type: 'cron', cron: '0 0 * * *' }], conditions: ['true', nested(5)], actions: [{ type: 'notify', title: 't', body: 'b' }] });
    const result = new RuleEvaluator().evaluate({ homeId: 'h', homeVersion: 1, timeZone: 'UTC', now: 0, rules: [rule], event: { kind: 'manual', ts: 0 }, prev: {}, state: {} });
    expect(result.outcomes[0]).toMatchObject({ passed: false, actions: [] });
    expect(result.outcomes[0]?.error).toMatch(/^compile: conditions\[1\]: is too costly/);
  });

  it('does not parse a computed duration stored before it was refused: a hub could make the string any length', () => {
    const rule = ruleOf({ homeId: 'h', name: 'slow', triggers: [{ type: 'cron', cron: '0 0 * * *' }], conditions: ['duration(dev.x.s) > duration("1s")'], devices: { x: { hub: 'hub1', device: 'd' } }, actions: [{ type: 'notify', title: 't', body: 'b' }] });
    const state = { 'hub1/d': { s: '1'.repeat(2_000) } };
    const result = new RuleEvaluator().evaluate({ homeId: 'h', homeVersion: 1, timeZone: 'UTC', now: 0, rules: [rule], event: { kind: 'manual', ts: 0 }, prev: {}, state });
    expect(result.outcomes[0]).toMatchObject({ passed: false, actions: [] });
    expect(result.outcomes[0]?.error).toMatch(/^compile: conditions\[0\]: duration\(\) takes a string literal/);
  });
});
