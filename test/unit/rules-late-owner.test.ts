/**
 * A node whose run ended its delay late (a stall), after another node's newer run of the rule had
 * saved its wait: the late run's entry was kept apart by that save, and it goes on as the older run
 * to its next delay, stored beside the newer run's entry; until review "diff27" (read) its next wait
 * was saved over the rule's entry, and the newer run's actions were lost.
 */
import { afterEach, expect, it } from 'vitest';
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
