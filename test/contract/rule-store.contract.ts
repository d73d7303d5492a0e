import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isValidId } from '../../proto/subjects.js';
import type { RuleSpec, SceneSpec } from '../../src/rules/model.js';
import { DEFAULT_HOME_LIMITS, noRunStats, type HomeItemLimits, type RuleStore, type RuleStoreChange } from '../../src/ports/rule-store/rule-store.js';

/** A rule store under test. */
export interface RuleStoreFixture {
  store: RuleStore;
  close(): Promise<void>;
}

/** Called once per test; a real backend should use a fresh key prefix per call. */
export type RuleStoreFactory = (options?: { limits?: HomeItemLimits }) => Promise<RuleStoreFixture>;

const uid = (): string => randomUUID().replaceAll('-', '').slice(0, 12);

function spec(patch: Partial<RuleSpec> = {}): RuleSpec {
  return {
    name: 'Hall light',
    enabled: true,
    triggers: [{ type: 'state', hub: 'hub1', device: 'motion', attr: 'motion', to: true }],
    devices: { lux: { hub: 'hub1', device: 'lux' } },
    conditions: ['dev.lux.lux < 30'],
    actions: [
      { type: 'command', hub: 'hub1', device: 'light', set: { on: true } },
      { type: 'delay', ms: 300_000 },
      { type: 'command', hub: 'hub1', device: 'light', set: { on: false } },
    ],
    cooldownMs: 0,
    limit: { maxRuns: 20, windowMs: 60_000 },
    ...patch,
  };
}

const cronSpec = (cron = '0 7 * * 1-5', catchUpMs?: number): RuleSpec =>
  spec({ name: 'Curtains', triggers: [{ type: 'cron', cron, ...(catchUpMs === undefined ? {} : { catchUpMs }) }], devices: {}, conditions: [] });

const scene = (patch: Partial<SceneSpec> = {}): SceneSpec => ({ name: 'Movie', enabled: true, commands: [{ hub: 'hub1', device: 'tv', set: { on: true } }], ...patch });

