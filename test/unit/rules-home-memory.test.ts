/**
 * What a home of the rules engine holds when it has no rules: most homes of a fleet have none, and a
 * node keeps one HomeRules per home it serves, so a home without rules shares the node's empty rule
 * set and trigger index (two empty Maps a home were about 540 B: BENCHMARKS.md, 2026-12-05 third).
 */
import { describe, expect, it } from 'vitest';
import { MemoryRuleStore } from '../../src/ports/rule-store/rule-store-memory.js';
import { HomeRules } from '../../src/rules/home-rules.js';
import type { HomeDeps } from '../../src/rules/home-actor.js';
import { validateRuleSpec } from '../../src/rules/validate.js';

function homeRules(store: MemoryRuleStore, homeId: string): HomeRules {
  // guard, stats and outage are reached only when a snapshot replaces one with rules, or the store is away
  const unused = {} as never;
  const deps: Pick<HomeDeps, 'store' | 'guard' | 'stats' | 'outage' | 'now' | 'cacheTtlMs'> = { store, guard: unused, stats: unused, outage: unused, now: Date.now, cacheTtlMs: 10_000 };
  return new HomeRules(homeId, deps);
}

const PRESS = validateRuleSpec({
  name: 'Press',
  triggers: [{ type: 'event', hub: 'hub-1', device: 'btn', event: 'press' }],
  actions: [{ type: 'command', hub: 'hub-1', device: 'chime', method: 'ring' }],
});

describe('a home without rules', () => {
  it("shares the node's empty rule set and trigger index; a home with rules has its own", async () => {
    const store = new MemoryRuleStore();
    await store.createRule('home-with', PRESS);
    const a = await homeRules(store, 'home-a').load();
    const b = await homeRules(store, 'home-b').load();
    const withRules = await homeRules(store, 'home-with').load();
    expect(a.rules.size).toBe(0);
    expect(a.rules).toBe(b.rules);
    expect(a.index).toBe(b.index);
    expect(withRules.rules.size).toBe(1);
    expect(withRules.rules).not.toBe(a.rules);
    expect(withRules.index).not.toBe(a.index);
    const press = { kind: 'event', home: 'home-with', hub: 'hub-1', device: 'btn', event: 'press', params: {}, ts: 0 } as const;
    expect(withRules.index.listens(press)).toBe(true);
    expect(a.index.listens({ ...press, home: 'home-a' })).toBe(false);
  });

  it('gets a rule set of its own once a rule is added, and the shared one stays empty', async () => {
    const store = new MemoryRuleStore();
    const rules = homeRules(store, 'home-a');
    const empty = await rules.load();
    await store.createRule('home-a', PRESS);
    rules.changed(await store.homeVersion('home-a'));
    const after = await rules.load();
    expect(after.rules.size).toBe(1);
    expect(after.rules).not.toBe(empty.rules);
    expect(empty.rules.size).toBe(0);
    expect((await homeRules(store, 'home-b').load()).rules).toBe(empty.rules);
  });
});
