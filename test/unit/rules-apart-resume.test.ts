/**
 * A run kept apart (overdue when a newer run of its rule saved: its node died, or stalled) is
 * resumed, or goes on, beside the newer run, ends at its next delay and leaves nothing stored. Until review "diff27" its next save
 * went over the rule's entry: the newer run found its entry replaced and ended, its actions lost,
 * and the overdue entry was never removed (the next start ran it again).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { PendingRun, PendingRuns } from '../../src/ports/pending-runs/pending-runs.js';
import { MemoryPendingRuns } from '../../src/ports/pending-runs/pending-runs-memory.js';
import { validateRuleSpec } from '../../src/rules/validate.js';
import { HALL_LIGHT, rig, warmPool, type Rig } from './rules-fixtures.js';

const pool = warmPool();
let r: Rig;
afterEach(async () => {
  await r?.close();
});
const T0 = Date.UTC(2024, 6, 1, 21);
const SPEC = {
  ...HALL_LIGHT,
  conditions: [],
  actions: [
    { type: 'command', hub: 'home1-hub', device: 'hall-light', set: { on: true } },
    { type: 'delay', ms: 60_000 },
    { type: 'command', hub: 'home1-hub', device: 'hall-light', set: { on: false } },
    { type: 'delay', ms: 60_000 },
    { type: 'command', hub: 'home1-hub', device: 'hall-fan', set: { on: true } },
  ],
};

/** A shared store seen by node B; claimOrphans hands it node A's entries. */
class Shared implements PendingRuns {
  readonly durable = false;
  constructor(readonly inner = new MemoryPendingRuns()) {}
  save(run: PendingRun) { return this.inner.save(run); }
  remove(ruleId: string, runId: string, dedupBase?: string) { return this.inner.remove(ruleId, runId, dedupBase); }
  holds(ruleId: string, runId: string, dedupBase?: string) { return this.inner.holds(ruleId, runId, dedupBase); }
  load() { return Promise.resolve([] as PendingRun[]); }
  async claimOrphans() { return (await this.inner.load()).filter((p) => p.runId.startsWith('node-a')); }
  close() { return this.inner.close(); }
}

async function motion(): Promise<void> {
  r.hubs.report('home1-hub', 'hall-motion', { motion: false });
  r.hubs.report('home1-hub', 'hall-motion', { motion: true });
  await r.settle();
}

describe('a run resumed past due beside a newer run of its rule', () => {
  it('the resumed overdue run does not replace the newer run\'s entry; nothing is left behind', async () => {
    const runs = new Shared();
    r = rig(pool(), T0, { pendingRuns: runs });
    const rule = await r.store.createRule('home1', validateRuleSpec(SPEC));
    const full = validateRuleSpec(SPEC).actions;
    // node A (dead) had its run parked after "on", due 5 s ago
    await runs.inner.save({ runId: 'node-a-1', homeId: 'home1', ruleId: rule.id, ruleVersion: rule.version, dueAt: T0 - 5_000, actions: full.slice(2), offset: 2, dedupBase: 'rule:a:1', savedAt: T0 - 65_000 });
    await motion(); // node B: a newer event's run saves its wait (A's is kept apart)
    expect((await runs.inner.load()).map((p) => p.runId).sort()).toHaveLength(2);
    expect(await r.engine.takeOverOrphans()).toMatchObject({ late: 1 });
    await r.settle();
    for (let i = 0; i < 4; i++) { r.advance(60_100); await r.settle(); }
    const sent = r.hubs.sent();
    // node B's run (its event newer): on, off after 60 s, fan after 120 s
    expect(sent.filter((c) => c.startsWith('hall-light:{"set":{"on":false}}')).length).toBe(2); // A's off and B's off
    // A's run ends at its next delay (B's run began after it was due): the fan is B's alone
    expect(sent.filter((c) => c.startsWith('hall-fan:')).length).toBe(1);
    expect(await runs.inner.load()).toEqual([]);
  });

  it("a run late past its delay, kept apart by another node's newer run, goes on to its next delay beside it and leaves that run's entry alone", async () => {
    const runs = new MemoryPendingRuns();
    r = rig(pool(), T0, { pendingRuns: runs });
    const rule = await r.store.createRule('home1', validateRuleSpec(SPEC));
    r.hubs.report('home1-hub', 'hall-motion', { motion: false });
    r.hubs.report('home1-hub', 'hall-motion', { motion: true });
    await r.settle();
    const [own] = await runs.load();
    expect(own).toBeDefined();
    // another node's run of a newer event saves its wait after this one's was due (this node stalled)
    const newer = { ...own!, runId: 'other-node-run', dedupBase: 'rule:other:event', dueAt: own!.dueAt + 61_000, savedAt: own!.dueAt + 1_000 };
    await runs.save(newer);
    r.advance(60_100);
    await r.settle();
    r.advance(60_100);
    await r.settle();
    const sent = r.hubs.sent();
    expect(sent.filter((c) => c.startsWith('hall-light:{"set":{"on":false}}'))).toHaveLength(1);
    // ended at its next delay: the fan is the newer run's to turn on
    expect(sent.filter((c) => c.startsWith('hall-fan:'))).toHaveLength(0);
    expect(await runs.holds(rule.id, newer.runId)).toBe(true);
    expect((await runs.load()).map((p) => p.runId)).toEqual([newer.runId]);
  });

  it("a dead node's two runs of a rule, handed over the one kept apart first: the newer, not yet due, is resumed too", async () => {
    const inner = new MemoryPendingRuns();
    // Redis answers a hash's fields in no set order past 128 of them (review "diff27")
    const runs = new (class extends Shared {
      override async claimOrphans() {
        return (await super.claimOrphans()).sort((a, b) => Number(b.apart === true) - Number(a.apart === true));
      }
    })(inner);
    r = rig(pool(), T0, { pendingRuns: runs });
    const rule = await r.store.createRule('home1', validateRuleSpec(SPEC));
    const full = validateRuleSpec(SPEC).actions;
    const entry = { homeId: 'home1', ruleId: rule.id, ruleVersion: rule.version, actions: full.slice(2), offset: 2 };
    await inner.save({ ...entry, runId: 'node-a-1', dueAt: T0 - 5_000, dedupBase: 'rule:a:1', savedAt: T0 - 65_000 });
    await inner.save({ ...entry, runId: 'node-a-2', dueAt: T0 + 30_000, dedupBase: 'rule:a:2', savedAt: T0 - 1_000 });
    expect((await runs.claimOrphans()).map((p) => [p.runId, p.apart === true])).toEqual([['node-a-1', true], ['node-a-2', false]]);
    expect(await r.engine.takeOverOrphans()).toMatchObject({ late: 1, armed: 1, dropped: 0 });
    await r.settle();
    for (let i = 0; i < 4; i++) { r.advance(60_100); await r.settle(); }
    const sent = r.hubs.sent();
    // both runs' "off"; the fan is the newer run's alone (the older ends at its next delay)
    expect(sent.filter((c) => c.startsWith('hall-light:{"set":{"on":false}}'))).toHaveLength(2);
    expect(sent.filter((c) => c.startsWith('hall-fan:'))).toHaveLength(1);
    expect(await inner.load()).toEqual([]);
  });
});
