import { describe, expect, it } from 'vitest';
import { TierError } from '../../src/errors.js';
import { validateRuleSpec, validateSceneSpec, validateSettings, validateTestRequest } from '../../src/rules/validate.js';

const base = {
  name: 'Hall light at night',
  triggers: [{ type: 'state', hub: 'hub1', device: 'hall-motion', attr: 'motion', to: true }],
  devices: { lux: { hub: 'hub1', device: 'hall-lux' } },
  conditions: ['between(time.hhmm, "22:00", "06:00")', 'dev.lux.lux < 30'],
  actions: [
    { type: 'command', hub: 'hub1', device: 'hall-light', set: { on: true } },
    { type: 'delay', ms: 300_000 },
    { type: 'command', hub: 'hub1', device: 'hall-light', set: { on: false } },
  ],
};

/** The field named by the validation error of `fn`. */
function fieldOf(fn: () => unknown): { field: string | undefined; message: string } {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(TierError);
    expect((err as TierError).code).toBe('invalid_field');
    return { field: (err as TierError).field, message: (err as TierError).message };
  }
  throw new Error('expected a validation error');
}

const rule = (patch: Record<string, unknown>) => () => validateRuleSpec({ ...base, ...patch });

describe('validateRuleSpec', () => {
  it('accepts a full rule and fills in the defaults', () => {
    const spec = validateRuleSpec(base);
    expect(spec).toMatchObject({ name: base.name, enabled: true, cooldownMs: 0, limit: { maxRuns: 20, windowMs: 60_000 } });
    expect(spec.triggers).toEqual(base.triggers);
    expect(spec.actions).toHaveLength(3);
  });

  it('ignores the server-owned keys a client sends back from a GET', () => {
    expect(validateRuleSpec({ ...base, id: 'rX', version: 3, homeId: 'h', status: {}, createdAt: 1 }).name).toBe(base.name);
  });

  it.each([
    [{ name: '' }, 'name'],
    [{ name: 'x'.repeat(101) }, 'name'],
    [{ triggers: [] }, 'triggers'],
    [{ triggers: [{ type: 'sunrise' }] }, 'triggers[0].type'],
    [{ triggers: [{ type: 'state', hub: 'hub1', attr: 'on' }] }, 'triggers[0].device'],
    [{ triggers: [{ type: 'state', attr: '' }] }, 'triggers[0].attr'],
    [{ triggers: [{ type: 'state', attr: 'lux', above: 'x' }] }, 'triggers[0].above'],
    [{ triggers: [{ type: 'state', attr: 'lux', above: 30, below: 10 }] }, 'triggers[0].below'],
    [{ triggers: [{ type: 'state', attr: 'lux', above: 30, to: 40 }] }, 'triggers[0].above'],
    // a reported null removes the attribute: no change starts from null (review automation2)
    [{ triggers: [{ type: 'state', attr: 'on', from: null }] }, 'triggers[0].from'],
    [{ triggers: [{ type: 'state', attr: 'on', too: true }] }, 'triggers[0].too'],
    [{ triggers: [{ type: 'event', event: 'double press' }] }, 'triggers[0].event'],
    [{ triggers: [{ type: 'cron', cron: '61 * * * *' }] }, 'triggers[0].cron'],
    [{ triggers: [{ type: 'cron', cron: '* * *' }] }, 'triggers[0].cron'],
    [{ triggers: [{ type: 'cron', cron: '0 0 31 2 *' }] }, 'triggers[0].cron'],
    [{ triggers: [{ type: 'cron', cron: '* * * * * *' }] }, 'triggers[0].cron'],
    [{ triggers: [{ type: 'cron', cron: '0 7 * * *', catchUpMs: -1 }] }, 'triggers[0].catchUpMs'],
    [{ devices: { '1lux': { hub: 'hub1', device: 'x' } } }, 'devices.1lux'],
    [{ devices: { lux: { hub: 'hub.1', device: 'x' } } }, 'devices.lux.hub'],
    [{ conditions: ['dev.lux.lux <'] }, 'conditions[0]'],
    [{ conditions: [42] }, 'conditions[0]'],
    [{ conditions: ['true', 'dev.temp.t > 3'] }, 'conditions[1]'],
    [{ conditions: ['dev["te"+"mp"].t > 3'] }, 'conditions[0]'],
    [{ conditions: ['"abc".matches("(a+)+$")'] }, 'conditions[0]'],
    [{ conditions: ['nosuchvar > 3'] }, 'conditions[0]'],
    [{ conditions: ['x'.repeat(1001)] }, 'conditions[0]'],
    [{ actions: [] }, 'actions'],
    [{ actions: [{ type: 'command', hub: 'hub1', device: 'l' }] }, 'actions[0].set'],
    [{ actions: [{ type: 'command', hub: 'hub1', device: 'l', set: {} }] }, 'actions[0].set'],
    [{ actions: [{ type: 'command', hub: 'hub1', device: 'l', set: { on: [1] } }] }, 'actions[0].set.on'],
    [{ actions: [{ type: 'command', hub: 'hub1', device: 'l', set: { on: true }, method: 'x' }] }, 'actions[0].method'],
    [{ actions: [{ type: 'command', hub: 'hub1', device: 'l', set: { on: true }, timeoutMs: 0 }] }, 'actions[0].timeoutMs'],
    [{ actions: [{ type: 'command', hub: 'hub1', device: 'l', set: { on: true }, timeoutMs: 60_001 }] }, 'actions[0].timeoutMs'],
    [{ actions: [{ type: 'command', hub: 'hub1', device: 'l', set: { on: true }, params: {} }] }, 'actions[0].params'],
    [{ actions: [{ type: 'command', hub: 'hub1', device: 'l', method: 'open', params: [1] }] }, 'actions[0].params'],
    [{ actions: [{ type: 'command', hub: 'hub1', device: 'l', method: 'open', params: { constructor: 1 } }] }, 'actions[0].params.constructor'],
    [{ actions: [{ type: 'command', hub: 'hub1', device: 'l', method: 'open', params: { deep: JSON.parse('[{"__proto__": 1}]') } }] }, 'actions[0].params.deep[0].__proto__'],
    [{ actions: ['close the valve'] }, 'actions[0]'],
    [{ triggers: [{ type: 'cron', cron: 5 }] }, 'triggers[0].cron'],
    [{ devices: Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`d${i}`, { hub: 'hub1', device: 'x' }])) }, 'devices'],
    [{ description: 'x'.repeat(501) }, 'description'],
    [{ actions: [{ type: 'desired', hub: 'hub1', device: 'l', desired: {} }] }, 'actions[0].desired'],
    [{ actions: [{ type: 'scene', scene: '' }] }, 'actions[0].scene'],
    [{ actions: [{ type: 'notify', title: 'Leak', body: 'at {{ dev.nope.x }}' }] }, 'actions[0].body'],
    [{ actions: [{ type: 'notify', title: '', body: 'b' }] }, 'actions[0].title'],
    [{ actions: [{ type: 'notify', title: 'Leak', body: 'at {{ }}' }] }, 'actions[0].body'],
    [{ actions: [{ type: 'notify', title: 'Leak {{}}', body: 'b' }] }, 'actions[0].title'],
    [{ actions: [{ type: 'command', hub: 'hub1', device: 'l', set: { on: true } }, { type: 'delay', ms: 10 }] }, 'actions[1]'],
    [{ actions: [{ type: 'delay', ms: 0 }, { type: 'scene', scene: 's1' }] }, 'actions[0].ms'],
    [{ cooldownMs: 1.5 }, 'cooldownMs'],
    [{ limit: { maxRuns: 0 } }, 'limit.maxRuns'],
    [{ limit: { windowMs: 10 } }, 'limit.windowMs'],
    [{ enabled: 'yes' }, 'enabled'],
    [{ condition: 'true' }, 'condition'],
  ])('%j is refused naming %s', (patch, field) => {
    const err = fieldOf(rule(patch));
    expect(err.field).toBe(field);
    expect(err.message.startsWith(`${field}: `)).toBe(true);
  });

  it('says what is wrong, not only where', () => {
    expect(fieldOf(rule({ conditions: ['dev.temp.t > 3'] })).message).toMatch(/no device alias "temp"/);
    expect(fieldOf(rule({ conditions: ['"a".matches("a")'] })).message).toMatch(/matches is not allowed/);
    expect(fieldOf(rule({ triggers: [{ type: 'cron', cron: '* * * * * *' }] })).message).toMatch(/more often than once per 60 s/);
  });

  it('the command timeout maximum is the node’s (TIER_COMMAND_TIMEOUT_MAX_MS), as on the HTTP API and the app socket', () => {
    const slow = { ...base, actions: [{ type: 'command', hub: 'hub1', device: 'l', method: 'calibrate', timeoutMs: 90_000 }] };
    expect(fieldOf(() => validateRuleSpec(slow)).message).toBe('actions[0].timeoutMs: must be an integer in 1..60000');
    expect(validateRuleSpec(slow, { maxCommandTimeoutMs: 120_000 }).actions[0]).toEqual({ type: 'command', hub: 'hub1', device: 'l', method: 'calibrate', params: {}, timeoutMs: 90_000 });
    expect(fieldOf(() => validateSceneSpec({ name: 's', commands: [{ hub: 'hub1', device: 'l', set: { on: true }, timeoutMs: 90_000 }] })).field).toBe('commands[0].timeoutMs');
  });

  it('a cron faster than the minimum passes when the option allows it (tests, private deployments)', () => {
    expect(validateRuleSpec({ ...base, triggers: [{ type: 'cron', cron: '* * * * * *' }] }, { minCronIntervalMs: 1_000 }).triggers[0]).toEqual({ type: 'cron', cron: '* * * * * *' });
  });

  it('accepts any-device triggers, thresholds, events with params, and templates that use the event', () => {
    const spec = validateRuleSpec({
      name: 'Leak',
      triggers: [
        { type: 'event', event: 'leak' },
        { type: 'state', attr: 'leak', to: true },
        { type: 'state', hub: 'hub1', device: 'temp', attr: 't', above: 28 },
        { type: 'event', hub: 'hub1', device: 'btn', event: 'press', params: { count: 2 } },
      ],
      actions: [
        { type: 'command', hub: 'hub1', device: 'valve', method: 'close' },
        { type: 'notify', title: 'Water leak', body: 'Leak at {{ event.device }} ({{ time.hhmm }})' },
      ],
    });
    expect(spec.actions[0]).toEqual({ type: 'command', hub: 'hub1', device: 'valve', method: 'close', params: {} });
    expect(spec.triggers).toHaveLength(4);
  });
});

