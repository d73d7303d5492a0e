/**
 * The worker-side semantics (trigger matching, conditions, time, templates, compile cache), called
 * directly: the same code the worker threads run (rules-pool and rules-engine run it on threads).
 */
import { describe, expect, it } from 'vitest';
import type { AttrValue } from '../../proto/frames.js';
import { RuleEvaluator, formattersKept, localTime, matches } from '../../src/rules/evaluate.js';
import type { EvalTask, Rule, RuleEvent, Trigger } from '../../src/rules/model.js';
import { ruleOf } from '../helpers/rule.js';

const rule = ruleOf;

const state = (attrs: Record<string, AttrValue>, device = 'dev1', hub = 'hub1'): RuleEvent => ({ kind: 'state', hub, device, attrs, ts: 0 });

function task(r: Rule, patch: Partial<EvalTask> = {}): EvalTask {
  return { homeId: 'home', homeVersion: 1, timeZone: 'UTC', now: Date.UTC(2024, 4, 15, 12, 0), rules: [r], event: state({ on: true }), prev: {}, state: {}, ...patch };
}

describe('state triggers', () => {
  const t = (patch: Partial<Extract<Trigger, { type: 'state' }>>): Trigger => ({ type: 'state', attr: 'on', ...patch });

  it('fire on a change; a repeated value does not fire; an unknown previous value counts as a change', () => {
    expect(matches(t({}), state({ on: true }), { on: false })).toBe(true);
    expect(matches(t({}), state({ on: true }), { on: true })).toBe(false);
    expect(matches(t({}), state({ on: true }), {})).toBe(true);
    expect(matches(t({}), state({ level: 3 }), {})).toBe(false);
  });

  it('to and from pick the transition; from needs a known previous value', () => {
    expect(matches(t({ to: true }), state({ on: true }), { on: false })).toBe(true);
    expect(matches(t({ to: true }), state({ on: false }), { on: true })).toBe(false);
    expect(matches(t({ from: false, to: true }), state({ on: true }), { on: false })).toBe(true);
    expect(matches(t({ from: false, to: true }), state({ on: true }), {})).toBe(false);
    expect(matches(t({ from: 'idle' }), state({ on: 'x' }), { on: 'busy' })).toBe(false);
  });

  it('thresholds fire when the value crosses into the range, not while it stays there', () => {
    const above = t({ attr: 'temp', above: 28 });
    expect(matches(above, state({ temp: 29 }), { temp: 27 })).toBe(true);
    expect(matches(above, state({ temp: 30 }), { temp: 29 })).toBe(false);
    expect(matches(above, state({ temp: 27 }), { temp: 29 })).toBe(false);
    expect(matches(above, state({ temp: 28 }), { temp: 20 })).toBe(false); // strictly above
    expect(matches(above, state({ temp: 29 }), {})).toBe(true);
    expect(matches(above, state({ temp: '29' }), { temp: 1 })).toBe(false); // numbers only
    const band = t({ attr: 'hum', above: 40, below: 60 });
    expect(matches(band, state({ hum: 50 }), { hum: 70 })).toBe(true);
    expect(matches(band, state({ hum: 65 }), { hum: 50 })).toBe(false);
  });

  it('a device-specific trigger ignores other devices; without hub/device any device matches', () => {
    const one = t({ hub: 'hub1', device: 'lamp' });
    expect(matches(one, state({ on: true }, 'lamp'), {})).toBe(true);
    expect(matches(one, state({ on: true }, 'other'), {})).toBe(false);
    expect(matches(one, state({ on: true }, 'lamp', 'hub2'), {})).toBe(false);
    expect(matches(t({}), state({ on: true }, 'anything', 'hub9'), {})).toBe(true);
  });
});

describe('event triggers', () => {
  const ev = (event: string, params: Record<string, AttrValue> = {}, device = 'btn'): RuleEvent => ({ kind: 'event', hub: 'hub1', device, event, params, ts: 0 });

  it('match the name and a subset of params', () => {
    const dbl: Trigger = { type: 'event', hub: 'hub1', device: 'btn', event: 'press', params: { count: 2 } };
    expect(matches(dbl, ev('press', { count: 2, battery: 80 }), {})).toBe(true);
    expect(matches(dbl, ev('press', { count: 1 }), {})).toBe(false);
    expect(matches(dbl, ev('hold', { count: 2 }), {})).toBe(false);
    expect(matches({ type: 'event', event: 'leak' }, ev('leak', {}, 'any-sensor'), {})).toBe(true);
    expect(matches({ type: 'event', event: 'leak' }, state({ leak: true }), {})).toBe(false);
  });
});

