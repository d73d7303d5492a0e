/**
 * Events stored but not evaluated when the node died: the marks a home notes as its events are
 * evaluated (HomeMark: in offset order, after the runs' first stretch), and the replay at start
 * (replay.ts, the home's `#replay`): evaluated again within the catch-up window, counted missed
 * beyond it, other events moving the mark only. Fake clock; real worker threads.
 */
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import type { AppEventMessage, HubEvent } from '../../proto/app.js';
import type { UnevaluatedHome } from '../../src/ports/history/history.js';
import { encodeBus } from '../../src/protocol/codec.js';
import { encodeStateEvent } from '../../src/protocol/state-event.js';
import { HomeMark } from '../../src/rules/home-mark.js';
import { prometheusRuleMetrics } from '../../src/rules/metrics.js';
import { validateRuleSpec } from '../../src/rules/validate.js';
import { RecordingMarks, rig, warmPool, type Rig } from './rules-fixtures.js';

const pool = warmPool();

let r: Rig;
afterEach(async () => {
  await r?.close();
});

const T0 = Date.UTC(2024, 6, 1, 12);

/** A stored entry as the history holds it (the event without its position), stored at `at`. */
function stored(offset: number, event: HubEvent, at: number) {
  const msg = { op: 'evt', ...event } as AppEventMessage;
  return { offset, data: msg.kind === 'state' ? encodeStateEvent(msg) : encodeBus(msg), at };
}

const LEAK = {
  name: 'Leak',
  triggers: [{ type: 'event', hub: 'home1-hub', device: 'sensor', event: 'alarm' }],
  actions: [{ type: 'notify', title: 'Water leak', body: 'level {{ event.params.level }}' }],
};
const alarm = (level: number, ts: number): HubEvent => ({ kind: 'event', home: 'home1', hub: 'home1-hub', device: 'sensor', event: 'alarm', params: { level }, ts });

describe('HomeMark', () => {
  it('notes offsets in order, each once the runs of its event and of every earlier one have run their first stretch', async () => {
    const marks = new RecordingMarks();
    const mark = new HomeMark(marks, 'h');
    let end2!: () => void;
    let end4!: () => void;
    const run2 = new Promise<void>((resolve) => (end2 = resolve));
    const run4 = new Promise<void>((resolve) => (end4 = resolve));
    mark.done(1);
    mark.done(2, [run2]);
    mark.done(3);
    mark.done(4, [run4]);
    expect(marks.notes).toEqual([['h', 1]]);
    end4();
    await run4;
    await new Promise((resolve) => setImmediate(resolve));
    // 4's run is through, but 2's is not: the mark may not pass 2
    expect(marks.notes).toEqual([['h', 1]]);
    end2();
    await new Promise((resolve) => setImmediate(resolve));
    expect(marks.notes).toEqual([['h', 1], ['h', 2], ['h', 4]]);
    mark.done(5);
    expect(marks.notes.at(-1)).toEqual(['h', 5]);
  });
});

describe('the rules mark live events', () => {
  it('an event that begins a run moves the mark once the run is past its first stretch; others at once', async () => {
    const marks = new RecordingMarks();
    let answer!: () => void;
    let commanded!: () => void;
    const valve = new Promise<void>((resolve) => (answer = resolve));
    const sent = new Promise<void>((resolve) => (commanded = resolve));
    r = rig(pool(), T0, { marks, runCommand: () => (commanded(), valve) });
    await r.store.createRule('home1', validateRuleSpec({ ...LEAK, actions: [{ type: 'command', hub: 'home1-hub', device: 'valve', method: 'close' }, LEAK.actions[0]] }));
    r.engine.onEvent({ kind: 'state', home: 'home1', hub: 'home1-hub', device: 'sensor', attrs: { wet: false }, version: 1, ts: T0 }, undefined, 1);
    r.engine.onEvent(alarm(3, T0), undefined, 2);
    r.engine.onEvent({ kind: 'state', home: 'home1', hub: 'home1-hub', device: 'sensor', attrs: { wet: true }, version: 2, ts: T0 }, undefined, 3);
    await sent;
    // the third event handled too (it is the next message of the home once the alarm is evaluated)
    await new Promise((resolve) => setImmediate(resolve));
    // the valve has not answered: the alarm's run is in its first action, the mark stays before it
    expect(marks.notes).toEqual([['home1', 1]]);
    answer();
    await r.settle();
    expect(marks.notes).toEqual([['home1', 1], ['home1', 3]]);
    // the mark past the run goes to disk with the next commit; the others with their chunks
    expect(marks.ran).toEqual([3]);
    expect(r.pushes).toHaveLength(1);
  });
});

