/**
 * `between()` compares clock times, not text (windows across midnight with one-digit hours), its
 * literal arguments are checked at save, and conditions that can never be true or false, or compare
 * a time string with a number, are refused at save.
 */
import { describe, expect, it } from 'vitest';
import { TierError } from '../../src/errors.js';
import { compile } from '../../src/rules/expr.js';
import { validateRuleSpec } from '../../src/rules/validate.js';

const run = (src: string, hhmm: string) => compile(src)({ time: { hhmm }, dev: new Map(), event: {} });

function refusal(conditions: string[]): { field: string | undefined; message: string } | null {
  try {
    validateRuleSpec({ name: 'r', triggers: [{ type: 'event', event: 'x' }], devices: { a: { hub: 'h', device: 'd' } }, conditions, actions: [{ type: 'notify', title: 't', body: 'b' }] });
    return null;
  } catch (err) {
    expect(err).toBeInstanceOf(TierError);
    expect((err as TierError).code).toBe('invalid_field');
    return { field: (err as TierError).field, message: (err as TierError).message };
  }
}

describe('between()', () => {
  it('wraps past midnight when the window is written with a one-digit hour', () => {
    const night = 'between(time.hhmm, "22:00", "6:00")';
    expect(['21:59', '22:00', '23:10', '00:00', '05:59', '06:00', '12:00'].map((t) => run(night, t))).toEqual([false, true, true, true, true, false, false]);
  });

  it('reads one-digit hours as times in a window within the day too', () => {
    const morning = 'between(time.hhmm, "6:30", "9:00")';
    expect(['06:29', '06:30', '08:59', '09:00', '10:00'].map((t) => run(morning, t))).toEqual([false, true, true, false, false]);
  });

  it('holds nothing when both bounds are equal', () => {
    expect(run('between(time.hhmm, "07:00", "07:00")', '07:00')).toBe(false);
  });

  it('fails the condition, not compares text, for a computed argument that is no time', () => {
    expect(() => compile('between(time.hhmm, dev.a.x, "06:00")')({ time: { hhmm: '23:00' }, dev: new Map([['a', { x: '22h' }]]), event: {} })).toThrow(/"22h" is not a time of day/);
  });

  it('refuses literal arguments that are no time of day at save', () => {
    for (const bad of ['"22h"', '"24:00"', '"7:60"', '"noon"', '""']) {
      const r = refusal([`between(time.hhmm, ${bad}, "06:00")`]);
      expect(r?.field).toBe('conditions[0]');
      expect(r?.message).toMatch(/not a time of day/);
    }
    expect(refusal(['between(time.hhmm, "22:00", "6:00")', 'between(time.hhmm, "00:00", "23:59")'])).toBeNull();
  });
});

describe('condition types at save', () => {
  it.each([
    ['1 + 2', /gives int, not a bool/],
    ['"yes"', /gives string, not a bool/],
    ['time.hhmm', /gives string, not a bool/],
    ['time.hhmm > 22', /no such overload: string > int/],
    ['time.hourr == 1', /No such key: hourr/],
    ['time.weekday == "Mon"', /no such overload: int == string/],
    ['time.hour > "22"', /no such overload: int > string/],
  ])('refuses %s', (src, why) => {
    const r = refusal([src]);
    expect(r?.field).toBe('conditions[0]');
    expect(r?.message).toMatch(why);
  });

  it('accepts what is known only at run time and the time numbers with int or double literals', () => {
    const ok = ['dev.a.on', 'dev.a.t > 3', 'time.hour >= 22', 'time.hour == 22', 'time.hour == 22.0', 'time.minute < 30.0', 'time.weekday == 7', 'time.hour in [22, 23]', 'int(time.hour) % 2 == 0', 'time.weekend', 'time.hhmm >= "22:00"'];
    for (const src of ok) expect(refusal([src]), src).toBeNull();
    // and each runs on the workers' environment, where time's numbers are doubles
    const time = { hour: 22, minute: 5, second: 0, hhmm: '22:05', weekday: 7, weekend: true };
    expect(ok.map((src) => compile(src)({ time, dev: new Map([['a', { on: true, t: 4 }]]), event: {} }))).toEqual(ok.map(() => true));
  });

  it('a backup\'s rules (strictExpressions: false) are checked as before these checks: an older node accepted them', () => {
    const old = { name: 'r', triggers: [{ type: 'event', event: 'x' }], conditions: ['1 + 2', 'between(time.hhmm, "22h", "6:00")', 'time.weekday == "Mon"'], actions: [{ type: 'notify', title: 't', body: 'b' }] };
    expect(validateRuleSpec(old, { strictExpressions: false }).conditions).toEqual(old.conditions);
    expect(() => validateRuleSpec({ ...old, conditions: ['1 +'] }, { strictExpressions: false })).toThrow(TierError);
  });

  it('keeps templates free to give any type', () => {
    expect(() =>
      validateRuleSpec({ name: 'r', triggers: [{ type: 'event', event: 'x' }], actions: [{ type: 'notify', title: '{{ time.hhmm }}', body: '{{ 1 + 2 }}' }] }),
    ).not.toThrow();
  });
});