describe('conditions', () => {
  const ev = new RuleEvaluator();

  it('read aliased device state, the local time in the home time zone, and the event', () => {
    const r = rule({
      devices: { lux: { hub: 'hub1', device: 'lux' } },
      conditions: ['dev.lux.lux < 30', 'between(time.hhmm, "22:00", "06:00")', 'event.device == "dev1" && event.value == true'],
    });
    // 21:30 UTC is 23:30 in Berlin (summer time)
    const at = Date.UTC(2024, 6, 1, 21, 30);
    const berlin = ev.evaluate(task(r, { now: at, timeZone: 'Europe/Berlin', state: { 'hub1/lux': { lux: 12 } } }));
    expect(berlin.outcomes[0]).toMatchObject({ triggered: true, passed: true, trigger: 0 });
    const utc = ev.evaluate(task(r, { now: at, timeZone: 'UTC', state: { 'hub1/lux': { lux: 12 } } }));
    expect(utc.outcomes[0]).toMatchObject({ triggered: true, passed: false, actions: [] });
    const bright = ev.evaluate(task(r, { now: at, timeZone: 'Europe/Berlin', state: { 'hub1/lux': { lux: 300 } } }));
    expect(bright.outcomes[0]?.passed).toBe(false);
  });

  it('a condition that fails to evaluate is an error naming it, and the rule does not run', () => {
    const r = rule({ id: 'r5', devices: { lux: { hub: 'hub1', device: 'lux' } }, conditions: ['true', 'dev.lux.lux < 30'] });
    const out = ev.evaluate(task(r, { state: {} })).outcomes[0]!;
    expect(out.passed).toBe(false);
    expect(out.error).toMatch(/^conditions\[1\]: .*lux/);
    // has() guards a missing attribute
    const guarded = rule({ id: 'r2', devices: { lux: { hub: 'hub1', device: 'lux' } }, conditions: ['!has(dev.lux.lux) || dev.lux.lux < 30'] });
    expect(ev.evaluate(task(guarded)).outcomes[0]).toMatchObject({ passed: true });
  });

  it('a condition must give true or false', () => {
    const out = ev.evaluate(task(rule({ id: 'r3', conditions: ['1 + 1'] }))).outcomes[0]!;
    expect(out).toMatchObject({ passed: false });
    expect(out.error).toMatch(/conditions\[0\]: gave 2, not true or false/);
  });

  it('explain reports every condition with its value (dry run)', () => {
    const r = rule({ id: 'r4', conditions: ['time.weekday == 3', 'time.hour == 12', 'time.weekend'] });
    // 2024-05-15 is a Wednesday
    const out = ev.evaluate(task(r, { explain: true })).outcomes[0]!;
    expect(out.conditions).toEqual([
      { expr: 'time.weekday == 3', value: true },
      { expr: 'time.hour == 12', value: true },
      { expr: 'time.weekend', value: false },
    ]);
    expect(out.passed).toBe(false);
  });
});

describe('actions', () => {
  it('notify templates are filled from the event, state and time; a placeholder that fails shows ?', () => {
    const ev = new RuleEvaluator();
    const r = rule({
      triggers: [{ type: 'event', event: 'leak' }],
      devices: { valve: { hub: 'hub1', device: 'valve' } },
      actions: [
        { type: 'command', hub: 'hub1', device: 'valve', set: { open: false } },
        { type: 'notify', title: 'Water leak', body: 'Leak at {{ event.device }} at {{time.hhmm}}, valve open: {{ dev.valve.open }}, {{ dev.valve.nope }}' },
      ],
    });
    const out = ev.evaluate(task(r, { event: { kind: 'event', hub: 'hub1', device: 'bath-leak', event: 'leak', params: {}, ts: 0 }, state: { 'hub1/valve': { open: true } } })).outcomes[0]!;
    expect(out.actions).toEqual([
      { type: 'command', hub: 'hub1', device: 'valve', set: { open: false } },
      { type: 'notify', title: 'Water leak', body: 'Leak at bath-leak at 12:00, valve open: true, ?' },
    ]);
  });
});

