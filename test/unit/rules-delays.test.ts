/**
 * Delays across a restart: a run parked in a delay is saved in the PendingRuns store, and a new
 * engine over the same stores (a restarted node) resumes it at its due time, at once within the
 * catch-up window, or reports it missed. Fake clock and timer wheel; real worker threads.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { openDataStore } from '../../src/ports/lmdb.js';
import type { PendingRun, PendingRuns } from '../../src/ports/pending-runs/pending-runs.js';
import { LmdbPendingRuns } from '../../src/ports/pending-runs/pending-runs-lmdb.js';
import { MemoryPendingRuns } from '../../src/ports/pending-runs/pending-runs-memory.js';
import { prometheusRuleMetrics } from '../../src/rules/metrics.js';
import type { Rule } from '../../src/rules/model.js';
import { validateRuleSpec } from '../../src/rules/validate.js';
import { HALL_LIGHT, rig, warmPool, type Rig } from './rules-fixtures.js';

const pool = warmPool();

let r: Rig;
afterEach(async () => {
  await r?.close();
});

const T0 = Date.UTC(2024, 6, 1, 21);
const ON = 'hall-light:{"set":{"on":true}}';
const OFF = 'hall-light:{"set":{"on":false}}';
/** motion → light on, 5 min, off; no conditions */
const HALL = { ...HALL_LIGHT, conditions: [] };

/** A PendingRuns that counts the calls made to it. */
class CountingRuns implements PendingRuns {
  readonly durable = false;
  calls = 0;
  constructor(readonly inner: PendingRuns = new MemoryPendingRuns()) {}
  save(run: PendingRun) {
    this.calls++;
    return this.inner.save(run);
  }
  remove(ruleId: string, runId: string) {
    this.calls++;
    return this.inner.remove(ruleId, runId);
  }
  holds(ruleId: string, runId: string) {
    this.calls++;
    return this.inner.holds(ruleId, runId);
  }
  load() {
    return this.inner.load();
  }
  close() {
    return this.inner.close();
  }
}

async function motion(): Promise<void> {
  r.hubs.report('home1-hub', 'hall-motion', { motion: false });
  r.hubs.report('home1-hub', 'hall-motion', { motion: true });
  await r.settle();
}

/** A rig with `runs`, the hall rule, and one motion: the light is on and the "off" waits 5 min. */
async function lightOn(runs: PendingRuns, deps: Parameters<typeof rig>[2] = {}, spec: object = HALL): Promise<Rule> {
  r = rig(pool(), T0, { pendingRuns: runs, ...deps });
  const rule = await r.store.createRule('home1', validateRuleSpec(spec));
  await motion();
  expect(r.hubs.sent()).toEqual([ON]);
  return rule;
}

