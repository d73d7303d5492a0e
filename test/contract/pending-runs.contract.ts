import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PendingRun, PendingRuns } from '../../src/ports/pending-runs/pending-runs.js';

/** An adapter under test; `reopen` (durable adapters) closes it and opens a new one over the same data. */
export interface PendingRunsFixture {
  runs: PendingRuns;
  reopen?(): Promise<PendingRuns>;
  close(): Promise<void>;
}

/** Called once per test, with fresh storage. */
export type PendingRunsFactory = () => Promise<PendingRunsFixture>;

function pending(ruleId: string, over: Partial<PendingRun> = {}): PendingRun {
  return {
    runId: randomUUID(),
    homeId: 'home1',
    ruleId,
    ruleVersion: 3,
    dueAt: 1_700_000_300_000,
    actions: [
      { type: 'command', hub: 'home1-hub', device: 'hall-light', set: { on: false, level: 0.5 } },
      { type: 'delay', ms: 60_000 },
      { type: 'notify', title: 'Hall', body: 'light off' },
    ],
    offset: 2,
    dedupBase: 'rule:r1:home1-hub:motion:v7',
    ...over,
  };
}

const byRule = (list: PendingRun[]) => [...list].sort((a, b) => a.ruleId.localeCompare(b.ruleId));

/** The promises of `PendingRuns` (src/ports/pending-runs/pending-runs.ts), for any adapter. */
export function pendingRunsContract(name: string, make: PendingRunsFactory): void {
  describe(name, () => {
    let fx: PendingRunsFixture;
    let runs: PendingRuns;

    beforeEach(async () => {
      fx = await make();
      runs = fx.runs;
    });

    afterEach(async () => {
      await fx.close();
    });

    it('a saved run loads back field for field; an empty store loads nothing', async () => {
      expect(await runs.load()).toEqual([]);
      const a = pending('r1');
      await runs.save(a);
      expect(await runs.load()).toEqual([a]);
    });

    it('loads return copies: changing one changes nothing stored', async () => {
      const a = pending('r1');
      await runs.save(a);
      a.dueAt = 1;
      const [loaded] = await runs.load();
      loaded!.actions.length = 0;
      expect((await runs.load())[0]).toMatchObject({ dueAt: 1_700_000_300_000, actions: pending('r1').actions });
    });

    it('one entry per rule: a save replaces the rule\'s entry, other rules keep theirs', async () => {
      const first = pending('r1');
      const second = pending('r1', { dueAt: 1_700_000_900_000, offset: 0, actions: [{ type: 'scene', scene: 's1' }] });
      const other = pending('r2', { homeId: 'home2' });
      await runs.save(first);
      await runs.save(other);
      await runs.save(second);
      expect(byRule(await runs.load())).toEqual([second, other]);
    });

    it('remove deletes the rule\'s entry only while it is that wait', async () => {
      const older = pending('r1');
      const newer = pending('r1');
      await runs.save(older);
      await runs.save(newer);
      await runs.remove('r1', older.runId);
      expect(await runs.load()).toEqual([newer]);
      await runs.remove('r1', newer.runId);
      expect(await runs.load()).toEqual([]);
      // removing what is not there is no error
      await runs.remove('r1', newer.runId);
      await runs.remove('none', 'none');
    });

    it('holds: the rule\'s entry is still that wait, until a newer run saves its own or it is removed', async () => {
      const older = pending('r1');
      const newer = pending('r1');
      expect(await runs.holds('r1', older.runId)).toBe(false);
      await runs.save(older);
      expect(await runs.holds('r1', older.runId)).toBe(true);
      expect(await runs.holds('r2', older.runId)).toBe(false);
      await runs.save(newer);
      expect(await runs.holds('r1', older.runId)).toBe(false);
      expect(await runs.holds('r1', newer.runId)).toBe(true);
      await runs.remove('r1', newer.runId);
      expect(await runs.holds('r1', newer.runId)).toBe(false);
    });

    it("a newer run's save keeps another run's entry apart when it was due by then (its node died or is late): both load, hold, and go once removed (review kill9b)", async () => {
      const due = pending('r1', { dueAt: 1_000, dedupBase: 'rule:r1:e1' });
      const waiting = pending('r1', { dueAt: 5_000, dedupBase: 'rule:r1:e2' });
      await runs.save(due);
      // saved at 2,000: the first was due at 1,000, its delay over before this run began
      const later = pending('r1', { dueAt: 9_000, dedupBase: 'rule:r1:e3', savedAt: 2_000 });
      await runs.save(later);
      expect((await runs.load()).map((r) => [r.runId, r.apart ?? false]).sort()).toEqual([[due.runId, true], [later.runId, false]].sort());
      expect(await runs.holds('r1', due.runId, due.dedupBase)).toBe(true);
      expect(await runs.holds('r1', due.runId)).toBe(false);
      expect(await runs.holds('r1', later.runId, later.dedupBase)).toBe(true);
      // a save of the same run (its next delay) and one saved before the entry was due replace it
      await runs.save({ ...later, runId: 'next-of-later', dueAt: 12_000, savedAt: 10_000 });
      expect(await runs.holds('r1', later.runId, later.dedupBase)).toBe(false);
      await runs.save(waiting);
      expect(await runs.holds('r1', 'next-of-later', later.dedupBase)).toBe(false);
      // a remove naming another wait of the run apart deletes nothing
      await runs.remove('r1', 'not-that-wait', due.dedupBase);
      expect(await runs.holds('r1', due.runId, due.dedupBase)).toBe(true);
      await runs.remove('r1', due.runId, due.dedupBase);
      expect(await runs.holds('r1', due.runId, due.dedupBase)).toBe(false);
      expect((await runs.load()).map((r) => r.runId)).toEqual([waiting.runId]);
    });

    it('a run saved apart (an older event replayed after a crash) is kept beside the rule\'s entry, never over it; its later saves replace its own', async () => {
      const current = pending('r1', { dedupBase: 'rule:r1:e2' });
      await runs.save(current);
      const replayed = pending('r1', { dedupBase: 'rule:r1:e1', apart: true });
      await runs.save(replayed);
      const next = { ...replayed, runId: 'replayed-next' };
      await runs.save(next);
      expect(await runs.holds('r1', current.runId, current.dedupBase)).toBe(true);
      expect(await runs.holds('r1', replayed.runId, replayed.dedupBase)).toBe(false);
      expect(await runs.holds('r1', next.runId, next.dedupBase)).toBe(true);
      expect((await runs.load()).map((r) => r.runId).sort()).toEqual([current.runId, next.runId].sort());
      await runs.remove('r1', next.runId, next.dedupBase);
      expect((await runs.load()).map((r) => r.runId)).toEqual([current.runId]);
    });

    it('calls take effect in the order made, not awaited: save, remove, save again', async () => {
      const a = pending('r1');
      const b = pending('r1');
      const c = pending('r2');
      await Promise.all([runs.save(a), runs.remove('r1', a.runId), runs.save(c), runs.save(b), runs.remove('r2', c.runId), runs.remove('r1', a.runId)]);
      expect(await runs.load()).toEqual([b]);
    });

    it('durable adapters keep entries across a reopen; others say they do not', async () => {
      const a = pending('r1');
      const b = pending('r2');
      await runs.save(a);
      await runs.save(b);
      await runs.remove('r2', b.runId);
      if (!fx.reopen) {
        expect(runs.durable).toBe(false);
        return;
      }
      expect(runs.durable).toBe(true);
      runs = await fx.reopen();
      expect(await runs.load()).toEqual([a]);
    });
  });
}