describe('replay after an unclean stop', () => {
  it('evaluates the events past the mark within the catch-up window, counts older ones missed, and moves the mark past all', async () => {
    const registry = new Registry();
    const entries = [
      stored(4, { kind: 'state', home: 'home1', hub: 'home1-hub', device: 'sensor', attrs: { battery: 80 }, version: 7, ts: T0 - 130_000 }, T0 - 130_000),
      // stored 2 minutes before the start: past the 60 s window
      stored(5, alarm(1, T0 - 120_000), T0 - 120_000),
      stored(6, alarm(3, T0 - 10_000), T0 - 10_000),
      stored(7, { kind: 'online', home: 'home1', hub: 'home1-hub', node: 'n1', ts: T0 - 5_000 }, T0 - 5_000),
    ];
    const marks = new RecordingMarks([{ homeId: 'home1', entries }]);
    r = rig(pool(), T0, { marks, metrics: prometheusRuleMetrics(registry) });
    const rule = await r.store.createRule('home1', validateRuleSpec(LEAK));

    const { homes, report } = await r.engine.replayUnevaluated();
    expect(homes).toBe(1);
    expect(await report).toEqual({ homes: 1, replayed: 1, missed: 1 });
    await r.settle();
    expect(r.pushes.map((p) => p.notification)).toEqual([expect.objectContaining({ title: 'Water leak', body: 'level 3', dedupKey: `rule:${rule.id}:home1-hub:sensor:alarm:o6:${T0 - 10_000}:0` })]);
    expect(await registry.metrics()).toMatch(/tier_rule_dropped_total\{reason="missed"\} 1\n/);
    expect(r.engine.status(rule.id, rule.version).stats.lastError?.message).toMatch(/event missed after the last stop: stored 120 s before the start \(catch-up 60 s\)/);
    // the mark goes past the last stored entry, an event no rule takes included
    expect(marks.notes.at(-1)).toEqual(['home1', 7]);
    // once per start
    expect((await r.engine.replayUnevaluated()).homes).toBe(0);
  });

  it('an event evaluated before the stop and replayed after it notifies once: the push dedup key is the same', async () => {
    const marks = new RecordingMarks();
    r = rig(pool(), T0, { marks });
    await r.store.createRule('home1', validateRuleSpec(LEAK));
    r.engine.onEvent(alarm(3, T0 - 1_000), undefined, 1);
    await r.settle();
    expect(r.pushes).toHaveLength(1);
    // its mark did not reach the disk before the node died: the next start replays it
    const engine = await r.restart({ marks: new RecordingMarks([{ homeId: 'home1', entries: [stored(1, alarm(3, T0 - 1_000), T0 - 1_000)] }]) });
    expect(await (await engine.replayUnevaluated()).report).toEqual({ homes: 1, replayed: 1, missed: 0 });
    await r.settle();
    expect(r.pushes).toHaveLength(1);
  });
});

describe('the time a replayed event is evaluated at', () => {
  it("is the event's, stored before the stop, not the start's: a time window and {{ time.hhmm }} see 11:59, cooldown and stats the clock", async () => {
    // stored at 11:59:30, the node back at 12:00:10: within the catch-up window, in another minute
    const storedAt = T0 - 30_000;
    const marks = new RecordingMarks([{ homeId: 'home1', entries: [stored(1, alarm(3, storedAt), storedAt)] }]);
    r = rig(pool(), T0 + 10_000, { marks });
    const rule = await r.store.createRule('home1', validateRuleSpec({ ...LEAK, conditions: ['between(time.hhmm, "11:00", "12:00")'], actions: [{ type: 'notify', title: 'Water leak', body: 'at {{ time.hhmm }}:{{ string(int(time.second)) }}' }] }));
    expect(await (await r.engine.replayUnevaluated()).report).toEqual({ homes: 1, replayed: 1, missed: 0 });
    await r.settle();
    expect(r.pushes.map((p) => p.notification.body)).toEqual(['at 11:59:30']);
    // what the rule's runs are counted and spaced by is when they ran
    const { stats } = r.engine.status(rule.id, rule.version);
    expect(stats).toMatchObject({ matched: 1, lastEvaluatedAt: T0 + 10_000, lastRunAt: T0 + 10_000, lastError: null });
  });
});

