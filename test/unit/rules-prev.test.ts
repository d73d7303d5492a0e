/**
 * Transitions and thresholds read the value before a report from the state event's `prev` (the
 * shadow's, told by the hub session), not from what this engine happened to see: a rule created
 * after the device's last report, or an engine restarted since, still sees the change. The
 * engine's memory stays the fallback for events stored before `prev` existed.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Attrs } from '../../proto/frames.js';
import { validateRuleSpec } from '../../src/rules/validate.js';
import { rig, warmPool, type Rig } from './rules-fixtures.js';

const pool = warmPool();

let r: Rig;
afterEach(async () => {
  await r?.close();
});

const T0 = Date.UTC(2024, 6, 1, 12);
const HUB = 'home1-hub';
let version = 0;

/** A state event as the hub session publishes it; `prev` undefined: an event stored before the field existed. */
function report(device: string, attrs: Attrs, prev?: Attrs): void {
  const event = { kind: 'state' as const, home: 'home1', hub: HUB, device, attrs, version: ++version, ts: r.clock.now };
  r.engine.onEvent(prev === undefined ? event : { ...event, prev });
}

/** A rule sending `on` to `light` when its trigger fires. */
async function rule(trigger: object, light: string): Promise<void> {
  await r.store.createRule('home1', validateRuleSpec({ name: light, triggers: [{ type: 'state', hub: HUB, ...trigger }], actions: [{ type: 'command', hub: HUB, device: light, set: { on: true } }] }));
}

const fired = (light: string) => r.hubs.sent().filter((c) => c.startsWith(`${light}:`)).length;

describe('the value before a report, from the state event', () => {
  it('from/to fires at the first change after the rule is created and after a restart; a first value ever does not match `from`', async () => {
    r = rig(pool(), T0);
    await rule({ device: 'door', attr: 'open', from: false, to: true }, 'porch');
    report('door', { open: true }, { open: false });
    await r.settle();
    expect(fired('porch')).toBe(1);

    report('door', { open: false }, { open: true });
    await r.restart();
    report('door', { open: true }, { open: false });
    await r.settle();
    expect(fired('porch')).toBe(2);

    // a repeated value is not in `prev`: unchanged, not fired, whatever else the report changed
    report('door', { open: true, battery: 80 }, { battery: 81 });
    await r.settle();
    expect(fired('porch')).toBe(2);
    // the device's first report of the attribute: nothing before it, `from` does not match
    await rule({ device: 'door2', attr: 'open', from: false, to: true }, 'porch2');
    report('door2', { open: true }, { open: null });
    await r.settle();
    expect(fired('porch2')).toBe(0);
  });

  it('a threshold fires on a crossing only: not for a value already below it, after a restart neither; on a first value in range it does', async () => {
    r = rig(pool(), T0);
    await rule({ device: 'thermo', attr: 'temp', below: 18 }, 'heater');
    report('thermo', { temp: 16.5 }, { temp: 17 });
    await r.restart();
    report('thermo', { temp: 16.8 }, { temp: 16.5 });
    await r.settle();
    expect(fired('heater')).toBe(0);

    report('thermo', { temp: 19 }, { temp: 16.8 });
    report('thermo', { temp: 17.5 }, { temp: 19 });
    await r.settle();
    expect(fired('heater')).toBe(1);

    await rule({ device: 'thermo2', attr: 'temp', below: 18 }, 'heater2');
    report('thermo2', { temp: 12 }, { temp: null });
    await r.settle();
    expect(fired('heater2')).toBe(1);
  });

  it('an event without `prev` (stored before it existed) is judged by the values this engine saw', async () => {
    r = rig(pool(), T0);
    await rule({ device: 'door', attr: 'open', from: false, to: true }, 'porch');
    report('door', { open: false });
    report('door', { open: true });
    await r.settle();
    expect(fired('porch')).toBe(1);
  });
});