describe('aliases and attributes named like Object.prototype members', () => {
  const ev = new RuleEvaluator();
  const evaluate = (r: Rule, patch: Partial<EvalTask> = {}) => ev.evaluate(task(r, { explain: true, ...patch })).outcomes[0]!;

  it('an alias named constructor reads its device, and the rule’s other aliases still work', () => {
    // `dev` used to be an object with an own `constructor` key, which cel-js refuses as a map:
    // every condition of the rule failed with "Unsupported type: object"
    const r = rule({
      id: 'rc',
      devices: { constructor: { hub: 'hub1', device: 'door' }, lux: { hub: 'hub1', device: 'lux' } },
      conditions: ['dev.constructor.open == false', 'dev.lux.lux < 30'],
      actions: [{ type: 'notify', title: 'Door', body: 'open: {{ dev.constructor.open }}, {{ dev }}' }],
    });
    const out = evaluate(r, { state: { 'hub1/door': { open: false }, 'hub1/lux': { lux: 12 } } });
    expect(out.error).toBeUndefined();
    expect(out.conditions).toEqual([
      { expr: 'dev.constructor.open == false', value: true },
      { expr: 'dev.lux.lux < 30', value: true },
    ]);
    expect(out.actions).toEqual([{ type: 'notify', title: 'Door', body: 'open: false, {"constructor":{"open":false},"lux":{"lux":12}}' }]);
  });

  it('an attribute named constructor (refused at the edges today) does not break conditions reading its device or event', () => {
    const r = rule({
      id: 'rk',
      triggers: [{ type: 'state', attr: 'on' }],
      devices: { lock: { hub: 'hub1', device: 'lock' } },
      conditions: ['dev.lock.locked == true && dev.lock.constructor == 1', 'event.attrs.on == true'],
      actions: [{ type: 'notify', title: 't', body: '{{ dev.lock }}' }],
    });
    const out = evaluate(r, { event: state({ on: true, constructor: 2 }), state: { 'hub1/lock': { locked: true, constructor: 1 } } });
    expect(out.error).toBeUndefined();
    expect(out).toMatchObject({ passed: true, actions: [{ body: '{"locked":true,"constructor":1}' }] });
    const press = ev.evaluate(task(rule({ id: 'rk2', triggers: [{ type: 'event', event: 'press' }], conditions: ['event.params.count == 2'] }), {
      event: { kind: 'event', hub: 'hub1', device: 'btn', event: 'press', params: { count: 2, constructor: 'x' }, ts: 0 },
    })).outcomes[0]!;
    expect(press).toMatchObject({ passed: true });
  });

  it('a stored alias __proto__ (written before aliases were validated) reads its device, not the prototype', () => {
    const devices = JSON.parse('{"__proto__": {"hub": "hub1", "device": "door"}}') as Rule['devices'];
    const r = rule({ id: 'rp', devices, conditions: ['dev.__proto__.open == true'], actions: [{ type: 'notify', title: 'x', body: '{{ dev }}' }] });
    const out = evaluate(r, { state: { 'hub1/door': { open: true } } });
    expect(out.conditions).toEqual([{ expr: 'dev.__proto__.open == true', value: true }]);
    expect(out.actions).toEqual([{ type: 'notify', title: 'x', body: '{"__proto__":{"open":true}}' }]);
  });

  it('an alias toString of a device without reported state has no attributes, like any other alias', () => {
    const r = rule({ id: 'rt', devices: { toString: { hub: 'hub1', device: 'ts' }, lux: { hub: 'hub1', device: 'lux' } }, conditions: ['!has(dev.toString.on)', '!has(dev.lux.on)'] });
    expect(evaluate(r, { state: {} })).toMatchObject({ passed: true, conditions: [{ value: true }, { value: true }] });
    const read = evaluate(rule({ id: 'rt2', devices: { toString: { hub: 'hub1', device: 'ts' } }, conditions: ['dev.toString.on'] }), { state: {} });
    expect(read.error).toBe('conditions[0]: No such key: on');
  });

  it('an attribute valueOf never reported is no value: has() is false, reading it fails as for any missing attribute', () => {
    const state = { 'hub1/light': { on: true } };
    const devices = { light: { hub: 'hub1', device: 'light' } };
    expect(evaluate(rule({ id: 'rv', devices, conditions: ['!has(dev.light.valueOf)', '!("toString" in dev.light)', '!has(event.attrs.hasOwnProperty)'] }), { state })).toMatchObject({ passed: true });
    const read = evaluate(rule({ id: 'rv2', devices, conditions: ['dev.light.valueOf == 1'] }), { state });
    expect(read.error).toBe('conditions[0]: No such key: valueOf');
    const missing = evaluate(rule({ id: 'rv3', devices, conditions: ['dev.light.level == 1'] }), { state });
    expect(missing.error).toBe('conditions[0]: No such key: level');
    // a template shows ? for it, as for any attribute that cannot be read
    const t = evaluate(rule({ id: 'rv4', devices, actions: [{ type: 'notify', title: '{{ dev.light.valueOf }}', body: '{{ dev.light.toString }}|{{ dev.light.on }}' }] }), { state });
    expect(t.actions).toEqual([{ type: 'notify', title: '?', body: '?|true' }]);
  });

  it('state and event triggers on attributes named like members fire on own values only', () => {
    const t: Trigger = { type: 'state', attr: 'toString' };
    expect(matches(t, state({ on: true }), {})).toBe(false);
    expect(matches(t, state({ toString: 1 }), {})).toBe(true);
    expect(matches(t, state({ toString: 1 }), { toString: 1 })).toBe(false);
    const e: Trigger = { type: 'event', event: 'press', params: { valueOf: 2 } };
    const press = (params: Record<string, AttrValue>): RuleEvent => ({ kind: 'event', hub: 'hub1', device: 'btn', event: 'press', params, ts: 0 });
    expect(matches(e, press({}), {})).toBe(false);
    expect(matches(e, press({ valueOf: 2 }), {})).toBe(true);
    // event.value and event.prev of a trigger on such an attribute are its own values
    const r = rule({ id: 'rs', triggers: [t], conditions: ['event.value == 1 && event.prev == null'] });
    expect(evaluate(r, { event: state({ toString: 1 }) })).toMatchObject({ passed: true });
  });
});

