/**
 * Runs a clean stop cuts short (review "restart" F1, then "diff21"): a run stopped by the close
 * within an action, or whose command fails for the stop once the drain began (`session_closed` as
 * its hub is told to go, `hub_offline` once the close ends its wait), keeps its actions from that one
 * as a pending run due at once; the restarted engine runs them once, with the same notification
 * keys, and the home's mark moves on (no event is evaluated twice). Events the homes had queued,
 * or that came after the close, are owed a replay. Fake clock and timer wheel; real worker threads.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { HubEvent } from '../../proto/app.js';
import type { CommandSpec } from '../../src/actors/commands.js';
import { CommandError } from '../../src/errors.js';
import type { EvaluatedMarks, UnevaluatedHome } from '../../src/ports/history/history.js';
import { MemoryPendingRuns } from '../../src/ports/pending-runs/pending-runs-memory.js';
import { LmdbPendingRuns } from '../../src/ports/pending-runs/pending-runs-lmdb.js';
import { openDataStore } from '../../src/ports/lmdb.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeBus } from '../../src/protocol/codec.js';
import { validateRuleSpec, validateSceneSpec } from '../../src/rules/validate.js';
import { RecordingMarks, rig, warmPool, type Rig } from './rules-fixtures.js';

const pool = warmPool();

let r: Rig;
afterEach(async () => {
  await r?.close();
});

const T0 = Date.UTC(2024, 6, 1, 12);

/** The hub as the test drives it: each command waits until the test answers or fails it. */
class HeldHub {
  readonly sent: string[] = [];
  #pending: Array<{ ok: (v: unknown) => void; fail: (e: Error) => void }> = [];
  #waiters: Array<() => void> = [];
  /** answer at once from now on (the hub is back) */
  answering = false;
  /** no session holds the hub: commands fail `hub_offline`, unsent */
  away = false;
  readonly runCommand = (_hub: string, _device: string, spec: CommandSpec): Promise<unknown> => {
    if (this.away && !this.answering) return Promise.reject(new CommandError('hub_offline', 'hub home1-hub is not connected'));
    this.sent.push('method' in spec ? spec.method : JSON.stringify(spec));
    for (const w of this.#waiters.splice(0)) w();
    if (this.answering) return Promise.resolve({ ok: true });
    return new Promise((ok, fail) => this.#pending.push({ ok, fail }));
  };
  /** resolves once `n` commands were sent */
  async sentCount(n: number): Promise<void> {
    while (this.sent.length < n) await new Promise<void>((resolve) => this.#waiters.push(resolve));
  }
  answer(): void {
    this.#pending.shift()!.ok({ ok: true });
  }
  fail(code: 'session_closed' | 'hub_offline' | 'command_failed' | 'command_timeout', options?: { hubMoving?: boolean }): void {
    this.#pending.shift()!.fail(new CommandError(code, code, options));
  }
}

const alarm = (offset: number): [HubEvent, undefined, number] => [{ kind: 'event', home: 'home1', hub: 'home1-hub', device: 'sensor', event: 'alarm', params: { level: 3 }, ts: T0 }, undefined, offset];
const LEAK = {
  name: 'Leak',
  triggers: [{ type: 'event', hub: 'home1-hub', device: 'sensor', event: 'alarm' }],
  actions: [
    { type: 'command', hub: 'home1-hub', device: 'valve', method: 'close' },
    { type: 'notify', title: 'Water leak', body: 'level {{ event.params.level }}' },
  ],
};

async function leakRig(actions: unknown[] = LEAK.actions) {
  const hub = new HeldHub();
  const marks = new RecordingMarks();
  const runs = new MemoryPendingRuns();
  r = rig(pool(), T0, { marks, pendingRuns: runs, runCommand: hub.runCommand, closeWaitMs: 600_000 });
  const rule = await r.store.createRule('home1', validateRuleSpec({ ...LEAK, actions }));
  return { hub, marks, runs, rule };
}

/** The kept pending runs: from which plan index, due when, and their actions' kinds (commands by method). */
async function kept(runs: MemoryPendingRuns) {
  return (await runs.load()).map((p) => ({ ruleId: p.ruleId, offset: p.offset, dueAt: p.dueAt, actions: p.actions.map((a) => (a.type === 'command' && 'method' in a ? a.method : a.type)) }));
}

/** A restart of the node half a second later: its engine closed, a new one over the same stores; the hub answers now. */
async function restart(hub: HeldHub) {
  hub.answering = true;
  r.clock.now += 500;
  const engine = await r.restart();
  const resumed = await engine.resumePending();
  await r.settle();
  return resumed;
}

describe('a run the stop cuts short keeps the actions from the one cut', () => {
  it('a command answered session_closed in the drain: the run stops there and the restarted engine runs it and what follows once, the notification under its key', async () => {
    const { hub, marks, runs, rule } = await leakRig();
    r.engine.onEvent(...alarm(1));
    await hub.sentCount(1);
    r.engine.draining();
    hub.fail('session_closed');
    await r.settle();
    // stopped: its notification waits with its command for the next start
    expect(r.pushes).toHaveLength(0);
    expect(await kept(runs)).toEqual([{ ruleId: rule.id, dueAt: T0, offset: 0, actions: ['close', 'notify'] }]);
    // the event is done with: its mark moves, nothing is owed (it is not evaluated again)
    expect(marks.notes).toEqual([['home1', 1]]);

    expect(await restart(hub)).toMatchObject({ late: 1, missed: 0 });
    expect(hub.sent).toEqual(['close', 'close']);
    expect(r.pushes.map((p) => p.notification.dedupKey)).toEqual([expect.stringMatching(new RegExp(`^rule:${rule.id}:.*:1$`))]);
    expect(runs.size).toBe(0);
    expect(marks.owed).toBe(0);
  });

  it("a command the drain moved away unanswered (`mv`) whose wait for the hub runs out before the rules close: still the stop's, kept (review diff23 F2: it failed hub_offline and the run went on)", async () => {
    const hub = new HeldHub();
    const runs = new MemoryPendingRuns();
    r = rig(pool(), T0, { marks: new RecordingMarks(), pendingRuns: runs, runCommand: hub.runCommand, closeWaitMs: 600_000, hubWaitMs: 300 });
    await r.store.createRule('home1', validateRuleSpec(LEAK));
    r.engine.onEvent(...alarm(1));
    await hub.sentCount(1);
    r.engine.draining();
    // the drain told the hub to go: embedded, it cannot come back to this node before the restart
    hub.away = true;
    hub.fail('session_closed', { hubMoving: true });
    // the rest of the drain before the rules close outlasts the wait
    await new Promise((resolve) => setTimeout(resolve, 700));
    await r.settle();
    expect(r.pushes).toHaveLength(0);
    expect((await kept(runs)).map((k) => k.actions)).toEqual([['close', 'notify']]);
    await restart(hub);
    expect(hub.sent).toEqual(['close', 'close']);
  });

  it.each([
    ["a device's own failure in the drain", true, 'command_failed'],
    ['a command answered session_closed before the drain', false, 'session_closed'],
    // its wait for the hub ran out: it would have failed without the drain (review "diff22" S5)
    ['a command answered hub_offline in the drain', true, 'hub_offline'],
  ] as const)("%s is not the stop's: the run goes on and ends, nothing kept", async (_name, drain, code) => {
    const { hub, runs } = await leakRig();
    r.engine.onEvent(...alarm(1));
    await hub.sentCount(1);
    if (drain) r.engine.draining();
    hub.fail(code);
    await r.settle();
    expect(r.pushes).toHaveLength(1);
    expect(runs.size).toBe(0);
  });

  it('a run the close stops within its command (never answered) keeps it; its mark moves once kept; a cut before a delay runs its tail once (diff21 F3)', async () => {
    const actions = [
      { type: 'command', hub: 'home1-hub', device: 'light', method: 'on' },
      { type: 'delay', ms: 2_000 },
      { type: 'command', hub: 'home1-hub', device: 'light', method: 'toggle' },
    ];
    const { hub, marks, runs } = await leakRig(actions);
    r.engine.onEvent(...alarm(1));
    await hub.sentCount(1);
    const closed = r.engine.close();
    // kept while the command waits: the mark does not wait for its answer
    await expect.poll(() => marks.notes).toEqual([['home1', 1]]);
    expect(await kept(runs)).toEqual([expect.objectContaining({ offset: 0, actions: ['on', 'delay', 'toggle'] })]);
    // no answer within its timeout: the run stops all the same, the command kept
    hub.fail('command_timeout');
    await closed;
    expect(await kept(runs)).toEqual([expect.objectContaining({ offset: 0, actions: ['on', 'delay', 'toggle'] })]);
    expect(marks.owed).toBe(0);

    expect(await restart(hub)).toMatchObject({ late: 1 });
    r.advance(2_000);
    await r.settle();
    expect(hub.sent).toEqual(['on', 'on', 'toggle']);
  });

  it("a scene whose command the drain moved away unanswered (`mv`) waits for the hub with its run; the close keeps the scene whole, and the next start runs it again (at least once)", async () => {
    const hub = new HeldHub();
    const runs = new MemoryPendingRuns();
    r = rig(pool(), T0, { marks: new RecordingMarks(), pendingRuns: runs, runCommand: hub.runCommand, closeWaitMs: 600_000, hubWaitMs: 60_000 });
    const scene = await r.store.createScene('home1', validateSceneSpec({ name: 'Leak', commands: [{ hub: 'home1-hub', device: 'valve', method: 'close' }, { hub: 'home1-hub', device: 'pump', method: 'stop' }] }));
    await r.store.createRule('home1', validateRuleSpec({ ...LEAK, actions: [{ type: 'scene', scene: scene.id }, LEAK.actions[1]] }));
    r.engine.onEvent(...alarm(1));
    await hub.sentCount(2);
    r.engine.draining();
    hub.answer();
    hub.away = true;
    hub.fail('session_closed', { hubMoving: true });
    await new Promise((resolve) => setTimeout(resolve, 50));
    // neither failed nor gone on: the run waits for the hub
    expect(r.pushes).toHaveLength(0);
    expect(await kept(runs)).toEqual([]);
    // kept at the close (due then): the restarted engine arms it, due at once
    expect(await restart(hub)).toMatchObject({ armed: 1, missed: 0, failed: 0 });
    expect(hub.sent).toEqual(['close', 'stop', 'close', 'stop']);
    expect(r.pushes).toHaveLength(1);
  });

  it('a command the close kept its run from, answered ok within the close\'s wait: the kept run goes on after it (after its delay, or from the next action), or is gone when it was the last (diff22)', async () => {
    /** The rule's run closed within its first command, kept, then that command answered ok before the close ended. */
    const answeredInClose = async (actions?: unknown[]) => {
      const rigged = await leakRig(actions);
      r.engine.onEvent(...alarm(1));
      await rigged.hub.sentCount(1);
      const closed = r.engine.close();
      await expect.poll(() => kept(rigged.runs)).toEqual([expect.objectContaining({ offset: 0 })]);
      rigged.hub.answer();
      await closed;
      return rigged;
    };
    const withDelay = await answeredInClose([
      { type: 'command', hub: 'home1-hub', device: 'light', method: 'on' },
      { type: 'delay', ms: 2_000 },
      { type: 'command', hub: 'home1-hub', device: 'light', method: 'toggle' },
    ]);
    expect(await kept(withDelay.runs)).toEqual([expect.objectContaining({ offset: 2, dueAt: T0 + 2_000, actions: ['toggle'] })]);
    expect(await restart(withDelay.hub)).toMatchObject({ armed: 1 });
    r.advance(2_000);
    await r.settle();
    expect(withDelay.hub.sent).toEqual(['on', 'toggle']);
    await r.close();

    const leak = await answeredInClose();
    expect(await kept(leak.runs)).toEqual([expect.objectContaining({ offset: 1, actions: ['notify'] })]);
    await restart(leak.hub);
    expect(leak.hub.sent).toEqual(['close']);
    expect(r.pushes.map((p) => p.notification.dedupKey)).toEqual([expect.stringMatching(/:1$/)]);
    await r.close();

    const last = await answeredInClose([LEAK.actions[0]]);
    expect(last.runs.size).toBe(0);
  });

  it("over LMDB (the default store), a command answered while the close's keep is being written: passed once the keep is committed, not sent again (review diff24)", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cut-by-stop-'));
    const data = openDataStore(dir, { sync: 'os' });
    try {
      const hub = new HeldHub();
      const runs = new LmdbPendingRuns(data);
      r = rig(pool(), T0, { marks: new RecordingMarks(), pendingRuns: runs, runCommand: hub.runCommand, closeWaitMs: 600_000 });
      await r.store.createRule('home1', validateRuleSpec({ ...LEAK, actions: [LEAK.actions[0]] }));
      r.engine.onEvent(...alarm(1));
      await hub.sentCount(1);
      // the hub's answer arrives as the keep's put is issued, before it commits
      const save = runs.save.bind(runs);
      runs.save = (run) => {
        const written = save(run);
        runs.save = save;
        hub.answer();
        return written;
      };
      await r.engine.close();
      expect(await runs.load()).toEqual([]);
      await restart(hub);
      expect(hub.sent).toEqual(['close']);
    } finally {
      await r.close();
      await data.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a command after a delay that fails for the stop is kept from that command (diff21 F4)', async () => {
    const actions = [{ type: 'delay', ms: 1_000 }, ...LEAK.actions];
    const { hub, runs, rule } = await leakRig(actions);
    r.engine.onEvent(...alarm(1));
    await r.settle();
    r.advance(1_000);
    await hub.sentCount(1);
    r.engine.draining();
    hub.fail('session_closed');
    await r.settle();
    expect(await kept(runs)).toEqual([{ ruleId: rule.id, dueAt: T0 + 1_000, offset: 1, actions: ['close', 'notify'] }]);
    expect(await restart(hub)).toMatchObject({ late: 1 });
    expect(hub.sent).toEqual(['close', 'close']);
    expect(r.pushes.map((p) => p.notification.dedupKey)).toEqual([expect.stringMatching(/:2$/)]);
  });
});

describe("events the rules' close leaves unevaluated are owed a replay", () => {
  it('those a home had queued; a close that leaves nothing owes nothing', async () => {
    const { hub, marks } = await leakRig([LEAK.actions[1]]);
    r.engine.onEvent(...alarm(1));
    await r.settle();
    await r.engine.close();
    expect(marks.owed).toBe(0);
    expect(hub.sent).toEqual([]);

    const later = await leakRig([LEAK.actions[1]]);
    // the home loads its rules for the first: the others wait in its mailbox, and the close drops them
    for (let n = 1; n <= 3; n++) r.engine.onEvent(...alarm(n));
    await r.engine.close();
    expect(later.marks.owed).toBe(1);
    expect(later.marks.notes.every(([, offset]) => offset < 3)).toBe(true);
  });

  it('one stored while the rules close', async () => {
    const { marks } = await leakRig([LEAK.actions[1]]);
    const closed = r.engine.close();
    r.engine.onEvent(...alarm(1));
    await closed;
    expect(marks.owed).toBe(1);
  });

  it("a dead node's events claimed while the rules close (review \"diff21\" F5)", async () => {
    let release!: () => void;
    const marks = new RecordingMarks();
    // the claim script has taken the dead node's marks; its reads of their events are in flight
    const claiming: EvaluatedMarks = Object.assign(marks, {
      claimOrphans: () => new Promise<UnevaluatedHome[]>((resolve) => (release = () => resolve([{ homeId: 'home1', entries: [{ offset: 4, data: encodeBus({ op: 'evt', ...alarm(4)[0] }), at: T0 }] }]))),
    });
    r = rig(pool(), T0, { marks: claiming });
    await r.store.createRule('home1', validateRuleSpec({ ...LEAK, actions: [LEAK.actions[1]] }));
    const claimed = r.engine.replayOrphans();
    const closed = r.engine.close();
    // answered after a close that did not wait for it would have passed its last look
    await new Promise((resolve) => setTimeout(resolve, 100));
    release();
    await claimed;
    await closed;
    expect(marks.owed).toBe(1);
  });

  it('one whose evaluation the pool failed while the rules closed (the pool closing under it)', async () => {
    const marks = new RecordingMarks();
    let fail!: (err: Error) => void;
    let asked!: () => void;
    const evaluating = new Promise<void>((resolve) => (asked = resolve));
    const runner = { evaluate: () => (asked(), new Promise<never>((_, reject) => (fail = reject))) };
    r = rig(runner, T0, { marks });
    await r.store.createRule('home1', validateRuleSpec(LEAK));
    r.engine.onEvent(...alarm(1));
    await evaluating;
    const closed = r.engine.close();
    fail(new Error('the pool closed'));
    await closed;
    expect(marks.notes).toEqual([]);
    expect(marks.owed).toBe(1);
  });

  it('a run begun while the close waited, its command out: kept before the close ends', async () => {
    const hub = new HeldHub();
    const marks = new RecordingMarks();
    const memory = new MemoryPendingRuns();
    // a store that takes a while: the close must wait for the keep, not only start it
    const runs = Object.assign(Object.create(memory) as MemoryPendingRuns, { save: (run: Parameters<MemoryPendingRuns['save']>[0]) => new Promise<void>((resolve) => setTimeout(() => void memory.save(run).then(resolve), 50)) });
    let asked!: () => void;
    const evaluating = new Promise<void>((resolve) => (asked = resolve));
    const pooled = pool();
    const runner = { evaluate: (...args: Parameters<typeof pooled.evaluate>) => (asked(), pooled.evaluate(...args)) };
    r = rig(runner, T0, { marks, pendingRuns: runs, runCommand: hub.runCommand, closeWaitMs: 200 });
    await r.store.createRule('home1', validateRuleSpec(LEAK));
    r.engine.onEvent(...alarm(1));
    await evaluating;
    // closing before the evaluation comes back: its run begins after the close's first look
    await r.engine.close();
    expect(hub.sent).toEqual(['close']);
    expect(await kept(memory)).toEqual([expect.objectContaining({ offset: 0, actions: ['close', 'notify'] })]);
  });

  it('a run the close did not wait for, its actions not kept (no pending-runs store)', async () => {
    const hub = new HeldHub();
    const marks = new RecordingMarks();
    r = rig(pool(), T0, { marks, runCommand: hub.runCommand, closeWaitMs: 50 });
    await r.store.createRule('home1', validateRuleSpec(LEAK));
    r.engine.onEvent(...alarm(1));
    await hub.sentCount(1);
    await r.engine.close();
    expect(marks.notes).toEqual([]);
    expect(marks.owed).toBe(1);
  });
});
