/**
 * A rules home at the engine's `maxHomes` bound is not retired while a run of its rules is under way
 * (a command waiting for its hub). Until 2026-12-06 (a race review) it was: the fresh actor of the
 * home noted its next event's offset at once, past the event whose run had not got to its first
 * delay or end (a kill -9 then lost that run: README "After a crash"), and deleting the rule no
 * longer reached the run, whose notification still went out.
 */
import { afterEach, expect, it } from 'vitest';
import type { EvaluatedMarks } from '../../src/ports/history/history.js';
import { validateRuleSpec } from '../../src/rules/validate.js';
import { rig, warmPool, type Rig } from './rules-fixtures.js';

const pool = warmPool();
let r: Rig;
afterEach(async () => r?.close());

it("a home's mark does not pass an event whose run is still in its first stretch, when the home is retired", async () => {
  const notes: Array<[string, number, boolean]> = [];
  const marks = { note: (homeId: string, offset: number, evaluated: boolean) => void notes.push([homeId, offset, evaluated]) } as unknown as EvaluatedMarks;
  let answer!: () => void;
  const hubAnswers = new Promise<void>((res) => (answer = res));
  r = rig(pool(), Date.UTC(2024, 6, 1, 12), {
    marks,
    maxHomes: 2,
    // the siren's hub is slow to answer (or waited for: TIER_RULE_HUB_WAIT_MS)
    runCommand: async () => {
      await hubAnswers;
      return {};
    },
  });
  await r.store.createRule('home1', validateRuleSpec({
    name: 'Leak: siren, then tell',
    triggers: [{ type: 'event', hub: 'home1-hub', device: 'leak', event: 'leak' }],
    conditions: [],
    actions: [{ type: 'command', hub: 'home1-hub', device: 'siren', set: { on: true } }, { type: 'notify', title: 'Water leak', body: 'kitchen' }],
  }));
  const ev = (home: string, device: string, offset: number) => r.engine.onEvent({ kind: 'event', home, hub: `${home}-hub`, device, event: 'leak', ts: r.clock.now } as never, undefined, offset);
  ev('home1', 'leak', 5);
  // wait until the evaluation is done and the run waits for the hub
  await new Promise((res) => setTimeout(res, 300));
  // other homes' events: the node is at its maxHomes, idle homes are retired (home1's mailbox is empty)
  for (const [i, h] of ['home2', 'home3', 'home4', 'home5'].entries()) ev(h, 'door', 1 + i);
  await new Promise((res) => setTimeout(res, 50));
  // home1's next event, one no rule listens to
  ev('home1', 'window', 6);
  await new Promise((res) => setTimeout(res, 50));
  const home1 = notes.filter(([h]) => h === 'home1');
  answer();
  await r.settle();
  expect(home1.every(([, offset]) => offset < 5)).toBe(true);
});

it('a rule deleted while its home is retired and its run waits for a hub: the rest of the run does not run', async () => {
  let answer!: () => void;
  const hubAnswers = new Promise<void>((res) => (answer = res));
  r = rig(pool(), Date.UTC(2024, 6, 1, 12), {
    maxHomes: 2,
    runCommand: async () => {
      await hubAnswers;
      return {};
    },
  });
  const rule = await r.store.createRule('home1', validateRuleSpec({
    name: 'Leak: siren, then tell',
    triggers: [{ type: 'event', hub: 'home1-hub', device: 'leak', event: 'leak' }],
    conditions: [],
    actions: [{ type: 'command', hub: 'home1-hub', device: 'siren', set: { on: true } }, { type: 'notify', title: 'Water leak', body: 'kitchen' }],
  }));
  const ev = (home: string, device: string) => r.engine.onEvent({ kind: 'event', home, hub: `${home}-hub`, device, event: 'leak', ts: r.clock.now } as never);
  ev('home1', 'leak');
  await new Promise((res) => setTimeout(res, 300));
  for (const h of ['home2', 'home3', 'home4', 'home5']) ev(h, 'door');
  await new Promise((res) => setTimeout(res, 50));
  // the user deletes the rule (README: deleting a rule cancels its runs, waiting or running)
  await r.store.deleteRule('home1', rule.id);
  await new Promise((res) => setTimeout(res, 50));
  answer();
  await r.settle();
  expect(r.pushes).toEqual([]);
});

const LIGHT = (home: string) =>
  validateRuleSpec({
    name: 'Porch light for an hour',
    triggers: [{ type: 'event', hub: `${home}-hub`, device: 'button', event: 'press' }],
    conditions: [],
    actions: [
      { type: 'command', hub: `${home}-hub`, device: 'light', set: { on: true } },
      { type: 'delay', ms: 3_600_000 },
      { type: 'command', hub: `${home}-hub`, device: 'light', set: { on: false } },
    ],
  });

it('a run parked in a delay does not hold its home: homes with such runs past maxHomes are retired (the first fix kept them all)', async () => {
  r = rig(pool(), Date.UTC(2024, 6, 1, 12), { maxHomes: 50 });
  for (let i = 0; i < 300; i++) await r.store.createRule(`h${i}`, LIGHT(`h${i}`));
  let most = 0;
  for (let i = 0; i < 300; i++) {
    r.hubs.event(`h${i}-hub`, 'button', 'press');
    if (i % 25 === 24) {
      await r.settle();
      most = Math.max(most, r.engine.homesHeld);
    }
  }
  await r.settle();
  expect(r.hubs.commands.length).toBe(300);
  expect(most).toBeLessThanOrEqual(75);
}, 60_000);

it('a retired home whose run waits in a delay and whose rule is then deleted: the run ends at its delay', async () => {
  r = rig(pool(), Date.UTC(2024, 6, 1, 12), { maxHomes: 2 });
  const rule = await r.store.createRule('home1', LIGHT('home1'));
  r.hubs.event('home1-hub', 'button', 'press');
  await r.settle();
  for (const h of ['home2', 'home3', 'home4', 'home5']) r.hubs.event(`${h}-hub`, 'button', 'press');
  await r.settle();
  await r.store.deleteRule('home1', rule.id);
  await r.settle();
  r.advance(3_600_000 + 1_000);
  await r.settle();
  expect(r.hubs.commands.filter((c) => c.hub === 'home1-hub' && JSON.stringify(c.spec).includes('false'))).toEqual([]);
});