describe('delays survive a restart', () => {
  it('the rest of a run is saved before the delay waits, and a restarted engine runs it at its due time', async () => {
    const runs = new MemoryPendingRuns();
    const rule = await lightOn(runs);
    expect(await runs.load()).toEqual([
      expect.objectContaining({ homeId: 'home1', ruleId: rule.id, ruleVersion: rule.version, dueAt: T0 + 300_000, offset: 2, actions: [{ type: 'command', hub: 'home1-hub', device: 'hall-light', set: { on: false } }] }),
    ]);
    r.advance(100_000);
    const engine = await r.restart();
    expect(await engine.resumePending()).toEqual({ armed: 1, late: 0, missed: 0, dropped: 0, failed: 0 });
    expect(engine.status(rule.id, rule.version).waiting).toBe(true);
    // a second call changes nothing: the run it would find is this engine's own
    expect(await engine.resumePending()).toEqual({ armed: 0, late: 0, missed: 0, dropped: 0, failed: 0 });
    expect(runs.size).toBe(1);
    r.advance(199_000);
    await r.settle();
    expect(r.hubs.sent()).toEqual([ON]);
    r.advance(1_100);
    await r.settle();
    // once: the first engine's run stopped at its close
    expect(r.hubs.sent()).toEqual([ON, OFF]);
    expect(runs.size).toBe(0);
    expect(engine.status(rule.id, rule.version)).toMatchObject({ waiting: false, stats: { actionsRun: 1 } });
  });

  it('without a store, a restart forgets the delay (the memory-only behaviour)', async () => {
    r = rig(pool(), T0);
    await r.store.createRule('home1', validateRuleSpec(HALL));
    await motion();
    const engine = await r.restart();
    expect(await engine.resumePending()).toEqual({ armed: 0, late: 0, missed: 0, dropped: 0, failed: 0 });
    r.advance(301_000);
    await r.settle();
    expect(r.hubs.sent()).toEqual([ON]);
  });

  it('past due within the catch-up window: runs at once at start', async () => {
    const runs = new MemoryPendingRuns();
    await lightOn(runs);
    r.advance(330_000); // down through the due time: 30 s late
    const engine = await r.restart();
    expect(await engine.resumePending()).toEqual({ armed: 0, late: 1, missed: 0, dropped: 0, failed: 0 });
    await r.settle();
    expect(r.hubs.sent()).toEqual([ON, OFF]);
    expect(r.hubs.commands.at(-1)!.at).toBe(T0 + 330_000);
    expect(runs.size).toBe(0);
  });

  it('past the catch-up window: reported missed (metric, rule status), removed, not run; the window is configurable', async () => {
    const registry = new Registry();
    const runs = new MemoryPendingRuns();
    const rule = await lightOn(runs, { metrics: prometheusRuleMetrics(registry) });
    r.advance(361_000); // 61 s late: past the default 60 s
    const engine = await r.restart();
    expect(await engine.resumePending()).toEqual({ armed: 0, late: 0, missed: 1, dropped: 0, failed: 0 });
    r.advance(10_000);
    await r.settle();
    expect(r.hubs.sent()).toEqual([ON]);
    expect(runs.size).toBe(0);
    expect(await registry.metrics()).toMatch(/tier_rule_dropped_total\{reason="missed"\} 1\n/);
    expect(engine.status(rule.id, rule.version).stats.lastError?.message).toMatch(/^delay missed: due 2024-07-01T21:05:00.000Z, 61 s late/);
    await r.close();

    // the same lateness within a wider window runs
    const again = new MemoryPendingRuns();
    await lightOn(again, { delayCatchUpMs: 120_000 });
    r.advance(361_000);
    expect(await (await r.restart()).resumePending()).toMatchObject({ late: 1, missed: 0 });
    await r.settle();
    expect(r.hubs.sent()).toEqual([ON, OFF]);
  });

  it('a new run supersedes the waiting one: one entry, the newer due time, one "off"', async () => {
    const runs = new MemoryPendingRuns();
    await lightOn(runs);
    const [first] = await runs.load();
    r.advance(120_000);
    await motion();
    const saved = await runs.load();
    expect(saved).toHaveLength(1);
    expect(saved[0]).toMatchObject({ dueAt: T0 + 420_000 });
    expect(saved[0]!.runId).not.toBe(first!.runId);
    // restarted, and motion again before the restored run's due time: the newer run wins
    r.advance(100_000);
    await (await r.restart()).resumePending();
    await motion();
    expect((await runs.load()).map((p) => p.dueAt)).toEqual([T0 + 520_000]);
    r.advance(200_100); // past the restored run's due time, not the newer one's
    await r.settle();
    expect(r.hubs.sent().filter((c) => c === OFF)).toEqual([]);
    r.advance(100_000);
    await r.settle();
    expect(r.hubs.sent().filter((c) => c === OFF)).toEqual([OFF]);
    expect(runs.size).toBe(0);
  });

  it('a newer run of the rule on another node (the shared entry replaced) ends the waiting run at its delay: its "off" is the newer run\'s to send', async () => {
    const registry = new Registry();
    const runs = new MemoryPendingRuns();
    await lightOn(runs, { metrics: prometheusRuleMetrics(registry) });
    const [mine] = await runs.load();
    // motion on a hub of the home connected to another node: that node's run saves its own wait
    r.advance(120_000);
    const theirs = { ...mine!, runId: 'run-on-node-b', dueAt: T0 + 420_000 };
    await runs.save(theirs);
    r.advance(181_000); // past this node's due time
    await r.settle();
    expect(r.hubs.sent()).toEqual([ON]);
    expect(await runs.load()).toEqual([theirs]);
    expect(await registry.metrics()).toMatch(/tier_rule_runs_cancelled_total\{reason="superseded"\} 1\n/);
  });

  it('disabling or deleting the rule removes its entry; a rule disabled while the node was down is not resumed', async () => {
    const runs = new MemoryPendingRuns();
    const rule = await lightOn(runs);
    await r.store.setRuleEnabled('home1', rule.id, false);
    await r.settle();
    expect(runs.size).toBe(0);

    await r.store.setRuleEnabled('home1', rule.id, true);
    await motion();
    expect(runs.size).toBe(1);
    await r.store.deleteRule('home1', rule.id);
    await r.settle();
    expect(runs.size).toBe(0);

    const other = await r.store.createRule('home1', validateRuleSpec(HALL));
    await motion();
    expect((await runs.load()).map((p) => p.ruleId)).toEqual([other.id]);
    await r.engine.close();
    await r.store.setRuleEnabled('home1', other.id, false); // while down
    const engine = await r.restart();
    expect(await engine.resumePending()).toEqual({ armed: 0, late: 0, missed: 0, dropped: 1, failed: 0 });
    expect(runs.size).toBe(0);
    r.advance(301_000);
    await r.settle();
    expect(r.hubs.sent().filter((c) => c === OFF)).toEqual([]);
  });

  it('editing the rule cancels its waiting run: the old plan does not act, its entry goes; the new plan runs at the next trigger', async () => {
    const runs = new MemoryPendingRuns();
    const rule = await lightOn(runs);
    const edited = { ...HALL, actions: [HALL.actions[0]!, { type: 'delay', ms: 20_000 }, { type: 'command', hub: 'home1-hub', device: 'hall-light2', set: { on: false } }] };
    await r.store.updateRule('home1', rule.id, validateRuleSpec(edited));
    await r.settle();
    expect(runs.size).toBe(0);
    expect(r.engine.status(rule.id, rule.version + 1).waiting).toBe(false);
    r.advance(301_000);
    await r.settle();
    expect(r.hubs.sent()).toEqual([ON]);
    await motion();
    r.advance(21_000);
    await r.settle();
    expect(r.hubs.sent()).toEqual([ON, ON, 'hall-light2:{"set":{"on":false}}']);
  });

  it('a rule edited while the node was down: its saved run is dropped at start; edited while a restored run waits: it ends at its due time without acting', async () => {
    const runs = new MemoryPendingRuns();
    const rule = await lightOn(runs);
    await r.engine.close();
    await r.store.updateRule('home1', rule.id, validateRuleSpec({ ...HALL, name: 'renamed' })); // while down
    let engine = await r.restart();
    expect(await engine.resumePending()).toEqual({ armed: 0, late: 0, missed: 0, dropped: 1, failed: 0 });
    expect(runs.size).toBe(0);

    await motion();
    expect(runs.size).toBe(1);
    engine = await r.restart();
    expect((await engine.resumePending()).armed).toBe(1);
    // no event to the home since the start: the store's change notice is the only news of the edit
    await r.store.updateRule('home1', rule.id, validateRuleSpec({ ...HALL, name: 'renamed again' }));
    r.advance(301_000);
    await r.settle();
    expect(r.hubs.sent().filter((c) => c === OFF)).toEqual([]);
    expect(runs.size).toBe(0);
  });

  it('a rule disabled while a restored run waits, with no event to its home since the start: the run ends at its due time without acting', async () => {
    const runs = new MemoryPendingRuns();
    const rule = await lightOn(runs);
    await (await r.restart()).resumePending();
    await r.store.setRuleEnabled('home1', rule.id, false);
    r.advance(301_000);
    await r.settle();
    expect(r.hubs.sent()).toEqual([ON]);
    expect(runs.size).toBe(0);
  });

  it('an entry whose rule cannot be read is left for the next start; the others resume', async () => {
    const runs = new MemoryPendingRuns();
    const rule = await lightOn(runs);
    const other = await r.store.createRule('home1', validateRuleSpec({ ...HALL, name: 'Other' }));
    await motion();
    expect(runs.size).toBe(2);
    const engine = await r.restart();
    const read = r.store.getRule.bind(r.store);
    r.store.getRule = async (homeId, ruleId) => {
      if (ruleId === rule.id) throw new Error('store down');
      return read(homeId, ruleId);
    };
    expect(await engine.resumePending()).toEqual({ armed: 1, late: 0, missed: 0, dropped: 0, failed: 1 });
    expect(engine.status(other.id, other.version).waiting).toBe(true);
    expect((await runs.load()).map((p) => p.ruleId).sort()).toEqual([rule.id, other.id].sort());
  });

  it('a notification after a delay keeps its dedup key across a restart', async () => {
    const runs = new MemoryPendingRuns();
    const spec = { ...HALL, actions: [...HALL.actions, { type: 'notify', title: 'Hall', body: 'light off' }] };
    const rule = await lightOn(runs, {}, spec);
    const [saved] = await runs.load();
    await (await r.restart()).resumePending();
    r.advance(300_100);
    await r.settle();
    expect(r.hubs.sent()).toEqual([ON, OFF]);
    expect(r.pushes.map((p) => p.notification.dedupKey)).toEqual([`${saved!.dedupBase}:3`]);
    expect(saved!.dedupBase).toMatch(new RegExp(`^rule:${rule.id}:`));
  });

  it('a run without a delay never touches the store', async () => {
    const runs = new CountingRuns();
    r = rig(pool(), T0, { pendingRuns: runs });
    await r.store.createRule('home1', validateRuleSpec({ ...HALL, actions: [HALL.actions[0]!, HALL.actions[2]!] }));
    await motion();
    await motion();
    expect(r.hubs.sent()).toHaveLength(4);
    expect(runs.calls).toBe(0);
  });

  it('over LMDB: the store closed and opened again between the two engines', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hubtier-delays-engine-'));
    let data = openDataStore(dir, { sync: 'os' });
    try {
      await lightOn(new LmdbPendingRuns(data));
      await r.engine.close();
      await data.close();
      data = openDataStore(dir, { sync: 'os' });
      const runs = new LmdbPendingRuns(data);
      r.advance(299_000);
      const engine = await r.restart({ pendingRuns: runs });
      expect(await engine.resumePending()).toMatchObject({ armed: 1 });
      r.advance(1_100);
      await r.settle();
      expect(r.hubs.sent()).toEqual([ON, OFF]);
      expect(await runs.load()).toEqual([]);
    } finally {
      await r.close();
      await data.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