describe('keys named like Object.prototype members', () => {
  /** A body as the HTTP API parses it: JSON.parse makes `__proto__` an own key, as a client sent it. */
  const json = (patch: string) => () => validateRuleSpec({ ...base, ...(JSON.parse(patch) as Record<string, unknown>) });

  it.each([
    ['{"__proto__": {"name": "x"}}', '__proto__'],
    ['{"constructor": {"name": "x"}}', 'constructor'],
    ['{"devices": {"__proto__": {"hub": "hub1", "device": "x"}}}', 'devices.__proto__'],
    ['{"devices": {"lux": {"hub": "hub1", "device": "x", "__proto__": {}}}}', 'devices.lux.__proto__'],
    ['{"limit": {"__proto__": {"maxRuns": 1}}}', 'limit.__proto__'],
    ['{"triggers": [{"type": "state", "attr": "on", "__proto__": {"hub": "hub2"}}]}', 'triggers[0].__proto__'],
    ['{"triggers": [{"type": "state", "attr": "__proto__"}]}', 'triggers[0].attr'],
    ['{"triggers": [{"type": "event", "event": "press", "params": {"__proto__": 1}}]}', 'triggers[0].params.__proto__'],
    ['{"actions": [{"type": "command", "hub": "hub1", "device": "l", "set": {"__proto__": true}}]}', 'actions[0].set.__proto__'],
    ['{"actions": [{"type": "command", "hub": "hub1", "device": "l", "set": {"constructor": true}}]}', 'actions[0].set.constructor'],
    ['{"actions": [{"type": "command", "hub": "hub1", "device": "l", "method": "m", "params": {"__proto__": {}}}]}', 'actions[0].params.__proto__'],
    ['{"actions": [{"type": "desired", "hub": "hub1", "device": "l", "desired": {"__proto__": 1}}]}', 'actions[0].desired.__proto__'],
  ])('%s is refused naming %s', (patch, field) => {
    const err = fieldOf(json(patch));
    expect(err.field).toBe(field);
    expect(err.message.startsWith(`${field}: `)).toBe(true);
  });

  it('a devices alias __proto__ is refused, not silently dropped (with its hub never checked)', () => {
    // it used to become the prototype of `devices`: the rule was stored without the device
    const err = fieldOf(json('{"devices": {"__proto__": {"hub": "hub1", "device": "hall-lux"}, "lux": {"hub": "hub1", "device": "hall-lux"}}}'));
    expect(err).toEqual({ field: 'devices.__proto__', message: expect.stringContaining('not __proto__') });
  });

  it('aliases and attributes named like other members (toString, constructor, valueOf) are kept as own keys', () => {
    const spec = validateRuleSpec({
      ...base,
      triggers: [{ type: 'state', hub: 'hub1', device: 'toString', attr: 'valueOf', to: true }],
      devices: { toString: { hub: 'hub1', device: 'toString' }, constructor: { hub: 'hub1', device: 'hall-lux' }, valueOf: { hub: 'hub1', device: 'v' } },
      conditions: ['dev.toString.valueOf == true && dev.constructor.lux < 30 && !has(dev.valueOf.toString)'],
      actions: [{ type: 'command', hub: 'hub1', device: 'toString', set: { toString: 'x', hasOwnProperty: 1 } }],
    });
    expect(Object.keys(spec.devices)).toEqual(['toString', 'constructor', 'valueOf']);
    expect(Object.getPrototypeOf(spec.devices)).toBe(Object.prototype);
    expect(spec.devices.constructor).toEqual({ hub: 'hub1', device: 'hall-lux' });
    expect(spec.actions[0]).toEqual({ type: 'command', hub: 'hub1', device: 'toString', set: { toString: 'x', hasOwnProperty: 1 } });
  });

  it('a condition naming an alias that is only an Object.prototype member is refused', () => {
    expect(fieldOf(rule({ devices: {}, conditions: ['dev.toString.on'] })).message).toMatch(/no device alias "toString"/);
    expect(fieldOf(rule({ devices: {}, conditions: ['dev["constructor"].on'] })).message).toMatch(/no device alias "constructor"/);
  });
});

