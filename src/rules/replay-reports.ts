/**
 * Reports acknowledged whose history events an unclean stop lost. A report is acknowledged once
 * its state is in the shadow's commit; its event reaches the history's file up to about 1.1 s later
 * (the history's open chunk), so a kill -9 in between loses the event and with it the state
 * triggers' run. At the start after it, each home whose rules have a state trigger is checked:
 * a device the trigger watches whose shadow version is newer than every event of it the history
 * stored gets one state event made from the shadow, replayed after the home's stored events, its
 * version the shadow's (the dedup key of the newest report lost). Its attributes are those whose
 * shadow value differs from the newest the device's stored events hold: one those events never
 * name cannot be told from a repeat and is left out, and of several reports lost only the last
 * value is seen; its `prev` is the newest value those events hold. Nothing of this is on the report path: it costs the start a read of the rules of
 * each home with a mark, and of the history and shadow of those with state triggers.
 *
 * The home also gets back, before its replay, the last values its triggers watch as its stored
 * events before its mark left them (they were memory only), so a replayed report's transition or
 * threshold sees the value before it.
 */
import type { AttrValue, Attrs } from '../../proto/frames.js';
import type { Logger } from '../log/logger.js';
import type { EvaluatedMarks, MarkedHome, UnevaluatedEntry, UnevaluatedHome } from '../ports/history/history.js';
import { decodeValue } from '../protocol/codec.js';
import { encodeStateEvent, type StateEvent } from '../protocol/state-event.js';
import type { Rule } from './model.js';

/** A device's reported side in the shadow store, as the start reads it. */
export interface ReportedDevice {
  reported: Attrs;
  reportedVersion: number;
  /** ms since the Unix epoch of its last report */
  reportedAt: number;
}

export interface LostReportsDeps {
  listRules(homeId: string): Promise<Rule[]>;
  /** a hub's devices in the shadow store (own keys only) */
  devicesOf(hubId: string): Promise<Record<string, ReportedDevice>>;
  /** the hubs of a home, for triggers on any of its devices; absent: those are not checked */
  hubsOf?(homeId: string): Promise<string[]>;
  /** the home a hub is in now: a hub moved to another home since is not checked; absent: not asked */
  homeOf?(hubId: string): Promise<string | null>;
  now(): number;
  /** a report older than this at start is not looked for (its replay would be missed anyway), ms */
  catchUpMs: number;
  log: Logger;
}

/** A value a trigger watches, as a home's stored events before its mark left it. */
export interface RememberedValue {
  hub: string;
  device: string;
  attr: string;
  value: AttrValue;
}

export interface LostReports {
  /** `homes` with the events made from the shadow after their stored ones (homes with none added) */
  homes: UnevaluatedHome[];
  /** per home replayed, the values to remember before its replay */
  remember: Map<string, RememberedValue[]>;
}

/** What a home's state triggers watch: exact devices' attributes, and attributes of any device. */
interface Watched {
  /** hub → device → attributes */
  exact: Map<string, Map<string, Set<string>>>;
  any: Set<string>;
}

/**
 * The events made from the shadow for reports the stop lost, merged into `homes` (from
 * `marks.unevaluated()`), and the values each replayed home remembers first. A home whose rules,
 * history or shadow cannot be read is skipped (a warn line): its stored events are replayed as before.
 */
export async function withLostReports(homes: UnevaluatedHome[], marks: EvaluatedMarks, deps: LostReportsDeps): Promise<LostReports> {
  const byHome = new Map(homes.map((h) => [h.homeId, h]));
  const remember = new Map<string, RememberedValue[]>();
  const marked = marks.marked?.() ?? [];
  if (!marks.stored) return { homes, remember };
  const read = marks.stored.bind(marks);
  for (const home of marked) {
    let lost: { events: UnevaluatedEntry[]; before: RememberedValue[] } | null = null;
    try {
      const watched = watchedBy(await deps.listRules(home.homeId));
      if (watched) lost = await lostOf(home, watched, read(home.homeId), deps);
    } catch (err) {
      deps.log.warn({ err, homeId: home.homeId }, 'rules: reports lost with an unclean stop not looked for in this home (its rules, history or shadow unreadable)');
    }
    if (!lost) continue;
    const { events, before } = lost;
    const replayed = byHome.get(home.homeId);
    if (events.length > 0) {
      const entries = [...(replayed?.entries ?? []), ...events];
      byHome.set(home.homeId, { ...replayed, homeId: home.homeId, entries });
    }
    if (byHome.has(home.homeId) && before.length > 0) remember.set(home.homeId, before);
  }
  return { homes: [...byHome.values()], remember };
}