describe('compile cache', () => {
  it('compiles a rule once per version and drops a home’s rules when the home version moves', () => {
    const ev = new RuleEvaluator();
    const r = rule({ conditions: ['true'] });
    expect(ev.evaluate(task(r)).compiled).toBe(1);
    expect(ev.evaluate(task(r)).compiled).toBe(0);
    expect(ev.evaluate(task({ ...r, version: 2 }, { homeVersion: 1 })).compiled).toBe(1);
    expect(ev.evaluate(task({ ...r, version: 2 }, { homeVersion: 2 })).compiled).toBe(1);
    expect(ev.evaluate(task({ ...r, version: 2 }, { homeVersion: 2 })).compiled).toBe(0);
  });

  it('keeps at most maxHomes homes, least recently used out first', () => {
    const ev = new RuleEvaluator({ maxHomes: 2 });
    for (const h of ['a', 'b', 'a', 'c']) ev.evaluate(task(rule(), { homeId: h }));
    expect(ev.cachedHomes).toBe(2);
    expect(ev.evaluate(task(rule(), { homeId: 'a' })).compiled).toBe(0);
    expect(ev.evaluate(task(rule(), { homeId: 'b' })).compiled).toBe(1);
  });
});

describe('localTime', () => {
  it('gives the wall clock of the zone, with daylight saving', () => {
    expect(localTime(Date.UTC(2024, 0, 15, 6, 5), 'Europe/Berlin')).toMatchObject({ hour: 7, minute: 5, hhmm: '07:05', weekday: 1, weekend: false, date: '2024-01-15' });
    expect(localTime(Date.UTC(2024, 6, 15, 6, 5), 'Europe/Berlin')).toMatchObject({ hour: 8, hhmm: '08:05' });
    expect(localTime(Date.UTC(2024, 0, 14, 23, 30), 'UTC')).toMatchObject({ hour: 23, weekday: 7, weekend: true });
    expect(localTime(Date.UTC(2024, 0, 14, 23, 30), 'Asia/Tokyo')).toMatchObject({ hour: 8, weekday: 1, date: '2024-01-15' });
  });

  it('keeps a bounded number of formatters, however many spellings of a zone a store holds', () => {
    // 2,000 casings of one zone, each a valid name to Intl
    const letters = 'europe/berlin';
    for (let n = 0; n < 2000; n++) {
      const zone = [...letters].map((c, i) => ((n >> i) & 1 ? c.toUpperCase() : c)).join('');
      expect(localTime(Date.UTC(2024, 0, 15, 6, 5), zone).hour).toBe(7);
    }
    expect(formattersKept()).toBeGreaterThan(0);
    expect(formattersKept()).toBeLessThanOrEqual(1024);
  });
});
