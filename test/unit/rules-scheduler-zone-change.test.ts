/**
 * A home's time zone changed during the day (review "tz"), as the settings route stores it: a change
 * is an edit of its cron rules. No instant of the new zone before the change fires or is reported
 * skipped, on a running scheduler and on one started after the change; the new zone's next instant fires.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryRuleStore } from '../../src/ports/rule-store/rule-store-memory.js';
import { CronScheduler } from '../../src/rules/scheduler.js';
import { validateRuleSpec } from '../../src/rules/validate.js';
import { putHomeSettings } from '../../src/rules/zone-change.js';
import { cronOnClock } from './rules-fixtures.js';

const schedulers: CronScheduler[] = [];
afterEach(async () => {
  await Promise.all(schedulers.splice(0).map((s) => s.stop()));
});

const clock = { now: 0 };
const fired: string[] = [];
function scheduler(store: MemoryRuleStore): CronScheduler {
  const s = cronOnClock(store, clock, (at) => void fired.push(new Date(at).toISOString().slice(5, 16)));
  schedulers.push(s);
  return s;
}

/** A daily 07:00 rule of a home in UTC from 06:00Z on 2027-06-01 (the store and the rule's id). */
async function dailyAlarm(catchUpMs?: number): Promise<{ store: MemoryRuleStore; ruleId: string }> {
  fired.length = 0;
  clock.now = Date.parse('2027-06-01T06:00:00Z');
  const store = new MemoryRuleStore({ now: () => clock.now });
  await store.putSettings('home1', { timeZone: 'UTC' });
  const trigger = { type: 'cron', cron: '0 7 * * *', ...(catchUpMs ? { catchUpMs } : {}) };
  const rule = await store.createRule('home1', validateRuleSpec({ name: 'alarm', triggers: [trigger], actions: [{ type: 'notify', title: 't', body: 'b' }] }));
  return { store, ruleId: rule.id };
}

async function runUntil(s: CronScheduler, until: string): Promise<void> {
  for (const end = Date.parse(until); clock.now <= end; clock.now += 30_000) await s.tick();
}

const errors = async (store: MemoryRuleStore, ruleId: string) => (await store.getRunStats('home1', [ruleId])).get(ruleId)?.errors ?? 0;

describe('a home whose time zone changes: an edit of its cron rules', () => {
  it.each([
    // 07:00 New York is 11:00Z: ahead at 10:00Z (it fires that day), just passed at 12:00Z (it does not)
    ['10:00', 'America/New_York', undefined, ['06-01T07:00', '06-01T11:00', '06-02T11:00']],
    ['12:00', 'America/New_York', undefined, ['06-01T07:00', '06-02T11:00']],
    // a day's catch-up fired the passed 11:00Z the moment the settings were saved
    ['12:00', 'America/New_York', 86_400_000, ['06-01T07:00', '06-02T11:00']],
    // 07:00 Auckland is 19:00Z: ahead at 08:00Z
    ['08:00', 'Pacific/Auckland', undefined, ['06-01T07:00', '06-01T19:00', '06-02T19:00']],
  ])('changed at %sZ to %s (catch-up %s): the new zone fires from its next instant after the change, and nothing is reported skipped', async (at, zone, catchUpMs, want) => {
    const { store, ruleId } = await dailyAlarm(catchUpMs);
    const s = scheduler(store);
    await runUntil(s, `2027-06-01T${at}:00Z`);
    expect(fired).toEqual(['06-01T07:00']);
    await putHomeSettings(store, 'home1', { timeZone: zone }, () => clock.now);
    await runUntil(s, '2027-06-02T20:00:00Z');
    expect(fired).toEqual(want);
    expect(await errors(store, ruleId)).toBe(0);
  });

  it('a scheduler started after the change neither fires nor skips an instant before it', async () => {
    const { store, ruleId } = await dailyAlarm(86_400_000);
    const first = scheduler(store);
    await runUntil(first, '2027-06-01T08:00:00Z');
    await first.stop();
    clock.now = Date.parse('2027-06-01T12:00:00Z');
    await putHomeSettings(store, 'home1', { timeZone: 'America/New_York' }, () => clock.now);
    clock.now = Date.parse('2027-06-01T12:30:00Z');
    await runUntil(scheduler(store), '2027-06-02T12:00:00Z');
    expect(fired).toEqual(['06-01T07:00', '06-02T11:00']);
    expect(await errors(store, ruleId)).toBe(0);
  });
});

describe('a zone this node does not know (a store written by a node of newer tzdata)', () => {
  it('is said once, in the rule status and the log, not at every reload; the rule does not fire here', async () => {
    fired.length = 0;
    clock.now = Date.parse('2027-06-01T06:58:00Z');
    const store = new MemoryRuleStore({ now: () => clock.now });
    // the API refuses such a zone: written to the store directly, as a newer node would have
    await store.putSettings('home1', { timeZone: 'America/Not_Yet_In_This_Tzdata' });
    const rule = await store.createRule('home1', validateRuleSpec({ name: 'alarm', triggers: [{ type: 'cron', cron: '0 7 * * *' }], actions: [{ type: 'notify', title: 't', body: 'b' }] }));
    const s = scheduler(store);
    await runUntil(s, '2027-06-01T07:10:00Z');
    expect(fired).toEqual([]);
    const stats = (await store.getRunStats('home1', [rule.id])).get(rule.id);
    expect(stats?.errors).toBe(1);
    expect(stats?.lastError?.message).toMatch(/^not scheduled on node n: its pattern or time zone America\/Not_Yet_In_This_Tzdata is refused here/);
  });
});
