import type { Attrs } from '../../src/index.js';
import { plugPower, type Kind } from '../wire/devices.js';

/**
 * How simulated devices behave between reports: per kind of the catalogue (load/wire/devices.ts),
 * the attributes that change in one report interval and the events they raise, and what follows
 * from a change a command makes (a plug switched on draws power).
 */

export interface Drift {
  changes: Attrs;
  event?: { e: string; p?: Attrs };
}

type DriftFn = (cur: Attrs, rnd: () => number) => Drift;

const round1 = (x: number) => Math.round(x * 10) / 10;
const clamp = (x: number, min: number, max: number) => Math.min(max, Math.max(min, x));
const num = (a: Attrs, key: string, fallback: number) => {
  const v = a[key];
  return typeof v === 'number' ? v : fallback;
};

/** Sets `out[key]` when the value differs from the current one. */
function change(out: Attrs, cur: Attrs, key: string, value: number | boolean): void {
  if (cur[key] !== value) out[key] = value;
}

/** Battery devices lose a percent now and then. */
function drainBattery(out: Attrs, cur: Attrs, rnd: () => number): Attrs {
  if (rnd() < 0.002) change(out, cur, 'battery', Math.max(0, num(cur, 'battery', 100) - 1));
  return out;
}

/** A state that flips on its own with probability `p` per interval (someone at the wall switch). */
const flips =
  (key: string, p: number): DriftFn =>
  (cur, r) => ({ changes: r() < p ? { [key]: cur[key] !== true } : {} });

const lockFlips = flips('locked', 0.005);

const DRIFT: Record<Kind, DriftFn> = {
  'sensor.temperature': (cur, r) => {
    const changes: Attrs = {};
    change(changes, cur, 'temperature', round1(clamp(num(cur, 'temperature', 21) + (r() - 0.5) * 0.4, 10, 35)));
    if (r() < 0.3) change(changes, cur, 'humidity', clamp(num(cur, 'humidity', 45) + (r() < 0.5 ? -1 : 1), 15, 90));
    return { changes: drainBattery(changes, cur, r) };
  },
  'sensor.door': (cur, r) => {
    const changes: Attrs = r() < 0.03 ? { contact: cur.contact !== true } : {};
    return { changes: drainBattery(changes, cur, r) };
  },
  'sensor.motion': (cur, r) => {
    const changes: Attrs = {};
    let event: { e: string } | undefined;
    if (cur.motion === true) {
      if (r() < 0.5) changes.motion = false;
    } else if (r() < 0.05) {
      changes.motion = true;
      event = { e: 'motion' };
    }
    if (r() < 0.5) change(changes, cur, 'lux', Math.round(clamp(num(cur, 'lux', 200) * (0.95 + 0.1 * r()), 0, 2000)));
    drainBattery(changes, cur, r);
    return event ? { changes, event } : { changes };
  },
  switch: flips('on', 0.01),
  plug: (cur, r) => {
    const changes: Attrs = {};
    if (r() < 0.005) Object.assign(changes, plugPower(cur.on !== true, r));
    else if (cur.on === true) change(changes, cur, 'power', round1(clamp(num(cur, 'power', 60) * (0.97 + 0.06 * r()), 0.5, 3500)));
    return { changes };
  },
  curtain: (cur, r) => ({ changes: r() < 0.005 ? diff(cur, { position: [0, 50, 100][Math.floor(r() * 3)] ?? 0 }) : {} }),
  lock: (cur, r) => ({ changes: drainBattery(lockFlips(cur, r).changes, cur, r) }),
  'sensor.water_leak': (cur, r): Drift => {
    if (cur.leak === true) return { changes: drainBattery(r() < 0.2 ? { leak: false } : {}, cur, r) };
    if (r() < 0.0005) return { changes: drainBattery({ leak: true }, cur, r), event: { e: 'leak' } };
    return { changes: drainBattery({}, cur, r) };
  },
};

/** One report interval of a device of `kind` in state `cur`. */
export function drift(kind: Kind, cur: Attrs, rnd: () => number): Drift {
  return DRIFT[kind](cur, rnd);
}

/** A commanded patch with what follows from it (a plug's power when `on` changes). */
export function consequences(kind: Kind, cur: Attrs, patch: Attrs, rnd: () => number): Attrs {
  if (kind === 'plug' && typeof patch.on === 'boolean' && patch.on !== cur.on) return { ...plugPower(patch.on, rnd), ...patch };
  return patch;
}

/** The entries of `patch` whose value differs from `cur`. */
export function diff(cur: Attrs, patch: Attrs): Attrs {
  const out: Attrs = {};
  for (const k in patch) if (cur[k] !== patch[k]) out[k] = patch[k]!;
  return out;
}

export function isEmpty(o: object): boolean {
  for (const _ in o) return false;
  return true;
}