/** The state triggers of enabled rules; null when there are none. */
function watchedBy(rules: readonly Rule[]): Watched | null {
  const w: Watched = { exact: new Map(), any: new Set() };
  let some = false;
  for (const rule of rules) {
    if (!rule.enabled) continue;
    for (const t of rule.triggers) {
      if (t.type !== 'state') continue;
      some = true;
      if (t.hub === undefined || t.device === undefined) w.any.add(t.attr);
      else {
        let devices = w.exact.get(t.hub);
        if (!devices) w.exact.set(t.hub, (devices = new Map()));
        let attrs = devices.get(t.device);
        if (!attrs) devices.set(t.device, (attrs = new Set()));
        attrs.add(t.attr);
      }
    }
  }
  return some ? w : null;
}

/** Whether a trigger watches this attribute of the device. */
function watches(w: Watched, hub: string, device: string, attr: string): boolean {
  return w.any.has(attr) || w.exact.get(hub)?.get(device)?.has(attr) === true;
}

/** What the stored events tell of one device: its newest version and the newest value of each attribute. */
interface DeviceSeen {
  version: number;
  values: Map<string, AttrValue>;
}

/**
 * The home's events made from the shadow (stored at its newest offset, so its mark ends there), and
 * the watched values its stored events through its mark left.
 */
async function lostOf(home: MarkedHome, w: Watched, stored: readonly UnevaluatedEntry[], deps: LostReportsDeps): Promise<{ events: UnevaluatedEntry[]; before: RememberedValue[] }> {
  const seen = new Map<string, DeviceSeen>();
  const before = new Map<string, RememberedValue>();
  for (const entry of stored) {
    const e = stateEventIn(entry.data);
    if (!e || e.home !== home.homeId) continue;
    const key = `${e.hub}/${e.device}`;
    let s = seen.get(key);
    if (!s) seen.set(key, (s = { version: 0, values: new Map() }));
    s.version = Math.max(s.version, e.version);
    for (const attr of Object.keys(e.attrs)) {
      const value = e.attrs[attr]!;
      s.values.set(attr, value);
      if (entry.offset <= home.mark && watches(w, e.hub, e.device, attr)) before.set(`${key}/${attr}`, { hub: e.hub, device: e.device, attr, value });
    }
  }
  const hubs = new Set(w.exact.keys());
  if (w.any.size > 0 && deps.hubsOf) for (const hub of await deps.hubsOf(home.homeId)) hubs.add(hub);
  const oldest = deps.now() - deps.catchUpMs;
  const events: StateEvent[] = [];
  for (const hub of hubs) {
    if (deps.homeOf && (await deps.homeOf(hub)) !== home.homeId) continue;
    const devices = await deps.devicesOf(hub);
    for (const device of Object.keys(devices)) {
      const d = devices[device]!;
      const s = seen.get(`${hub}/${device}`);
      // never stored (nothing to tell a change by), stored already, or too old to replay
      if (!s || s.version >= d.reportedVersion || d.reportedAt < oldest) continue;
      const attrs: Attrs = Object.create(null) as Attrs;
      const prev: Attrs = Object.create(null) as Attrs;
      let changed = false;
      let watched = false;
      for (const attr of Object.keys(d.reported)) {
        const value = d.reported[attr]!;
        if (!s.values.has(attr) || s.values.get(attr) === value) continue;
        attrs[attr] = value;
        prev[attr] = s.values.get(attr)!;
        changed = true;
        watched ||= watches(w, hub, device, attr);
      }
      // a plain object, as a frame's attributes are (built without a prototype: names are the hub's)
      if (changed && watched) events.push({ op: 'evt', kind: 'state', home: home.homeId, hub, device, attrs: { ...attrs }, version: d.reportedVersion, ts: d.reportedAt, prev: { ...prev } });
    }
  }
  events.sort((a, b) => a.ts - b.ts);
  return { events: events.map((e) => ({ offset: home.top, data: encodeStateEvent(e), at: e.ts })), before: [...before.values()] };
}

/** The state event stored as `data`; undefined for other kinds or bytes that do not decode. */
function stateEventIn(data: Uint8Array): StateEvent | undefined {
  try {
    const value = decodeValue(data) as StateEvent | undefined;
    return value?.kind === 'state' && typeof value.version === 'number' && typeof value.attrs === 'object' && value.attrs !== null ? value : undefined;
  } catch {
    return undefined;
  }
}
