import type { Attrs, DeviceInfo } from '../../src/index.js';

/**
 * The one catalogue of sub-device kinds that simulated hubs carry: kind and model as the hub's
 * device list names them, the attributes a kind reports (with plausible starting values) and the
 * ones a `set` may change. The simulator drifts them (load/sim/physics.ts); the load tool reports
 * their starting state once per session.
 */

export type AttrSpec = { type: 'boolean' } | { type: 'number'; min: number; max: number };

export interface KindSpec {
  kind: string;
  model: string;
  /** attributes a `set` may change */
  writable: Readonly<Record<string, AttrSpec>>;
  /** starting state; `rnd` in [0, 1) spreads the values (a constant gives a fixed state) */
  init(rnd: () => number): Attrs;
}

const round1 = (x: number) => Math.round(x * 10) / 10;
/** a battery between 60 and 100 % */
const battery = (r: () => number) => Math.round(60 + 40 * r());

/** Attributes that follow from `on` for a plug: no power drawn when off. */
export function plugPower(on: boolean, rnd: () => number): Attrs {
  return { on, power: on ? round1(5 + 145 * rnd()) : 0 };
}

export const KINDS = [
  {
    kind: 'sensor.temperature',
    model: 'TH-200',
    writable: {},
    init: (r) => ({ temperature: round1(18 + 6 * r()), humidity: Math.round(35 + 25 * r()), battery: battery(r) }),
  },
  { kind: 'sensor.door', model: 'DW-10', writable: {}, init: (r) => ({ contact: true, battery: battery(r) }) },
  { kind: 'sensor.motion', model: 'PIR-3', writable: {}, init: (r) => ({ motion: false, lux: Math.round(50 + 450 * r()), battery: battery(r) }) },
  { kind: 'switch', model: 'SW-1', writable: { on: { type: 'boolean' } }, init: (r) => ({ on: r() < 0.5 }) },
  { kind: 'plug', model: 'PLG-16', writable: { on: { type: 'boolean' } }, init: (r) => ({ ...plugPower(r() < 0.5, r), energy: round1(20 * r()) }) },
  { kind: 'curtain', model: 'CM-2', writable: { position: { type: 'number', min: 0, max: 100 } }, init: (r) => ({ position: r() < 0.5 ? 0 : 100, moving: false }) },
  { kind: 'lock', model: 'LK-5', writable: { locked: { type: 'boolean' } }, init: (r) => ({ locked: true, battery: battery(r) }) },
  { kind: 'sensor.water_leak', model: 'WL-1', writable: {}, init: (r) => ({ leak: false, battery: battery(r) }) },
] as const satisfies readonly KindSpec[];

export type Kind = (typeof KINDS)[number]['kind'];

/** Device `j` of a hub: ids `dev-0`, `dev-1`, ..., kinds in catalogue order, round and round. */
export function deviceAt(j: number): { id: string; spec: KindSpec & { kind: Kind } } {
  return { id: `dev-${j}`, spec: KINDS[j % KINDS.length]! };
}

/** The device list of a hub with `n` devices, as the devices frame carries it. */
export function deviceList(n: number): DeviceInfo[] {
  return Array.from({ length: n }, (_, j) => {
    const { id, spec } = deviceAt(j);
    return { d: id, k: spec.kind, m: spec.model };
  });
}

/** A `set` checked against the kind's writable attributes: the patch, or why it is refused. */
export function setPatch(id: string, spec: KindSpec, params: Record<string, unknown>): Attrs | string {
  const patch: Attrs = {};
  for (const [k, v] of Object.entries(params)) {
    const attr = Object.hasOwn(spec.writable, k) ? spec.writable[k] : undefined;
    if (!attr) return `${spec.kind} ${id} has no writable attribute ${k}`;
    if (attr.type === 'boolean') {
      if (typeof v !== 'boolean') return `${k} must be a boolean`;
    } else if (typeof v !== 'number' || !Number.isFinite(v) || v < attr.min || v > attr.max) return `${k} must be a number in ${attr.min}..${attr.max}`;
    patch[k] = v;
  }
  return patch;
}

/** `patch` over `base`, nil removing an attribute (as the server merges reports); why not, if a value is not a scalar. */
export function mergeAttrs(base: Attrs | undefined, patch: Readonly<Record<string, unknown>>): Attrs | string {
  const out: Attrs = { ...base };
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out[k] = v;
    else return `attribute ${k} must be a scalar`;
  }
  return out;
}