describe('notification dedup keys: the event\'s history offset, not its version or ts', () => {
  const MOTION = { name: 'motion', triggers: [{ type: 'state', hub: 'home1-hub', device: 'motion', attr: 'motion', to: true }], actions: [{ type: 'notify', title: 'Motion', body: 'seen' }] };
  const motion = (version: number, on: boolean, ts: number) => ({ kind: 'state' as const, home: 'home1', hub: 'home1-hub', device: 'motion', attrs: { motion: on }, version, ts, prev: { motion: !on } });

  it('two alarms with the same ts (a hub whose clock is not set) notify twice; one replayed at its offset does not notify again', async () => {
    r = rig(pool(), T0, { marks: new RecordingMarks() });
    await r.store.createRule('home1', validateRuleSpec(LEAK));
    r.engine.onEvent(alarm(3, 1_000), undefined, 1);
    r.engine.onEvent(alarm(3, 1_000), undefined, 2);
    await r.settle();
    expect(r.pushes).toHaveLength(2);
    const engine = await r.restart({ marks: new RecordingMarks([{ homeId: 'home1', entries: [stored(2, alarm(3, 1_000), T0 - 1_000)] }]) });
    expect(await (await engine.replayUnevaluated()).report).toEqual({ homes: 1, replayed: 1, missed: 0 });
    await r.settle();
    expect(r.pushes).toHaveLength(2);
  });

  it('a re-paired device whose versions start again notifies again; a replay of the first report does not', async () => {
    r = rig(pool(), T0, { marks: new RecordingMarks() });
    await r.store.createRule('home1', validateRuleSpec(MOTION));
    r.engine.onEvent(motion(1, true, T0 - 5_000), undefined, 1);
    await r.settle();
    // left the hub and joined again: version 1 once more
    r.engine.onEvent(motion(1, true, T0 - 1_000), undefined, 4);
    await r.settle();
    expect(r.pushes).toHaveLength(2);
    const engine = await r.restart({ marks: new RecordingMarks([{ homeId: 'home1', entries: [stored(4, motion(1, true, T0 - 1_000), T0 - 1_000)] }]) });
    await (await engine.replayUnevaluated()).report;
    await r.settle();
    expect(r.pushes).toHaveLength(2);
  });

  it('events stored nowhere (no history, or its append failed) are never replayed: each notifies, same ts and version or not', async () => {
    r = rig(pool(), T0);
    await r.store.createRule('home1', validateRuleSpec(LEAK));
    await r.store.createRule('home1', validateRuleSpec(MOTION));
    r.engine.onEvent(alarm(3, 1_000));
    r.engine.onEvent(alarm(3, 1_000));
    r.engine.onEvent(motion(1, true, 1_000));
    await r.settle();
    r.engine.onEvent(motion(1, true, 1_000));
    await r.settle();
    expect(r.pushes).toHaveLength(4);
  });
});

describe("replay of a dead node's events (a history shared by a cluster)", () => {
  /** Marks of a shared store: `claimOrphans` answers the dead node's homes once. */
  class SharedMarks extends RecordingMarks {
    constructor(private orphans: UnevaluatedHome[]) {
      super();
    }
    async claimOrphans(): Promise<UnevaluatedHome[]> {
      const homes = this.orphans;
      this.orphans = [];
      return homes;
    }
    /** per claim whose replay was through: its home and token, and how many marks had been noted then */
    readonly through: Array<[string, string, number]> = [];
    replayed(homeId: string, taken: string): void {
      this.through.push([homeId, taken, this.notes.length]);
    }
  }

  it('evaluates the events claimed as a start does, behind the events the home already has, and moves the mark past them', async () => {
    const marks = new SharedMarks([{ homeId: 'home1', entries: [stored(4, alarm(3, T0 - 20_000), T0 - 20_000), stored(5, alarm(1, T0 - 90_000), T0 - 90_000)], taken: 'claim-1' }]);
    r = rig(pool(), T0, { marks });
    const rule = await r.store.createRule('home1', validateRuleSpec(LEAK));
    // the hub's newer event, on this node since the other died
    r.engine.onEvent(alarm(2, T0), undefined, 6);
    const { homes, report } = await r.engine.replayOrphans();
    expect(homes).toBe(1);
    expect(await report).toEqual({ homes: 1, replayed: 1, missed: 1 });
    await r.settle();
    expect(r.pushes.map((p) => p.notification.body)).toEqual(['level 2', 'level 3']);
    expect(r.pushes[1]!.notification.dedupKey).toBe(`rule:${rule.id}:home1-hub:sensor:alarm:o4:${T0 - 20_000}:0`);
    // the replay's mark comes after the newer event's: a shared store keeps the higher one
    expect(marks.notes.slice(-2)).toEqual([['home1', 6], ['home1', 5]]);
    // what was taken is let go once the replay's marks are noted, not before (review "kill9b" F3)
    expect(marks.through).toEqual([['home1', 'claim-1', marks.notes.length]]);
    // claimed once
    expect((await r.engine.replayOrphans()).homes).toBe(0);
  });

  it('does nothing with marks of one node only', async () => {
    r = rig(pool(), T0, { marks: new RecordingMarks([{ homeId: 'home1', entries: [stored(1, alarm(3, T0), T0)] }]) });
    expect((await r.engine.replayOrphans()).homes).toBe(0);
  });
});
