/**
 * Reports acknowledged whose history events an unclean stop lost (replay-reports.ts): a state event
 * made from the shadow for each watched device whose shadow version is newer than every stored
 * event of it, with the attributes whose value the stored events show changed, and the watched
 * values the stored events through the mark left, for the home to remember first.
 */
import { describe, expect, it } from 'vitest';
import type { AppEventMessage } from '../../proto/app.js';
import type { Attrs } from '../../proto/frames.js';
import type { EvaluatedMarks, MarkedHome, UnevaluatedEntry, UnevaluatedHome } from '../../src/ports/history/history.js';
import { decodeValue } from '../../src/protocol/codec.js';
import { encodeStateEvent, type StateEvent } from '../../src/protocol/state-event.js';
import { withLostReports, type LostReportsDeps, type ReportedDevice } from '../../src/rules/replay-reports.js';
import type { Rule } from '../../src/rules/model.js';
import { validateRuleSpec } from '../../src/rules/validate.js';
import { createLogger } from '../../src/log/logger.js';

const T0 = Date.UTC(2024, 6, 1, 12);

function state(hub: string, device: string, attrs: Attrs, version: number, ts: number): StateEvent {
  return { op: 'evt', kind: 'state', home: 'h', hub, device, attrs, version, ts };
}

/** Marks of one home `h` through `mark`, its history `entries` (offsets 1..n). */
function marksOf(events: StateEvent[], mark: number, top = events.length): EvaluatedMarks & { read: number } {
  const entries: UnevaluatedEntry[] = events.map((e, i) => ({ offset: i + 1, data: encodeStateEvent(e), at: e.ts }));
  const found: MarkedHome[] = [{ homeId: 'h', mark, top }];
  return {
    read: 0,
    note: () => undefined,
    unevaluated: async () => [],
    marked: () => found.splice(0),
    stored(homeId: string) {
      this.read++;
      return homeId === 'h' ? entries : [];
    },
  };
}

function rule(triggers: unknown[]): Rule {
  const spec = validateRuleSpec({ name: 'r', triggers, actions: [{ type: 'notify', title: 't', body: 'b' }] });
  return { ...spec, id: 'r1', homeId: 'h', version: 1, createdAt: T0, updatedAt: T0 } as Rule;
}

function deps(rules: Rule[], shadows: Record<string, Record<string, ReportedDevice>>, extra: Partial<LostReportsDeps> = {}): LostReportsDeps {
  return {
    listRules: async () => rules,
    devicesOf: async (hub) => shadows[hub] ?? {},
    now: () => T0,
    catchUpMs: 60_000,
    log: createLogger('silent'),
    ...extra,
  };
}

const dev = (reported: Attrs, reportedVersion: number, reportedAt = T0 - 1_000): ReportedDevice => ({ reported, reportedVersion, reportedAt });
const events = (homes: UnevaluatedHome[]) => homes.flatMap((h) => h.entries.map((e) => ({ home: h.homeId, offset: e.offset, at: e.at, event: decodeValue(e.data) as AppEventMessage })));

describe('reports lost with an unclean stop', () => {
  const DOOR = rule([{ type: 'state', hub: 'hub1', device: 'door', attr: 'open', from: false, to: true }]);
  const history = [state('hub1', 'door', { open: false, battery: 90 }, 1, T0 - 20_000), state('hub1', 'door', { battery: 80 }, 2, T0 - 10_000)];

  it('makes a state event of a watched device newer in the shadow than in the history, with the attributes it changed', async () => {
    const marks = marksOf(history, 2);
    const lost = await withLostReports([], marks, deps([DOOR], { hub1: { door: dev({ open: true, battery: 80, tamper: false }, 4, T0 - 500) } }));
    // battery repeats the value stored; tamper no stored event names: left out
    expect(events(lost.homes)).toEqual([{ home: 'h', offset: 2, at: T0 - 500, event: { op: 'evt', kind: 'state', home: 'h', hub: 'hub1', device: 'door', attrs: { open: true }, version: 4, ts: T0 - 500, prev: { open: false } } }]);
    expect(lost.remember.get('h')).toEqual([{ hub: 'hub1', device: 'door', attr: 'open', value: false }]);
  });

  it('after the events stored past the mark, and remembering only what the events through the mark left', async () => {
    const stored = [state('hub1', 'door', { open: false }, 1, T0 - 20_000), state('hub1', 'door', { open: true }, 2, T0 - 10_000), state('hub1', 'door', { open: false }, 3, T0 - 5_000)];
    const past: UnevaluatedHome = { homeId: 'h', entries: stored.slice(1).map((e, i) => ({ offset: i + 2, data: encodeStateEvent(e), at: e.ts })) };
    const lost = await withLostReports([past], marksOf(stored, 1), deps([DOOR], { hub1: { door: dev({ open: true }, 4) } }));
    expect(events(lost.homes).map((e) => [e.offset, (e.event as StateEvent).version])).toEqual([
      [2, 2],
      [3, 3],
      [3, 4],
    ]);
    expect(lost.remember.get('h')).toEqual([{ hub: 'hub1', device: 'door', attr: 'open', value: false }]);
  });

  it('nothing for a device the history holds as new as the shadow, one older than the catch-up window, or a change no trigger watches', async () => {
    for (const shadow of [dev({ open: true }, 2), dev({ open: true }, 4, T0 - 61_000), dev({ open: false, battery: 70 }, 4)]) {
      const lost = await withLostReports([], marksOf(history, 2), deps([DOOR], { hub1: { door: shadow } }));
      expect(lost.homes).toEqual([]);
      expect(lost.remember.size).toBe(0);
    }
  });

  it('a home without state triggers is not read; a hub now in another home is not checked', async () => {
    const marks = marksOf(history, 2);
    const none = await withLostReports([], marks, deps([rule([{ type: 'event', hub: 'hub1', device: 'door', event: 'tamper' }])], { hub1: { door: dev({ open: true }, 4) } }));
    expect(none.homes).toEqual([]);
    expect(marks.read).toBe(0);
    const moved = await withLostReports([], marksOf(history, 2), deps([DOOR], { hub1: { door: dev({ open: true }, 4) } }, { homeOf: async () => 'elsewhere' }));
    expect(moved.homes).toEqual([]);
  });

  it('a home whose shadow cannot be read is skipped with a warn line, its stored events left as they are', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const log = createLogger('warn', {}, { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) });
    const past: UnevaluatedHome = { homeId: 'h', entries: [] };
    const lost = await withLostReports([past], marksOf(history, 2), deps([DOOR], {}, { log, devicesOf: () => Promise.reject(new Error('disk')) }));
    expect(lost.homes).toEqual([past]);
    expect(lines).toMatchObject([{ homeId: 'h', msg: 'rules: reports lost with an unclean stop not looked for in this home (its rules, history or shadow unreadable)' }]);
  });

  it('a trigger on any device checks every hub of the home', async () => {
    const any = rule([{ type: 'state', attr: 'open', to: true }]);
    const lost = await withLostReports([], marksOf(history, 2), deps([any], { hub1: { door: dev({ open: true }, 3) } }, { hubsOf: async () => ['hub1'] }));
    expect(events(lost.homes).map((e) => (e.event as StateEvent).attrs)).toEqual([{ open: true }]);
  });
});
