/**
 * Save-time warnings for state triggers that the device's reported state says can never fire: a
 * device the hub has not reported, an attribute the device has not reported, `to`/`from` of another
 * type than the attribute's value, `above`/`below` on a value that is no number. Warnings, not
 * refusals: a device may not have reported yet, or may report the attribute later.
 */
import type { AttrValue, Attrs } from '../../proto/frames.js';
import { deviceKey, type DeviceRef, type RuleSpec } from './model.js';

export interface RuleWarning {
  /** the path of the value warned about: `triggers[0].attr` */
  field: string;
  message: string;
}

const kind = (v: AttrValue): string => (v === null ? 'null' : typeof v);

/** The devices the state triggers of `spec` name (those with a hub and device). */
export function triggerDevices(spec: RuleSpec): DeviceRef[] {
  const out: DeviceRef[] = [];
  for (const t of spec.triggers) if (t.type === 'state' && t.hub !== undefined && t.device !== undefined) out.push({ hub: t.hub, device: t.device });
  return out;
}

/** Warnings for `spec`'s state triggers, given the reported state of `triggerDevices(spec)` by `deviceKey`. */
export function triggerWarnings(spec: RuleSpec, state: Readonly<Record<string, Attrs>>): RuleWarning[] {
  const out: RuleWarning[] = [];
  spec.triggers.forEach((t, i) => {
    if (t.type !== 'state' || t.hub === undefined || t.device === undefined) return;
    const key = deviceKey(t.hub, t.device);
    const attrs = Object.hasOwn(state, key) ? state[key]! : undefined;
    if (attrs === undefined) {
      out.push({ field: `triggers[${i}].device`, message: `hub ${t.hub} has reported no device ${t.device} (yet): the trigger fires once it reports "${t.attr}"` });
      return;
    }
    if (!Object.hasOwn(attrs, t.attr)) {
      const known = Object.keys(attrs).slice(0, 20).join(', ');
      out.push({ field: `triggers[${i}].attr`, message: `device ${t.device} has reported no attribute "${t.attr}" (it has: ${known || 'none'})` });
      return;
    }
    const now = kind(attrs[t.attr]!);
    for (const side of ['to', 'from'] as const) {
      const want = t[side];
      if (want !== undefined && now !== 'null' && kind(want) !== now) {
        out.push({ field: `triggers[${i}].${side}`, message: `${JSON.stringify(want)} is a ${kind(want)}, "${t.attr}" is a ${now} (${JSON.stringify(attrs[t.attr])}): values of another type never match` });
      }
    }
    if ((t.above !== undefined || t.below !== undefined) && now !== 'number' && now !== 'null') {
      out.push({ field: `triggers[${i}].${t.above !== undefined ? 'above' : 'below'}`, message: `"${t.attr}" is a ${now} (${JSON.stringify(attrs[t.attr])}), not a number: a threshold never fires` });
    }
  });
  return out;
}