/** The promises of `RuleStore` (src/ports/rule-store/rule-store.ts), for any implementation. */
export function ruleStoreContract(name: string, make: RuleStoreFactory): void {
  describe(name, () => {
    let fx: RuleStoreFixture;
    let store: RuleStore;
    let home: string;

    beforeEach(async () => {
      fx = await make();
      store = fx.store;
      home = `home-${uid()}`;
    });

    afterEach(async () => {
      await fx.close();
    });

    it('an unknown home: version 0, nothing stored, default settings', async () => {
      expect(await store.homeVersion(home)).toBe(0);
      expect(await store.listRules(home)).toEqual([]);
      expect(await store.listScenes(home)).toEqual([]);
      expect(await store.getRule(home, 'rNope')).toBeNull();
      expect(await store.getScene(home, 'sNope')).toBeNull();
      expect(await store.getSettings(home)).toEqual({ timeZone: 'UTC' });
    });

    describe('rules', () => {
      it('create stores the spec with a new id, version 1 and times; the home version moves', async () => {
        const before = Date.now();
        const v0 = await store.homeVersion(home);
        const r = await store.createRule(home, spec());
        expect(isValidId(r.id)).toBe(true);
        expect(r).toMatchObject({ ...spec(), homeId: home, version: 1 });
        expect(r.createdAt).toBe(r.updatedAt);
        expect(r.createdAt).toBeGreaterThanOrEqual(before - 1_000);
        expect(r.createdAt).toBeLessThanOrEqual(Date.now() + 1_000);
        expect(await store.getRule(home, r.id)).toEqual(r);
        expect(await store.listRules(home)).toEqual([r]);
        expect(await store.homeVersion(home)).toBeGreaterThan(v0);
      });

      it('ids are unique, also across homes', async () => {
        const other = `${home}-2`;
        const ids = await Promise.all([...Array(10)].map((_, i) => store.createRule(i % 2 ? home : other, spec())));
        expect(new Set(ids.map((r) => r.id)).size).toBe(10);
        expect(await store.listRules(home)).toHaveLength(5);
      });

      it('update replaces the spec, version + 1, keeps id and createdAt', async () => {
        const r = await store.createRule(home, spec());
        const u = await store.updateRule(home, r.id, spec({ name: 'Renamed', conditions: [], cooldownMs: 5_000 }));
        expect(u).toMatchObject({ id: r.id, homeId: home, version: 2, name: 'Renamed', conditions: [], cooldownMs: 5_000, createdAt: r.createdAt });
        expect(u!.updatedAt).toBeGreaterThanOrEqual(r.updatedAt);
        expect(await store.getRule(home, r.id)).toEqual(u);
      });

      it('update, enable and delete of a rule that is not in this home answer null / false', async () => {
        const r = await store.createRule(home, spec());
        const other = `${home}-other`;
        expect(await store.updateRule(other, r.id, spec())).toBeNull();
        expect(await store.setRuleEnabled(other, r.id, false)).toBeNull();
        expect(await store.deleteRule(other, r.id)).toBe(false);
        expect(await store.getRule(other, r.id)).toBeNull();
        expect(await store.getRule(home, r.id)).toEqual(r);
      });

      it('enable/disable moves the version only when it changes', async () => {
        const r = await store.createRule(home, spec());
        expect(await store.setRuleEnabled(home, r.id, true)).toMatchObject({ version: 1, enabled: true });
        expect(await store.setRuleEnabled(home, r.id, false)).toMatchObject({ version: 2, enabled: false });
        expect(await store.setRuleEnabled(home, r.id, false)).toMatchObject({ version: 2, enabled: false });
        expect(await store.getRule(home, r.id)).toMatchObject({ version: 2, enabled: false });
      });

      it('delete removes the rule once', async () => {
        const r = await store.createRule(home, spec());
        expect(await store.deleteRule(home, r.id)).toBe(true);
        expect(await store.deleteRule(home, r.id)).toBe(false);
        expect(await store.getRule(home, r.id)).toBeNull();
        expect(await store.listRules(home)).toEqual([]);
      });

      it('returns copies: mutating a read changes nothing stored', async () => {
        const r = await store.createRule(home, spec());
        r.name = 'x';
        r.actions.length = 0;
        const got = (await store.getRule(home, r.id))!;
        got.conditions.push('false');
        (got.limit as { maxRuns: number }).maxRuns = 1;
        const list = await store.listRules(home);
        expect(list[0]).toMatchObject({ name: 'Hall light', conditions: ['dev.lux.lux < 30'], limit: { maxRuns: 20 } });
        expect(list[0]!.actions).toHaveLength(3);
      });
    });

    describe('scenes', () => {
      it('create, read, update, enable, delete', async () => {
        const s = await store.createScene(home, scene());
        expect(isValidId(s.id)).toBe(true);
        expect(s).toMatchObject({ ...scene(), homeId: home, version: 1 });
        expect(await store.listScenes(home)).toEqual([s]);
        const u = await store.updateScene(home, s.id, scene({ name: 'Film', commands: [{ hub: 'hub1', device: 'tv', method: 'off', params: {} }] }));
        expect(u).toMatchObject({ id: s.id, version: 2, name: 'Film', createdAt: s.createdAt });
        expect(await store.setSceneEnabled(home, s.id, false)).toMatchObject({ version: 3, enabled: false });
        expect(await store.updateScene(`${home}-x`, s.id, scene())).toBeNull();
        expect(await store.setSceneEnabled(`${home}-x`, s.id, true)).toBeNull();
        expect(await store.deleteScene(home, s.id)).toBe(true);
        expect(await store.deleteScene(home, s.id)).toBe(false);
        expect(await store.getScene(home, s.id)).toBeNull();
      });
    });

    describe('rules and scenes per home', () => {
      it('by default a home holds 200 of each', () => {
        expect(DEFAULT_HOME_LIMITS).toEqual({ rules: 200, scenes: 200 });
      });

      it('a create past the limit is refused limit_exceeded and writes nothing; other homes and the other kind are not counted', async () => {
        const limited = await make({ limits: { rules: 3, scenes: 2 } });
        try {
          const s = limited.store;
          for (let i = 0; i < 3; i++) await s.createRule(home, spec({ name: `r${i}` }));
          const version = await s.homeVersion(home);
          await expect(s.createRule(home, spec())).rejects.toMatchObject({ code: 'limit_exceeded', message: expect.stringContaining('maximum of 3 rules') });
          expect(await s.homeVersion(home)).toBe(version);
          // (created in one millisecond, their order is the ids')
          expect((await s.listRules(home)).map((r) => r.name).sort()).toEqual(['r0', 'r1', 'r2']);
          // scenes are counted apart, and so is every other home
          await s.createScene(home, scene());
          await s.createScene(home, scene());
          await expect(s.createScene(home, scene())).rejects.toMatchObject({ code: 'limit_exceeded' });
          await s.createRule(`other-${uid()}`, spec());
          // a delete makes room
          await s.deleteRule(home, (await s.listRules(home))[0]!.id);
          await s.createRule(home, spec({ name: 'r3' }));
          expect(await s.listRules(home)).toHaveLength(3);
        } finally {
          await limited.close();
        }
      });

      it('creates racing each other never pass the limit: exactly the limit is stored', async () => {
        const limited = await make({ limits: { rules: 5, scenes: 5 } });
        try {
          const outcomes = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => limited.store.createRule(home, spec({ name: `race${i}` }))));
          expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(5);
          expect(new Set(outcomes.flatMap((o) => (o.status === 'rejected' ? [(o.reason as { code: string }).code] : [])))).toEqual(new Set(['limit_exceeded']));
          expect(await limited.store.listRules(home)).toHaveLength(5);
        } finally {
          await limited.close();
        }
      });
    });

    describe('home version and settings', () => {
      it('the home version strictly increases with every change of rules, scenes or settings', async () => {
        const seen = [await store.homeVersion(home)];
        const step = async (change: () => Promise<unknown>) => {
          await change();
          seen.push(await store.homeVersion(home));
        };
        const r = await store.createRule(home, spec());
        seen.push(await store.homeVersion(home));
        await step(() => store.updateRule(home, r.id, spec({ name: 'b' })));
        await step(() => store.setRuleEnabled(home, r.id, false));
        const s = await store.createScene(home, scene());
        seen.push(await store.homeVersion(home));
        await step(() => store.updateScene(home, s.id, scene({ name: 'c' })));
        await step(() => store.putSettings(home, { timeZone: 'Europe/Berlin' }));
        await step(() => store.deleteScene(home, s.id));
        await step(() => store.deleteRule(home, r.id));
        for (let i = 1; i < seen.length; i++) expect(seen[i]!).toBeGreaterThan(seen[i - 1]!);
        // homes are apart
        expect(await store.homeVersion(`${home}-other`)).toBe(0);
      });

      it('settings round-trip per home', async () => {
        expect(await store.putSettings(home, { timeZone: 'Europe/Berlin' })).toEqual({ timeZone: 'Europe/Berlin' });
        expect(await store.getSettings(home)).toEqual({ timeZone: 'Europe/Berlin' });
        expect(await store.getSettings(`${home}-other`)).toEqual({ timeZone: 'UTC' });
      });
    });

    describe('scheduled rules and cursors', () => {
      it('listScheduled holds every enabled cron rule, with its home’s time zone and catch-up', async () => {
        await store.putSettings(home, { timeZone: 'Europe/Berlin' });
        const a = await store.createRule(home, cronSpec('0 7 * * 1-5', 120_000));
        const off = await store.createRule(home, { ...cronSpec(), enabled: false });
        await store.createRule(home, spec()); // no cron trigger
        const mine = (await store.listScheduled()).filter((s) => s.homeId === home);
        expect(mine).toEqual([{ homeId: home, ruleId: a.id, version: 1, updatedAt: a.updatedAt, timeZone: 'Europe/Berlin', crons: [{ cron: '0 7 * * 1-5', catchUpMs: 120_000 }] }]);
        await store.setRuleEnabled(home, off.id, true);
        await store.setRuleEnabled(home, a.id, false);
        const after = (await store.listScheduled()).filter((s) => s.homeId === home);
        expect(after.map((s) => s.ruleId)).toEqual([off.id]);
        expect(after[0]!.crons).toEqual([{ cron: '0 7 * * 1-5', catchUpMs: undefined }]);
      });

      it('a cursor only moves forward; racing writers of one instant: exactly one wins', async () => {
        const r = await store.createRule(home, cronSpec());
        expect(await store.getCursor(r.id)).toBeNull();
        expect(await store.advanceCursor(home, r.id, 1_000)).toBe(true);
        expect(await store.advanceCursor(home, r.id, 1_000)).toBe(false);
        expect(await store.advanceCursor(home, r.id, 999)).toBe(false);
        expect(await store.getCursor(r.id)).toBe(1_000);
        const wins = await Promise.all([...Array(10)].map(() => store.advanceCursor(home, r.id, 2_000)));
        expect(wins.filter(Boolean)).toHaveLength(1);
        expect(await store.getCursor(r.id)).toBe(2_000);
      });

      it('deleting a rule deletes its cursor', async () => {
        const r = await store.createRule(home, cronSpec());
        await store.advanceCursor(home, r.id, 5_000);
        await store.deleteRule(home, r.id);
        expect(await store.getCursor(r.id)).toBeNull();
      });
    });

    describe('watch', () => {
      it('tells listeners of each change with the home and its new version, until unsubscribed', async () => {
        const changes: RuleStoreChange[] = [];
        const stop = store.watch((c) => {
          if (c.homeId === home) changes.push(c);
        });
        const r = await store.createRule(home, spec());
        await expect.poll(() => changes.length).toBe(1);
        await store.setRuleEnabled(home, r.id, false);
        await expect.poll(() => changes.length).toBe(2);
        expect(changes.map((c) => c.version)).toEqual([changes[0]!.version, await store.homeVersion(home)]);
        expect(changes[1]!.version).toBeGreaterThan(changes[0]!.version);
        stop();
        // a listener still subscribed is the barrier: once it has heard of the marker (a later
        // change), the stopped listener would have heard of the delete too
        const heard: RuleStoreChange[] = [];
        const stopWitness = store.watch((c) => heard.push(c));
        await store.deleteRule(home, r.id);
        const markerHome = `${home}-marker`;
        const marker = await store.createRule(markerHome, spec({ name: 'Marker' }));
        expect(await store.getRule(markerHome, marker.id)).toEqual(marker);
        expect(marker).toMatchObject({ name: 'Marker', version: 1 });
        await expect.poll(() => heard.some((c) => c.homeId === markerHome)).toBe(true);
        expect(heard.map((c) => c.homeId)).toEqual([home, markerHome]);
        expect(changes).toHaveLength(2);
        stopWitness();
      });

      it('a listener that throws does not fail the change', async () => {
        const stop = store.watch(() => {
          throw new Error('listener bug');
        });
        await expect(store.createRule(home, spec())).resolves.toMatchObject({ version: 1 });
        stop();
      });
    });

    describe('run statistics (every node adds, every node reads the same)', () => {
      it('adds counts, keeps the latest instants, and leaves the home version alone', async () => {
        const r = await store.createRule(home, spec());
        const v = await store.homeVersion(home);
        expect((await store.getRunStats(home, [r.id])).get(r.id)).toEqual(noRunStats());
        await store.addRunStats([{ homeId: home, ruleId: r.id, counts: { evaluated: 3, triggered: 2, matched: 2, actionsRun: 4 }, lastEvaluatedAt: 2_000, lastRunAt: 1_900 }]);
        await store.addRunStats([
          { homeId: home, ruleId: r.id, counts: { evaluated: 1, errors: 1 }, lastEvaluatedAt: 1_000, lastError: { at: 1_000, message: 'older' } },
          { homeId: home, ruleId: r.id, counts: { suppressed: 1, loopStops: 1 }, lastError: { at: 3_000, message: 'loop guard: stopped' } },
        ]);
        await store.addRunStats([{ homeId: home, ruleId: r.id, counts: {}, lastError: { at: 2_500, message: 'not the latest' } }]);
        expect((await store.getRunStats(home, [r.id])).get(r.id)).toEqual({
          evaluated: 4,
          triggered: 2,
          matched: 2,
          suppressed: 1,
          actionsRun: 4,
          errors: 1,
          loopStops: 1,
          lastEvaluatedAt: 2_000,
          lastRunAt: 1_900,
          lastError: { at: 3_000, message: 'loop guard: stopped' },
        });
        expect(await store.homeVersion(home)).toBe(v);
      });

      it('adds racing each other all count', async () => {
        const [a, b] = [await store.createRule(home, spec()), await store.createRule(home, spec({ name: 'Other' }))];
        await Promise.all(Array.from({ length: 25 }, (_, i) => store.addRunStats([{ homeId: home, ruleId: a.id, counts: { evaluated: 1 } }, { homeId: home, ruleId: b.id, counts: { evaluated: 2, matched: i % 2 } }])));
        const got = await store.getRunStats(home, [a.id, b.id]);
        expect(got.get(a.id)).toMatchObject({ evaluated: 25, matched: 0 });
        expect(got.get(b.id)).toMatchObject({ evaluated: 50, matched: 12 });
      });

      it('nothing outlives a rule: deleting it deletes its statistics, and a late add is dropped', async () => {
        const r = await store.createRule(home, spec());
        await store.addRunStats([{ homeId: home, ruleId: r.id, counts: { evaluated: 5 }, lastRunAt: 10 }]);
        expect(await store.deleteRule(home, r.id)).toBe(true);
        expect((await store.getRunStats(home, [r.id])).get(r.id)).toEqual(noRunStats());
        await store.addRunStats([{ homeId: home, ruleId: r.id, counts: { evaluated: 1 }, lastRunAt: 20 }]);
        expect((await store.getRunStats(home, [r.id])).get(r.id)).toEqual(noRunStats());
      });

      it("a rule's statistics are read through its own home only; unknown rules read zeros", async () => {
        const r = await store.createRule(home, spec());
        await store.addRunStats([{ homeId: home, ruleId: r.id, counts: { evaluated: 1 } }]);
        expect((await store.getRunStats(`${home}-other`, [r.id])).get(r.id)).toEqual(noRunStats());
        expect((await store.getRunStats(home, ['r-unknown'])).get('r-unknown')).toEqual(noRunStats());
        await store.addRunStats([{ homeId: `${home}-other`, ruleId: r.id, counts: { evaluated: 7 } }]);
        expect((await store.getRunStats(home, [r.id])).get(r.id)).toMatchObject({ evaluated: 1 });
      });
    });
  });
}