describe('validateSceneSpec', () => {
  it('accepts commands and refuses bad ones naming the field', () => {
    const ok = validateSceneSpec({ name: 'Movie', commands: [{ hub: 'hub1', device: 'tv', set: { on: true } }, { hub: 'hub1', device: 'blinds', method: 'close' }] });
    expect(ok.enabled).toBe(true);
    expect(ok.commands).toHaveLength(2);
    expect(fieldOf(() => validateSceneSpec({ name: 'x', commands: [] })).field).toBe('commands');
    expect(fieldOf(() => validateSceneSpec({ name: 'x', commands: [{ hub: 'hub1', device: 'tv' }] })).field).toBe('commands[0].set');
    expect(fieldOf(() => validateSceneSpec({ name: 'x', commands: [{ hub: 'hub1', device: 'tv', set: { on: 1 }, extra: 1 }] })).field).toBe('commands[0].extra');
  });
});

describe('validateSettings and validateTestRequest', () => {
  it('time zones must be IANA names', () => {
    expect(validateSettings({ timeZone: 'Europe/Berlin' })).toEqual({ timeZone: 'Europe/Berlin' });
    expect(fieldOf(() => validateSettings({ timeZone: 'Mars/Base' })).field).toBe('timeZone');
  });

  it('a time zone is stored as the runtime names it, whatever its casing (each spelling would be a formatter of its own)', () => {
    expect(validateSettings({ timeZone: 'eUrope/berLin' })).toEqual({ timeZone: 'Europe/Berlin' });
    expect(validateSettings({ timeZone: 'utc' })).toEqual({ timeZone: 'UTC' });
  });

  it('a dry run takes no body, or an event naming its fields', () => {
    expect(validateTestRequest(undefined, 5)).toEqual({ prev: {}, at: 5 });
    expect(validateTestRequest({ event: { kind: 'state', hub: 'h', device: 'd', attrs: { on: true } }, prev: { on: false } }, 5)).toEqual({
      event: { kind: 'state', hub: 'h', device: 'd', attrs: { on: true }, ts: 5 },
      prev: { on: false },
      at: 5,
    });
    expect(validateTestRequest({ event: { kind: 'schedule' }, at: '1970-01-01T00:00:01Z' }, 5)).toEqual({ event: { kind: 'schedule', scheduledAt: 1000, ts: 1000 }, prev: {}, at: 1000 });
    expect(fieldOf(() => validateTestRequest({ event: { kind: 'state', hub: 'h', device: 'd' } }, 5)).field).toBe('event.attrs');
    expect(fieldOf(() => validateTestRequest({ event: { kind: 'nope' } }, 5)).field).toBe('event.kind');
  });
});
